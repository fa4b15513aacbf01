"""LoRA CLLMs: trained and saved as an adapter, loaded back merged; training resumes from its checkpoints."""
from __future__ import annotations

import json

import pytest
import torch

from cllm.adapters import ADAPTER_CONFIG, adapter_base
from cllm.models import ModelLoadError, load_model
from cllm.training.fit import fit_cllm
from cllm.training.report import JobHooks
from cllm.training.train import train_cllm
from cllm.training.config import TrainConfig
from test_trainer import QUICK, data_dir, prompts_file  # noqa: F401 (module fixtures reused)


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def test_lora_cllm_saves_an_adapter_that_loads_merged(tiny_model_dir, data_dir, tmp_path):  # noqa: F811
    out = tmp_path / "lora-cllm"
    config = TrainConfig(**QUICK, max_steps=3, lora_rank=4, lora_alpha=8)
    info = train_cllm(str(tiny_model_dir), data_dir, out, config, JobHooks(progress=False))
    assert info.steps == 3
    assert (out / ADAPTER_CONFIG).is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # the base's weights are not copied
    assert adapter_base(out) == str(tiny_model_dir)
    merged, base = load_model(str(out), "cpu"), load_model(str(tiny_model_dir), "cpu")
    assert type(merged.model).__name__ == type(base.model).__name__  # a plain model: peft is gone after the merge
    ids = [5, 17, 42, 9]
    assert not torch.allclose(logits(merged.model, ids), logits(base.model, ids))  # the update is applied
    in_bf16 = load_model(str(out), "cpu", dtype="bfloat16").model
    rounded_once = {k: v.to(torch.bfloat16) for k, v in merged.model.state_dict().items()}
    assert all(torch.equal(v, rounded_once[k]) for k, v in in_bf16.state_dict().items())  # merged in float32, cast once


