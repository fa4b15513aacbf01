"""CLLM training on a tiny model: batches, a short run that lowers the consistency loss, streaming and
stopping, the saved checkpoint, and clear errors for bad inputs."""
from __future__ import annotations

import json
import random
import shutil
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from cllm.cli import main
from cllm.training.collect import CollectConfig, collect
from cllm.training.fit import fit_cllm
from cllm.training.dataset import Entry, load_entries
from cllm.training.losses import IGNORE, consistency_loss, teachable_mask
from cllm.models import load_model
from cllm.training.measure import distinct_ngrams
from cllm.training.report import JobHooks
from cllm.training.train import train_cllm
from cllm.training.config import TrainConfig
from cllm.training.trainer import ConsistencyCollator, ConsistencyData, block_logits, loss_parts
from conftest import VOCAB, tiny_model

PROMPTS = ["def add(a, b):", "for i in range(", "class Point:", "def f(x):\n    return", "print(", "import os",
           "while True:", "if x > 0:"]
QUICK = dict(lr=3e-3, ar_weight=0.0, batch_size=8, states_per_block=2, eval_prompts=3, eval_max_new_tokens=8, device="cpu")


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


@pytest.fixture(scope="module")
def data_dir(tiny_model_dir, prompts_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "d"
    collect(load_model(str(tiny_model_dir), "cpu"), prompts_file, out, CollectConfig(n=4, max_new_tokens=12),
            JobHooks(progress=False))
    return out


def item(context, states, targets, fixed):
    return {"context": context, "states": states, "targets": targets, "fixed_point": fixed}


def test_collator_lays_out_contexts_once_and_blocks_on_top():
    items = [item([5, 6, 7], [[1, 9, 9]], [[1, 2, 3]], [1, 2, 3]), item([8], [[4, 4]], [[4, 5]], [4, 5])]
    batch = ConsistencyCollator("global", "sequence")(items)
    assert batch["context_ids"].tolist() == [[5, 6], [0, 0]] and batch["context_mask"].tolist() == [[1, 1], [0, 0]]
    assert batch["context_labels"].tolist() == [[6, 7], [IGNORE, IGNORE]]
    assert batch["block_ids"].tolist() == [[7, 1, 2], [7, 1, 9], [8, 4, 0], [8, 4, 0]]  # per example: fixed, state
    assert batch["block_positions"].tolist() == [[2, 3, 4], [0, 1, 2]]
    assert batch["block_valid"].tolist() == [[True] * 3, [True, True, False]]
    assert batch["fixed_labels"].tolist() == [[1, 2, 3], [4, 5, IGNORE]]
    assert batch["states"].tolist() == [[[1, 9, 9]], [[4, 4, 0]]]
    two = [item([5, 6, 7], [[1, 9, 9], [9, 9, 9]], [[1, 2, 9], [1, 9, 9]], [1, 2, 3])]
    local = ConsistencyCollator("local", "block")(two)
    assert local["block_ids"].tolist() == [[7, 1, 2], [7, 1, 9], [7, 9, 9], [7, 1, 2], [7, 1, 9]]  # fixed, 2 states, 2 targets
    assert (local["context_labels"] == IGNORE).all()


def test_sampling_global_and_local():
    entry = Entry([1], [[7, 7, 7], [2, 7, 7], [2, 3, 7], [2, 3, 4]], [[2, 7, 4]])

    def pairs(data):
        drawn = [data[0] for _ in range(100)]
        assert all(len(d["states"]) == data.k and len(set(map(tuple, d["states"]))) == data.k for d in drawn)
        return {(tuple(s), tuple(t)) for d in drawn for s, t in zip(d["states"], d["targets"])}

    assert pairs(ConsistencyData([entry], "global", k=2)) == {
        ((7, 7, 7), (2, 3, 4)), ((2, 7, 7), (2, 3, 4)), ((2, 3, 7), (2, 3, 4)), ((2, 7, 4), (2, 3, 4))}
    assert pairs(ConsistencyData([entry], "local", k=1)) == {
        ((7, 7, 7), (2, 7, 7)), ((2, 7, 7), (2, 3, 7)), ((2, 3, 7), (2, 3, 4))}
    few = ConsistencyData([Entry([1], [[5, 5], [5, 6]], [])], "global", k=3)[0]  # one state: drawn 3 times
    assert few["states"] == [[5, 5]] * 3


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_shared_context_logits_equal_whole_sequence_logits(arch):
    """block_logits runs each context once under its blocks: same logits as feeding each sequence whole."""
    model = tiny_model(arch)
    rng = random.Random(0)
    items = []
    for length, width in ((5, 4), (1, 4), (9, 2)):
        ctx, fixed = [rng.randrange(VOCAB) for _ in range(length)], [rng.randrange(VOCAB) for _ in range(width)]
        states = [[rng.randrange(VOCAB) for _ in range(width)] for _ in range(2)]
        items.append(item(ctx, states, [s[:1] + fixed[1:] for s in states], fixed))
    batch = ConsistencyCollator("local", "sequence")(items)
    ctx_logits, logits = block_logits(model, batch)
    span = batch["context_ids"].shape[1]
    for b, it in enumerate(items):
        c, w = len(it["context"]), len(it["fixed_point"])
        for r, block in enumerate([it["fixed_point"]] + it["states"] + it["targets"]):
            whole = model(input_ids=torch.tensor([it["context"] + block[:-1]])).logits[0]
            assert torch.allclose(logits[b, r, :w], whole[c - 1:], atol=1e-9)
            if r == 0 and c > 1:
                assert torch.allclose(ctx_logits[b, span - (c - 1):], whole[: c - 1], atol=1e-9)


def test_shared_context_gradients_equal_whole_sequence_gradients():
    """Gradients reach the context's weights through the repeated cache, as through whole sequences."""
    model = tiny_model("qwen2")
    items = [item([3, 1, 4, 1, 5], [[9, 2, 6], [5, 2, 2]], [[5, 3, 5]] * 2, [5, 3, 5]),
             item([2, 7], [[1, 8, 2], [8, 8, 8]], [[8, 1, 8]] * 2, [8, 1, 8])]
    batch = ConsistencyCollator("global", "sequence")(items)
    loss_parts(model, batch, TrainConfig(ar_weight=0.5))["loss"].backward()
    shared = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    student = torch.stack([model(input_ids=torch.tensor([it["context"] + s[:-1]])).logits[0, -3:]
                           for it in items for s in it["states"]])  # (4, 3, V)
    whole = [model(input_ids=torch.tensor([it["context"] + it["fixed_point"][:-1]])).logits[0] for it in items]
    target = torch.stack([w[-3:] for w in whole for _ in range(2)])
    mask = teachable_mask(batch["states"].flatten(0, 1), batch["targets"].flatten(0, 1), torch.ones(4, 3, dtype=torch.bool))
    consistency = consistency_loss(student, target, mask)
    labels = [torch.tensor(it["context"][1:] + it["fixed_point"]) for it in items]
    ar = torch.nn.functional.cross_entropy(torch.cat(whole), torch.cat(labels), label_smoothing=0.1)
    (consistency + 0.5 * ar).backward()
    # float32-level tolerance: Qwen2's RMSNorm computes in float32 even in a float64 model.
    assert all(torch.allclose(a, p.grad, rtol=1e-5, atol=1e-6) for a, p in zip(shared, model.parameters()))


def test_distinct_ngrams_falls_when_outputs_loop():
    assert distinct_ngrams([[1, 2, 3, 4, 5, 6]]) == 1.0
    assert distinct_ngrams([[7] * 6]) == 1 / 3 and distinct_ngrams([[1, 2] * 5, [1, 2]]) == 2 / 7


def mean_global_consistency(model, entries) -> float:
    """The global consistency loss over every recorded state of every block (deterministic)."""
    items = [item(e.context, [s], [e.fixed_point], e.fixed_point) for e in entries for s in e.states[:-1]]
    with torch.no_grad():
        return loss_parts(model, ConsistencyCollator()(items), TrainConfig(ar_weight=0.0))["consistency"].item()


def test_short_run_lowers_consistency_loss_and_saves_a_loadable_model(tiny_model_dir, data_dir, prompts_file, tmp_path):
    streamed = []
    out = tmp_path / "cllm"
    info = train_cllm(str(tiny_model_dir), data_dir, out, TrainConfig(max_steps=20, eval_every=10, **QUICK, eval_file=str(prompts_file)), JobHooks(on_metrics=streamed.append, progress=False))
    _, entries = load_entries(data_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trained = AutoModelForCausalLM.from_pretrained(out)
    assert mean_global_consistency(trained, entries) < 0.5 * mean_global_consistency(base, entries)
    assert info.steps == 20 and info.stopped_by == "max steps (20)"
    assert [m["step"] for m in streamed] == list(range(1, 21))
    assert {"loss", "consistency", "ar", "lr", "seconds", "epoch"} <= set(streamed[0])
    assert [m["step"] for m in streamed if "tpf" in m] == [10, 20]
    assert info.after["matches_ar"] == 1.0 and info.after["tpf"] >= 1.0
    card = (out / "README.md").read_text()
    assert 0 < info.after["distinct_4grams"] <= 1 and "distinct 4-grams" in card
    assert "Jacobi tokens per forward pass" in card and "held-out perplexity" in card and f"{info.before['tpf']:.3f}" in card
    assert (out / "tokenizer.json").exists() and not list(tmp_path.glob(".*tmp"))
    record = json.loads((out / "cllm_training.json").read_text())  # what Explore's pair picker reads
    assert (record["base_model"], record["n"], record["steps"]) == (str(tiny_model_dir), 4, 20)
    assert record["after"]["tpf"] == info.after["tpf"] and "history" not in record


def test_dtype_sets_the_autocast_and_keeps_float32_master_weights(tiny_model_dir, data_dir, prompts_file):
    """Both train the base's exact float32 weights (a LoRA adapter is merged into the exact base at load);
    bfloat16 autocasts the Trainer's passes (auto picks it on CUDA), and the autocast is gone afterwards."""
    exact = load_model(str(tiny_model_dir), "cpu").model.state_dict()["model.layers.0.mlp.up_proj.weight"]
    for dtype, autocast in (("float32", False), ("bfloat16", True)):
        config = TrainConfig(max_steps=1, **QUICK, eval_file=str(prompts_file), dtype=dtype, lora_rank=4, lora_alpha=8)
        fit = fit_cllm(str(tiny_model_dir), data_dir, config, JobHooks(progress=False))
        assert fit.trainer.args.bf16 is autocast
        frozen = fit.model.get_base_model().model.layers[0].mlp.up_proj.base_layer.weight
        assert torch.equal(frozen, exact)  # not a bf16-rounded copy
        assert "_original_forward" not in vars(fit.model)  # accelerate's autocast wrapper was removed


def test_stop_event_ends_training_cleanly(tiny_model_dir, data_dir, prompts_file, tmp_path):
    stop = threading.Event()

    def on_metrics(metrics):
        if metrics["step"] == 2:
            stop.set()  # e.g. the app's Stop button, from another thread

    info = train_cllm(str(tiny_model_dir), data_dir, tmp_path / "m", TrainConfig(max_steps=50, **QUICK, eval_file=str(prompts_file)), JobHooks(on_metrics=on_metrics, stop=stop, progress=False))
    assert info.steps == 2 and info.stopped_by == "stop request"
    assert (tmp_path / "m" / "model.safetensors").exists()


def test_full_disk_during_save_leaves_no_half_checkpoint(tiny_model_dir, data_dir, prompts_file, tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", no_space)  # test-only: simulate a full disk
    out = tmp_path / "m"
    with pytest.raises(OSError, match="could not save the model .*No space left on device.*nothing was written"):
        train_cllm(str(tiny_model_dir), data_dir, out, TrainConfig(max_minutes=1e-4, max_steps=50, **QUICK, eval_file=str(prompts_file)), JobHooks(progress=False))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_not_enough_disk_fails_before_training(tiny_model_dir, data_dir, prompts_file, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match="not enough disk space"):
        train_cllm(str(tiny_model_dir), data_dir, tmp_path / "m", TrainConfig(max_steps=1, **QUICK, eval_file=str(prompts_file)))


def test_bad_inputs_are_clear_errors(tiny_model_dir, data_dir, prompts_file, tmp_path):
    model, config = str(tiny_model_dir), TrainConfig(max_steps=1, **QUICK, eval_file=str(prompts_file))
    with pytest.raises(ValueError, match="no dataset folder"):
        train_cllm(model, tmp_path / "missing", tmp_path / "m", config)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "meta.json").write_text((data_dir / "meta.json").read_text())
    with pytest.raises(ValueError, match="holds no training blocks"):
        train_cllm(model, empty, tmp_path / "m", config)
    with pytest.raises(ValueError, match="--n 16 does not match the data's n = 4"):
        train_cllm(model, data_dir, tmp_path / "m", TrainConfig(n=16, **QUICK, eval_file=str(prompts_file)))
    with pytest.raises(ValueError, match="is the data or the base model folder"):
        train_cllm(model, data_dir, data_dir, config)
    with pytest.raises(ValueError, match="non-empty folder that holds no model"):
        train_cllm(model, data_dir, empty, config)
    with pytest.raises(ValueError, match="loss must be one of global, local"):
        TrainConfig(loss="both")
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps(meta | {"vocab_size": meta["vocab_size"] + 7}))
    with pytest.raises(ValueError, match="not the same tokenizer"):
        train_cllm(model, other, tmp_path / "m", config)


def test_cli_train(tiny_model_dir, data_dir, prompts_file, tmp_path, capsys):
    out = tmp_path / "m"
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(data_dir), "--out", str(out), "--max-steps", "2",
                 "--lr", "1e-3", "--eval-prompts", str(prompts_file), "--eval-count", "2", "--eval-max-new-tokens", "8",
                 "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith(f"saved {out}: 2 steps") and "TPF" in printed
    assert len(printed.strip().splitlines()) == 1  # the result only: no Trainer log dicts on stdout
    code = main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: no dataset folder at {tmp_path / 'none'}"
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(data_dir), "--out", str(tmp_path / "x"),
                 "--n", "8"])
    assert code == 2 and "does not match the data's n = 4" in capsys.readouterr().err


