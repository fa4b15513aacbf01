"""Training in rounds (cllm.training.rounds): budget split, prompts per round, re-collection from the weights as
trained so far, metrics that carry on across rounds, the card, Stop during a re-collection, bad inputs."""
from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch

import cllm.training.rounds as train_rounds
from cllm.training.collect import CollectConfig, collect
from cllm.training.dataset import DatasetError
from cllm.models import load_model
from cllm.training.rounds import fit_rounds, plan_rounds, round_configs, round_prompts
from cllm.training.report import JobHooks
from cllm.training.train import train_cllm
from cllm.training.config import TrainConfig
from test_trainer import PROMPTS, prompts_file  # noqa: F401 (a fixture: the same 8 prompts as file)

QUICK = dict(lr=3e-3, ar_weight=1.0, batch_size=4, states_per_block=2, eval_prompts=2, eval_max_new_tokens=8,
             device="cpu")


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["def g(y):", "x = [", PROMPTS[7]]))
    return path


@pytest.fixture(scope="module")
def data_dir(tiny_model_dir, prompts_file, tmp_path_factory):
    """Round 1's data: the first 3 of the 8 prompts."""
    out = tmp_path_factory.mktemp("data") / "d"
    collect(load_model(str(tiny_model_dir), "cpu"), prompts_file, out, CollectConfig(n=4, max_new_tokens=12, limit=3),
            JobHooks(progress=False))
    return out


def test_round_prompts_take_the_next_slice_and_wrap_around():
    pool = list("abcdefgh")
    assert [round_prompts(pool, 3, r) for r in range(4)] == [list("abc"), list("def"), list("gha"), list("bcd")]
    assert round_prompts(pool, 20, 1) == pool  # never more prompts than the pool holds
    assert round_prompts(["x"], 1, 5) == ["x"]


def test_budget_is_split_between_rounds():
    assert [c.max_steps for c in round_configs(TrainConfig(max_steps=10, rounds=3))] == [4, 3, 3]
    with pytest.raises(ValueError, match=r"max-steps \(2\) must be at least rounds \(3\)"):
        TrainConfig(max_steps=2, rounds=3)  # no round of 0 steps
    split = round_configs(TrainConfig(max_minutes=3.0, rounds=3))
    assert [c.max_minutes for c in split] == pytest.approx([1.0] * 3) and {c.rounds for c in split} == {1}
    assert round_configs(TrainConfig(max_steps=5)) == [TrainConfig(max_steps=5)]
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        TrainConfig(rounds=0)


def test_three_rounds_recollect_from_the_trained_weights(tiny_model_dir, data_dir, heldout_file, tmp_path, monkeypatch):
    collected = []  # (prompts, weights) each re-collection decoded with

    def spy(loaded, prompts, out, config, *args):
        collected.append(([json.loads(line)["prompt"] for line in open(prompts)],
                          loaded.model.lm_head.weight.detach().clone(), config))
        return collect(loaded, prompts, out, config, *args)

    monkeypatch.setattr(train_rounds, "collect", spy)
    streamed, ends = [], {}
    info = train_cllm(str(tiny_model_dir), data_dir, tmp_path / "m", TrainConfig(max_steps=6, rounds=3, eval_every=2, **QUICK, eval_file=str(heldout_file)), JobHooks(on_metrics=streamed.append, progress=False))
    # the next 3 prompts each round, wrapping around; PROMPTS[7] is held out, so it is never trained on
    assert [c[0] for c in collected] == [PROMPTS[3:6], PROMPTS[6:7] + PROMPTS[:2]]
    assert all((c[2].n, c[2].max_new_tokens) == (4, 12) for c in collected)  # round 1's collection options
    base = load_model(str(tiny_model_dir), "cpu").model.lm_head.weight
    assert not torch.equal(collected[0][1], base)  # round 2 decoded with the weights round 1 trained
    assert not torch.equal(collected[1][1], collected[0][1])
    assert info.steps == 6 and [r.steps for r in info.rounds] == [2, 2, 2]
    assert [(m["step"], m["round"]) for m in streamed] == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)]
    assert [m["step"] for m in info.history] == list(range(1, 7))
    for m in streamed:
        ends[m["round"]] = m["seconds"]
    assert ends[1] < ends[2] < ends[3] <= info.seconds  # seconds go on counting across rounds
    assert info.after == info.rounds[2].after and info.after["matches_ar"] == 1.0
    assert info.config["rounds"] == 3 and info.config["max_steps"] == 6
    assert info.stopped_by == "max steps (6 over 3 rounds)"
    card = (tmp_path / "m" / "README.md").read_text()
    assert "Rounds: 3" in card and f"TPF after {info.rounds[0].after['tpf']:.2f}" in card
    record = json.loads((tmp_path / "m" / "cllm_training.json").read_text())
    assert (record["rounds"], record["prompts"]) == (3, 9)  # 3 prompts in each round


