"""Collection: the dataset format on disk, resuming, cleaning, augmentation, clear errors."""
from __future__ import annotations

import json
import random
import threading

import pytest

from cllm.cli import main
from cllm.stats import has_repeat
from cllm.training.collect import CollectConfig, augment_states, collect, trajectory_record
from cllm.training.report import JobHooks
from cllm.training.dataset import DatasetError, load_entries, read_meta, shard_paths
from cllm.jacobi import JacobiConfig, greedy_decode, jacobi_decode
from cllm.models import load_model
from cllm.trajectory import Block, RunMeta, Trajectory

PROMPTS = ["def add(a, b):", "for i in range(", "class Point:", "def f(x):\n    return", "print(", "import os"]
SMALL = CollectConfig(n=4, max_new_tokens=10, batch_size=3, shard_prompts=2)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(str(tiny_model_dir), "cpu")


@pytest.fixture()
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


def test_format_matches_jacobi_and_ar(loaded, prompts_file, tmp_path):
    out = tmp_path / "data"
    meta = collect(loaded, prompts_file, out, SMALL, JobHooks(progress=False))
    assert meta["schema"] == "cllm-consistency-data" and meta["version"] == 1
    assert (meta["n"], meta["max_new_tokens"], meta["clean"], meta["augment"]) == (4, 10, True, True)
    assert meta["prompts_file"] == str(prompts_file.resolve()) and meta["counts"]["prompts"] == len(PROMPTS)
    assert meta["shards"] == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]  # 2 prompts each
    assert read_meta(out) == {k: v for k, v in meta.items() if k not in ("this_run", "stopped")} and not meta["stopped"]
    records = [json.loads(line) for p in shard_paths(out) for line in p.read_text().splitlines()]
    assert [r["prompt_index"] for r in records] == list(range(len(PROMPTS)))
    for r in records:
        ids = loaded.tokenizer(PROMPTS[r["prompt_index"]]).input_ids
        assert r["prompt_ids"] == ids
        assert r["output"] == greedy_decode(loaded.model, ids, 10, loaded.eos_token_id).tokens
        alone = jacobi_decode(loaded.model, ids, JacobiConfig(n=4, max_new_tokens=10, seed=r["prompt_index"]),
                              loaded.eos_token_id)  # seed + k, with seed 0
        assert [b["states"] for b in r["blocks"]] == [b.states for b in alone.blocks]
        assert [b["start"] for b in r["blocks"]] == [0, 4, 8][: len(r["blocks"])]
    _, entries = load_entries(out)
    assert len(entries) == meta["counts"]["blocks"] == sum(len(r["blocks"]) for r in records)
    first = records[0]
    assert entries[1].context == first["prompt_ids"] + first["output"][:4]
    assert entries[1].fixed_point == first["output"][4:8]


def test_resume_skips_done_prompts_and_keeps_their_shards(loaded, prompts_file, tmp_path):
    out = tmp_path / "data"
    first = collect(loaded, prompts_file, out, CollectConfig(**{**vars(SMALL), "limit": 3}), JobHooks(progress=False))
    assert first["counts"]["prompts"] == 3 and first["this_run"]["prompts"] == 3
    before = {p.name: p.read_text() for p in shard_paths(out)}
    stale = json.loads((out / "meta.json").read_text()) | {"counts": {}, "shards": []}
    (out / "meta.json").write_text(json.dumps(stale))  # as if interrupted between a shard and its meta.json
    again = collect(loaded, prompts_file, out, SMALL, JobHooks(progress=False))
    assert again["this_run"]["prompts"] == 3 and again["counts"]["prompts"] == 6 and again["limit"] is None
    assert all((out / name).read_text() == text for name, text in before.items())
    assert collect(loaded, prompts_file, out, SMALL, JobHooks(progress=False))["this_run"]["prompts"] == 0
    with pytest.raises(DatasetError, match=r"other options \(n 4 -> 8\)"):
        collect(loaded, prompts_file, out, CollectConfig(n=8, max_new_tokens=10), JobHooks(progress=False))


def test_progress_and_stop_leave_a_resumable_dataset(loaded, prompts_file, tmp_path):
    """on_progress sees every batch; a stop after the first batch keeps it as a shard, and a rerun finishes
    the set into exactly the data of an uninterrupted run."""
    out, seen, stop = tmp_path / "data", [], threading.Event()
    config = CollectConfig(n=4, max_new_tokens=10, batch_size=3)  # one shard, two batches

    def on_progress(counts):
        seen.append(counts)
        stop.set()  # e.g. the app's Stop button

    meta = collect(loaded, prompts_file, out, config, JobHooks(progress=False, on_collect=on_progress, stop=stop))
    assert meta["stopped"] and meta["counts"]["prompts"] == meta["this_run"]["prompts"] == 3  # one batch of 3
    assert seen == [{"prompts_done": 3, "prompts_total": 6, "blocks": meta["counts"]["blocks"],
                     "states": meta["counts"]["states"], "augmented_states": meta["counts"]["augmented_states"]}]
    rest = collect(loaded, prompts_file, out, config, JobHooks(progress=False, on_collect=seen.append))
    assert not rest["stopped"] and rest["this_run"]["prompts"] == 3 and seen[-1]["prompts_done"] == 6
    whole = collect(loaded, prompts_file, tmp_path / "whole", config, JobHooks(progress=False))
    assert load_entries(out)[1] == load_entries(tmp_path / "whole")[1] and rest["counts"] == whole["counts"]