def test_real_text_ar_draws_text_rows_and_trains_on_them(tiny_model_dir, data_dir, prompts_file, tmp_path):
    """--ar-text: a second AR term on windows of real text (one per block), beside the fixed point's."""
    entry = Entry([1], [[7, 7], [2, 3]], [])
    text = torch.arange(100, 140)
    data = ConsistencyData([entry] * 3, "global", text_ids=text, text_tokens=8, seed=1)
    items = [data[i] for i in range(3)]
    for it in items:
        row = it["text_row"].tolist()
        assert len(row) == 8 and row == list(range(row[0], row[0] + 8))  # a contiguous window of the text
    batch = ConsistencyCollator("global", "block")(items)
    assert batch["text_ids"].shape == (3, 8) and (batch["context_labels"] == IGNORE).all()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def add(a, b):\n    return a + b\n" * 40)
    config = TrainConfig(max_steps=3, ar_text=str(corpus), ar_text_tokens=16, eval_file=str(prompts_file),
                         **QUICK | {"ar_weight": 1.0})
    info = train_cllm(str(tiny_model_dir), data_dir, tmp_path / "m", config, JobHooks(progress=False))
    assert info.steps == 3 and all(m["text_ar"] > 0 and m["ar"] > 0 for m in info.history)
    assert info.config["ar_text"] == str(corpus)