def test_stop_during_a_recollection_keeps_the_trained_model(tiny_model_dir, heldout_file, tmp_path):
    prompts = tmp_path / "many.jsonl"  # 10 prompts a round: two collection batches of 8, Stop after the first
    prompts.write_text("".join(json.dumps({"prompt": f"def f{i}(x):"}) + "\n" for i in range(20)))
    data = tmp_path / "d"
    collect(load_model(str(tiny_model_dir), "cpu"), prompts, data, CollectConfig(n=4, max_new_tokens=6, limit=10),
            JobHooks(progress=False))
    stop = threading.Event()
    seen = []

    def on_collect(counts):
        seen.append(counts)
        stop.set()  # Stop pressed while round 2 collects

    fit = fit_rounds(str(tiny_model_dir), data, TrainConfig(max_steps=4, rounds=2, **QUICK, eval_file=str(heldout_file)), JobHooks(stop=stop, progress=False, on_collect=on_collect))
    assert [(c["round"], c["rounds"], c["prompts_done"], c["prompts_total"]) for c in seen] == [(2, 2, 8, 10)]
    assert fit.report.stopped_by == "stop request" and fit.report.steps == 2 and len(fit.report.rounds) == 1
    assert fit.report.after["matches_ar"] == 1.0


def test_a_missing_prompts_file_fails_before_training(tiny_model_dir, data_dir, heldout_file, tmp_path):
    moved = tmp_path / "d"
    shutil.copytree(data_dir, moved)
    meta = json.loads((moved / "meta.json").read_text())
    (moved / "meta.json").write_text(json.dumps(meta | {"prompts_file": str(tmp_path / "gone.jsonl")}))
    with pytest.raises(DatasetError, match="gone.jsonl, which is gone"):
        train_cllm(str(tiny_model_dir), moved, tmp_path / "m", TrainConfig(max_steps=2, rounds=2, **QUICK))
    assert not (tmp_path / "m").exists()
    (moved / "meta.json").write_text(json.dumps(meta | {"prompts_file": str(heldout_file)}))
    with pytest.raises(DatasetError, match="every prompt of .* is also a held-out prompt"):
        fit_rounds(str(tiny_model_dir), moved, TrainConfig(max_steps=2, rounds=2, **QUICK, eval_file=str(heldout_file)))
    fit = fit_rounds(str(tiny_model_dir), moved, TrainConfig(max_steps=1, **QUICK), JobHooks(progress=False))  # one round: no file needed
    assert fit.report.steps == 1


def test_stop_between_rounds_says_so(tiny_model_dir, data_dir, heldout_file, monkeypatch):
    stop, collected = threading.Event(), []
    monkeypatch.setattr(train_rounds, "collect", lambda *args, **kwargs: collected.append(args))

    def probe(loaded, measured):
        if len(calls := probe.calls) == 1:  # the measurement after round 1 (the first was "before")
            stop.set()
        calls.append(measured)

    probe.calls = []
    fit = fit_rounds(str(tiny_model_dir), data_dir, TrainConfig(max_steps=4, rounds=2, **QUICK, eval_file=str(heldout_file)), JobHooks(stop=stop, progress=False, probe=probe))
    assert fit.report.stopped_by == "stop request" and fit.report.steps == 2 and len(fit.report.rounds) == 1
    assert not collected  # round 2 never started collecting


def test_a_round_that_collects_nothing_keeps_the_trained_model(tiny_model_dir, data_dir, heldout_file, monkeypatch):
    def nothing(*args, **kwargs):
        raise DatasetError("collected no training blocks into /tmp/x")

    monkeypatch.setattr(train_rounds, "collect", nothing)
    fit = fit_rounds(str(tiny_model_dir), data_dir, TrainConfig(max_steps=4, rounds=2, **QUICK, eval_file=str(heldout_file)), JobHooks(progress=False))
    assert fit.report.stopped_by.startswith("round 2 collected no training blocks")
    assert fit.report.steps == 2 and fit.report.after["matches_ar"] == 1.0


def test_old_data_and_several_processes_are_refused_before_training(data_dir, heldout_file, monkeypatch):
    meta = json.loads((data_dir / "meta.json").read_text())
    old = {k: v for k, v in meta.items() if k != "repeat_period"}
    with pytest.raises(DatasetError, match="lacks repeat_period"):
        plan_rounds(old, 2, heldout_file)
    assert plan_rounds(old, 1, heldout_file).collect is None  # one round needs none of it
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="runs in one process"):
        plan_rounds(meta, 2, heldout_file)