def test_batch_size_does_not_change_the_data(loaded, prompts_file, tmp_path):
    one = collect(loaded, prompts_file, tmp_path / "a", CollectConfig(n=4, max_new_tokens=8, batch_size=1, limit=4), JobHooks(progress=False))
    four = collect(loaded, prompts_file, tmp_path / "b", CollectConfig(n=4, max_new_tokens=8, batch_size=4, limit=4), JobHooks(progress=False))
    assert one["counts"] == four["counts"]
    assert [p.read_text() for p in shard_paths(tmp_path / "a")] == [p.read_text() for p in shard_paths(tmp_path / "b")]


def fake_trajectory(fixed_points: list[list[int]], prompt=(1, 2, 3)) -> Trajectory:
    blocks = [Block([[0] * len(fp), [fp[0]] + [0] * (len(fp) - 1), fp], [0.1, 0.1]) for fp in fixed_points]
    return Trajectory(RunMeta(vocab_size=100), list(prompt), blocks)


def test_cleaning_drops_blocks_with_ten_equal_tokens_in_a_row():
    assert has_repeat([1] * 10, 10) and not has_repeat([1] * 9 + [2] + [1] * 9, 10)
    loop = [7] + [3, 4] * 5  # "#\n#\n..." : period 2, 10 tokens
    assert not has_repeat(loop, 10) and has_repeat(loop, 10, max_period=2) and not has_repeat(loop, 11, max_period=2)
    assert has_repeat([5, 6, 7] * 4, 10, max_period=3) and not has_repeat([5, 6, 7, 8] * 2, 10, max_period=4)
    traj = fake_trajectory([[5, 6, 7, 7], [7, 7, 7, 7], [7, 7, 7, 7], [1, 2, 3, 4]])
    record = trajectory_record(0, traj, CollectConfig(n=4, augment=False))
    # Block 2 completes a run of ten 7s (two of them from block 0); block 3's context holds that run.
    assert [b["start"] for b in record["blocks"]] == [0, 4] and record["dropped"] == 2
    assert record["output"] == traj.tokens  # dropped blocks stay in the output, as context
    kept = trajectory_record(0, traj, CollectConfig(n=4, clean=False, augment=False))
    assert len(kept["blocks"]) == 4 and kept["dropped"] == 0


def test_augmentation_corrects_half_of_the_wrong_tokens():
    fixed = [1, 2, 3, 4, 5, 6, 7, 8]
    states = [[9, 9, 9, 9, 9, 9, 9, 9], [1, 9, 9, 4, 9, 9, 9, 9], [1, 2, 3, 4, 5, 6, 9, 8], fixed]
    extra = augment_states(states, random.Random(0))
    assert len(extra) == 2  # the third state has one wrong token: nothing to halve
    for source, new in zip(states, extra):
        wrong = [i for i in range(8) if source[i] != fixed[i]]
        fixed_now = [i for i in wrong if new[i] == fixed[i]]
        assert len(fixed_now) == len(wrong) // 2
        assert all(new[i] == source[i] for i in range(8) if i not in fixed_now)
    assert all(s not in states for s in extra)
    record = trajectory_record(0, fake_trajectory([[5, 6, 7, 8]]), CollectConfig(n=4, augment=False))
    assert record["blocks"][0]["augmented"] == []


def test_clear_errors(loaded, prompts_file, tmp_path):
    with pytest.raises(ValueError, match="no prompt file"):
        collect(loaded, tmp_path / "missing.jsonl", tmp_path / "d", SMALL, JobHooks(progress=False))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty and holds no meta.json"):
        collect(loaded, prompts_file, busy, SMALL, JobHooks(progress=False))
    with pytest.raises(ValueError, match="leaves no room for a prompt in the model's context of 128"):
        collect(loaded, prompts_file, tmp_path / "e", CollectConfig(n=4, max_new_tokens=128), JobHooks(progress=False))
    assert not (tmp_path / "e").exists()  # refused before anything was written
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"prompt": "def f(x):\n" * 60}) + "\n")
    with pytest.raises(DatasetError, match="collected no training blocks"):  # every prompt too long for 128 positions
        collect(loaded, long, tmp_path / "f", CollectConfig(n=4, max_new_tokens=8), JobHooks(progress=False))
    with pytest.raises(ValueError, match="batch-size must be at least 1"):
        CollectConfig(batch_size=0)
    with pytest.raises(DatasetError, match="no dataset folder"):
        load_entries(tmp_path / "nothing")


def test_cli_collect(tiny_model_dir, prompts_file, tmp_path, capsys):
    out = tmp_path / "data"
    code = main(["collect", "--model", str(tiny_model_dir), "--prompts", str(prompts_file), "--out", str(out),
                 "--n", "4", "--max-new-tokens", "8", "--limit", "2", "--no-augment", "--batch-size", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "2 prompts" in printed and "tokens/s" in printed
    assert read_meta(out)["augment"] is False and read_meta(out)["limit"] == 2
    code = main(["collect", "--model", str(tiny_model_dir), "--prompts", str(tmp_path / "none.jsonl"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: no prompt file") and len(err.strip().splitlines()) == 1