def test_a_packed_adapter_is_half_the_size_and_loads_to_nearly_the_same_model(tiny_model_dir, data_dir, tmp_path):  # noqa: F811
    from cllm.cli import main
    from cllm.training.pack import pack_adapter

    trained, packed = tmp_path / "lora-cllm", tmp_path / "shipped"
    train_cllm(str(tiny_model_dir), data_dir, trained, TrainConfig(**QUICK, max_steps=2, lora_rank=4, lora_alpha=8),
               JobHooks(progress=False))
    assert main(["pack-adapter", str(trained), str(packed)]) == 0
    assert sorted(p.name for p in packed.iterdir()) == ["README.md", ADAPTER_CONFIG, "adapter_model.safetensors",
                                                         "cllm_training.json"]  # no tokenizer copy
    from safetensors.torch import load_file
    full, half = load_file(trained / "adapter_model.safetensors"), load_file(packed / "adapter_model.safetensors")
    assert {k: v.shape for k, v in half.items()} == {k: v.shape for k, v in full.items()}
    assert {v.dtype for v in half.values()} == {torch.float16}  # 2 bytes a parameter instead of 4
    ids = [5, 17, 42, 9]
    a, b = logits(load_model(str(trained), "cpu").model, ids), logits(load_model(str(packed), "cpu").model, ids)
    assert torch.allclose(a, b, atol=1e-2) and not torch.equal(a, b)  # only the low-rank update is rounded
    with pytest.raises(ValueError, match="holds no LoRA adapter"):
        pack_adapter(tiny_model_dir, tmp_path / "x")
    with pytest.raises(ValueError, match="is the adapter being packed"):
        pack_adapter(packed, packed)
    with pytest.raises(ValueError, match="holds the adapter being packed"):
        pack_adapter(packed, tmp_path)  # e.g. assets/models without the new folder's name
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds no model"):
        pack_adapter(packed, tmp_path / "notes")
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    assert main(["pack-adapter", str(tmp_path / "missing"), str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()


def test_adapter_load_errors_are_one_line(tmp_path):
    folder = tmp_path / "bad-adapter"
    folder.mkdir()
    (folder / ADAPTER_CONFIG).write_text(json.dumps({"r": 4}))
    with pytest.raises(ModelLoadError, match="names no base model"):
        load_model(str(folder), "cpu")
    (folder / ADAPTER_CONFIG).write_text(json.dumps({"base_model_name_or_path": str(folder)}))
    with pytest.raises(ModelLoadError, match="names itself"):
        load_model(str(folder), "cpu")


def test_training_resumes_from_the_newest_checkpoint(tiny_model_dir, data_dir, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    first = fit_cllm(str(tiny_model_dir), data_dir, TrainConfig(**QUICK, max_steps=4, work_dir=str(work), save_every=2))
    assert first.report.steps == 4 and (work / "checkpoint-4").is_dir()
    again = fit_cllm(str(tiny_model_dir), data_dir, TrainConfig(**QUICK, max_steps=6, work_dir=str(work), save_every=2))
    assert again.report.steps == 6  # global step carries on from checkpoint-4
    assert [m["step"] for m in again.report.history if "loss" in m][:1] in ([], [5], [6])  # no step 1..4 redone


def test_work_dir_refuses_rounds():
    with pytest.raises(ValueError, match="one round per launch"):
        TrainConfig(work_dir="w", rounds=2)


def test_context_without_gradients_gives_the_same_logits_and_trains_blocks_only(tiny_model_dir, data_dir):  # noqa: F811
    from cllm.training.dataset import load_entries
    from cllm.training.trainer import ConsistencyCollator, ConsistencyData, block_logits

    model = load_model(str(tiny_model_dir), "cpu").model.train()
    _, entries = load_entries(data_dir)
    batch = ConsistencyCollator("global", "block")([ConsistencyData(entries, "global", k=2)[i] for i in range(4)])
    _, with_grad = block_logits(model, batch, context_grad=True)
    _, without = block_logits(model, batch, context_grad=False)
    assert torch.allclose(with_grad, without, atol=1e-6)
    without.sum().backward()  # gradients reach the weights through the block tokens alone
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ar-scope block"):
        TrainConfig(context_grad=False, ar_scope="sequence")


def test_an_adapter_folder_counts_as_a_model_we_may_replace(tmp_path):
    """A resumed LoRA run writes its adapter over the last one: --out holding an adapter is not refused,
    while a folder of other files still is."""
    from cllm.training.checkpoint import check_out_folder
    adapter, other = tmp_path / "adapter", tmp_path / "other"
    adapter.mkdir()
    other.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (other / "notes.txt").write_text("mine")
    assert check_out_folder(adapter, [], "the data") == adapter
    with pytest.raises(ValueError, match="holds no model"):
        check_out_folder(other, [], "the data")


def test_packing_refuses_weights_that_overflow_half_precision(tmp_path):
    from safetensors.torch import save_file

    from cllm.training.pack import pack_adapter
    src = tmp_path / "adapter"
    src.mkdir()
    (src / ADAPTER_CONFIG).write_text(json.dumps({"base_model_name_or_path": "tiny-python"}))
    save_file({"a.lora_A.weight": torch.full((2, 2), 1e6)}, src / "adapter_model.safetensors")
    with pytest.raises(ValueError, match="does not fit in float16"):
        pack_adapter(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert pack_adapter(src, tmp_path / "out32", "float32").parameters == 4


def test_training_goes_on_from_a_shipped_adapter(tiny_model_dir, data_dir, tmp_path):  # noqa: F811
    """A fresh machine keeps no checkpoints: --init-adapter continues the adapter git holds, in float32."""
    from cllm.adapters import continue_lora
    from cllm.training.pack import pack_adapter
    from safetensors.torch import load_file

    lora = {"lora_rank": 4, "lora_alpha": 8}
    trained, packed, more = tmp_path / "lora-cllm", tmp_path / "shipped", tmp_path / "more"
    train_cllm(str(tiny_model_dir), data_dir, trained, TrainConfig(**QUICK, max_steps=2, **lora), JobHooks(progress=False))
    pack_adapter(trained, packed)
    model = continue_lora(load_model(str(tiny_model_dir), "cpu").model.float(), packed, 4, 8, str(tiny_model_dir))
    adapter = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert adapter and all(p.requires_grad and p.dtype == torch.float32 for p in adapter.values())
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    ids = [5, 17, 42, 9]
    assert torch.allclose(logits(model, ids), logits(load_model(str(packed), "cpu").model, ids), atol=1e-5)  # starts there
    info = train_cllm(str(tiny_model_dir), data_dir, more, TrainConfig(**QUICK, max_steps=2, init_adapter=str(packed),
                                                                       **lora), JobHooks(progress=False))
    assert info.steps == 2 and adapter_base(more) == str(tiny_model_dir)
    before, after = load_file(packed / "adapter_model.safetensors"), load_file(more / "adapter_model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k].float(), after[k]) for k in before)


def test_a_wrong_initial_adapter_is_one_clear_error(tiny_model_dir, data_dir, tmp_path):  # noqa: F811
    from cllm.adapters import continue_lora

    trained = tmp_path / "lora-cllm"
    train_cllm(str(tiny_model_dir), data_dir, trained, TrainConfig(**QUICK, max_steps=1, lora_rank=4, lora_alpha=8),
               JobHooks(progress=False))
    model = load_model(str(tiny_model_dir), "cpu").model
    with pytest.raises(ValueError, match="give --lora-rank 4 --lora-alpha 8"):
        continue_lora(model, trained, 16, 32, str(tiny_model_dir))
    with pytest.raises(ValueError, match="was trained on .*, not --model other"):
        continue_lora(model, trained, 4, 8, "other")
    with pytest.raises(ValueError, match="no adapter_config.json there"):
        continue_lora(model, tiny_model_dir, 4, 8, str(tiny_model_dir))
    with pytest.raises(ValueError, match="give --lora-rank"):
        TrainConfig(init_adapter=str(trained))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_the_cache_argument_is_the_models_own_through_wrappers(arch):
    """An adapter or torch.compile wraps forward(**kwargs): the name is read from the model inside (the old
    `past_key_values` warns since transformers 5.2x and goes in 5.40), and a decode through the wrapper equals
    the plain model's."""
    import inspect

    from cllm.adapters import with_lora
    from cllm.jacobi import JacobiConfig, cache_arg, jacobi_decode
    from conftest import tiny_model

    model = tiny_model(arch)
    own = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    plain = jacobi_decode(model, [3, 1, 4], JacobiConfig(n=4, max_new_tokens=12, seed=1)).tokens
    wrapped = with_lora(model, 4, 8.0)
    assert cache_arg(torch.compile(model)) == cache_arg(wrapped) == cache_arg(torch.nn.DataParallel(wrapped)) == own

    class Holder(torch.nn.Module):  # a model of its own whose submodule is named `module`: not a wrapper
        def __init__(self):
            super().__init__()
            self.module = model

        def forward(self, input_ids, past_key_values=None):
            return self.module(input_ids=input_ids)

    assert cache_arg(Holder()) == "past_key_values"
    assert jacobi_decode(wrapped, [3, 1, 4], JacobiConfig(n=4, max_new_tokens=12, seed=1)).tokens == plain
