"""Registry as data, and load_model's clear errors (no minute-long hub retries offline)."""
import shutil
import time

import pytest

from cllm import models
import torch

from cllm.models import BY_NAME, REGISTRY, ModelLoadError, load_model, pick_dtype


def test_registry_is_consistent():
    assert len({e.name for e in REGISTRY}) == len(REGISTRY)
    pairs = models.model_pairs()
    assert pairs[0] == (models.DEFAULT_BASE, models.DEFAULT_CLLM)
    assert len(pairs) == 6  # the bundled pair, SmolLM2 and its adapter, the four published CLLMs with their targets
    for base, cllm in pairs:
        assert BY_NAME[base].role == "base" and BY_NAME[cllm].n == BY_NAME[base].n
    hub = {e.source for e in REGISTRY if not e.bundled}
    assert {"cllm/consistency-llm-7b-math", "cllm/consistency-llm-7b-spider", "cllm/consistency-llm-7b-codesearchnet",
            "cllm/consistency-llm-7b-sharegpt48k", "GAIR/Abel-7B-001"} <= hub


def test_the_shipped_adapter_fetches_its_base_first():
    assert models.fetched_part("smollm2-135m-cllm") == models.fetched_part("smollm2-135m") == "smollm2-135m"
    assert models.fetched_part("tiny-python-cllm") is None and models.fetched_part("cllm-7b-math") is None
    assert models.fetched_part("some/hub-id") is None
    assert models.is_adapter_folder(models.resolve_source("smollm2-135m-cllm"))
    assert models.adapter_base(models.resolve_source("smollm2-135m-cllm")) == "smollm2-135m"


def test_the_app_opens_on_the_real_pair_only_once_its_base_is_on_the_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("CLLM_CACHE", str(tmp_path))  # nothing converted here
    assert models.app_pair() == (models.DEFAULT_BASE, models.DEFAULT_CLLM)
    monkeypatch.setattr(models, "needs_fetch", lambda name: False)
    assert models.app_pair() == (models.REAL_BASE, models.REAL_CLLM)
    assert BY_NAME[models.REAL_CLLM].base == models.REAL_BASE


def test_hub_preset_offline_is_a_quick_clear_error(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=2.0: False)
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="hub is unreachable"):
        load_model("cllm-7b-math")
    assert time.perf_counter() - t0 < 5


def test_offline_flag_means_unreachable(monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert models.hub_reachable() is False


def test_folder_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="no model folder"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="no model given"):
        load_model("  ")
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    shutil.copy(tiny_model_dir / "config.json", no_tok)
    with pytest.raises(ModelLoadError, match="holds no tokenizer"):
        load_model(str(no_tok))
    no_config = tmp_path / "tokenizer-only"
    no_config.mkdir()
    shutil.copy(tiny_model_dir / "tokenizer.json", no_config)
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="holds no config.json"):  # at once, not after hub retries
        load_model(str(no_config))
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ModelLoadError, match=r"no model folder at '/x+…'$"):  # a huge name is cut short
        load_model("/" + "x" * 5000)


def test_loads_a_folder_on_cpu(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), device="cpu")
    assert loaded.device == "cpu" and not loaded.model.training
    assert loaded.eos_token_id == loaded.tokenizer.eos_token_id
    assert models.token_text(loaded.tokenizer, [loaded.eos_token_id]) == {loaded.eos_token_id: "<|eos|>"}


def test_cuda_without_gpu_is_clear(monkeypatch):
    monkeypatch.setattr(models.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        models.pick_device("cuda")


def test_dtype_is_chosen_once_and_a_bad_one_is_one_line(tiny_model_dir):
    """auto: bfloat16 on CUDA, float32 on CPU; float32 and bfloat16 on either (a GPU run collects and trains in
    float32 for an adapter shipped for CPU float32, and measures bfloat16 beside it)."""
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16  # a device object: no GPU needed
    assert pick_dtype("float32", torch.device("cuda")) == torch.float32
    for dtype, expected in (("auto", torch.float32), ("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        assert load_model(str(tiny_model_dir), "cpu", dtype=dtype).model.dtype == expected
    with pytest.raises(ModelLoadError, match=r"^unknown dtype 'float16': use auto, float32, bfloat16$"):
        load_model(str(tiny_model_dir), "cpu", dtype="float16")