def test_ar_text_errors(tmp_path):
    with pytest.raises(ValueError, match="text-weight non-negative"):
        TrainConfig(ar_text="stdlib", text_weight=-1)
    from cllm.training.fit import read_ar_text

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00x")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_ar_text(str(bad), None)
    with pytest.raises(ValueError, match="not a file"):
        read_ar_text(str(tmp_path / "missing.txt"), None)


def test_stdlib_text_is_tokenized_once_per_tokenizer(tiny_model_dir):
    """The Train tab's real-text term: the stdlib split's ids are computed once, then served again."""
    from cllm.training.fit import read_ar_text

    tokenizer = load_model(str(tiny_model_dir), "cpu").tokenizer
    ids = read_ar_text("stdlib", tokenizer)
    assert ids.dim() == 1 and len(ids) > 10_000 and int(ids.max()) < len(tokenizer)
    assert (ids == tokenizer.eos_token_id).sum() > 100  # documents joined by EOS
    assert read_ar_text("stdlib", tokenizer) is ids


def test_atomic_save_can_refuse_to_replace(tiny_model_dir, tmp_path):
    from cllm.training.checkpoint import save_pretrained_atomic

    loaded = load_model(str(tiny_model_dir), "cpu")
    out = save_pretrained_atomic(loaded.model, loaded.tokenizer, tmp_path / "m", "card", {"extra.json": "{}"})
    assert (out / "README.md").read_text() == "card" and (out / "extra.json").read_text() == "{}"
    with pytest.raises(FileExistsError):
        save_pretrained_atomic(loaded.model, loaded.tokenizer, out, "other", replace=False)
    assert (out / "README.md").read_text() == "card" and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    save_pretrained_atomic(loaded.model, loaded.tokenizer, out, "new")  # the default replaces, atomically
    assert (out / "README.md").read_text() == "new"
