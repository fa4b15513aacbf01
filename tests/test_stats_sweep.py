"""The Stats tab's block-size sweep: recorded by `stats --record --sweep` beside a dataset run, read back whole,
served at once for exactly the request it answers (the section opens on it), else swept live in the models' line."""
from __future__ import annotations

import json

import gradio as gr
import pytest
import torch

from cllm import evaluate
from cllm.cli import main
from cllm.dataset_run import DatasetRunError, dataset_run_from_dict, find_sweep, load_dataset_run
from cllm.ui import stats_sweep, stats_tab
from test_dataset_run import PROMPTS, SETTINGS, asked, no_progress, recorded, tab_opened_on  # noqa: F401 (recorded: a fixture)
from test_model_worker import answers_behind_a_holder, no_model_work, while_held

ALL_NS = [str(n) for n in evaluate.SWEEP_NS]


@pytest.fixture(autouse=True)
def a_cpu_app(monkeypatch):
    """The serving under test is a CPU app's, whatever runs the test (on CUDA the app decodes live)."""
    monkeypatch.setattr(stats_sweep, "cached_dtype", lambda: torch.float32)
    monkeypatch.setattr(stats_tab, "cached_dtype", lambda: torch.float32)


def sweep_answers(*args) -> list[tuple]:
    return list(stats_sweep.run_sweep(*args, progress=no_progress))


def test_record_keeps_a_sweep_of_both_models_at_every_n(recorded):
    run = load_dataset_run(recorded[1])
    assert [(r["model"], r["n"]) for r in run.sweep] == [(m, n) for n in evaluate.SWEEP_NS for m in ("base", "cllm")]
    assert all(r["matches_ar"] == 1.0 and r["tpf"] >= 1.0 and r["speedup"] > 0 for r in run.sweep)
    assert [type(r["n"]) for r in run.sweep] == [int] * len(run.sweep)  # plain JSON numbers
    at_run_n = {r["model"]: r["tpf"] for r in run.sweep if r["n"] == 4}  # the runs' own n
    assert at_run_n["cllm"] == pytest.approx(sum(len(t.tokens) for t in run.trajs["cllm"]) /
                                             sum(t.forward_passes for t in run.trajs["cllm"]))


def test_a_sweep_is_found_only_for_the_request_it_answers(recorded, tiny_pair):
    folder = recorded[0]
    run, rows = find_sweep(folder, PROMPTS, *asked(tiny_pair, n=16), [8, 4])  # the asked n does not matter
    assert [(r["model"], r["n"]) for r in rows] == [("base", 4), ("cllm", 4), ("base", 8), ("cllm", 8)]
    assert run.prompts == PROMPTS
    assert find_sweep(folder, PROMPTS, *asked(tiny_pair), [4, 128]) is None  # an n it did not sweep
    assert find_sweep(folder, PROMPTS, *asked(tiny_pair, seed=1), [4]) is None
    assert find_sweep(folder, PROMPTS, *asked(tiny_pair, max_new_tokens=16), [4]) is None
    assert find_sweep(folder, PROMPTS[:2], *asked(tiny_pair), [4]) is None
    assert find_sweep(folder, PROMPTS, *reversed(asked(tiny_pair)), [4]) is None


def _row(d: dict, i: int, **change) -> dict:
    return d | {"sweep": [r | change if k == i else r for k, r in enumerate(d["sweep"])]}


@pytest.mark.parametrize("change, message", [
    (lambda d: d | {"sweep": []}, "sweep must be a list of 1 to"),
    (lambda d: d | {"sweep": "rows"}, "sweep must be a list of 1 to"),
    (lambda d: _row(d, 0, secret=1), "each sweep row must hold"),
    (lambda d: _row(d, 0, model="judge"), "model must be base or cllm"),
    (lambda d: _row(d, 0, n=0), "whole number from 1 to 1024"),
    (lambda d: _row(d, 0, n=4.0), "whole number from 1 to 1024"),
    (lambda d: _row(d, 0, tpf=float("nan")), "finite numbers"),
    (lambda d: _row(d, 0, speedup="fast"), "finite numbers"),
    (lambda d: _row(d, 0, matches_ar=-1.0), "finite numbers"),
    (lambda d: d | {"sweep": d["sweep"] + d["sweep"][:1]}, "each model once at every n"),
    (lambda d: d | {"sweep": d["sweep"][1:]}, "each model once at every n"),
    (lambda d: _row(d, 1, tpf=9.0), "the sweep's cllm TPF at n = 4 is not the runs'"),  # row 1: cllm at n = 4
])
def test_bad_sweeps_are_refused_with_a_reason(recorded, change, message):
    data = json.loads(recorded[1].read_text())
    with pytest.raises(DatasetRunError, match=message):
        dataset_run_from_dict(change(data))


def test_a_run_without_a_sweep_still_reads(recorded):
    data = json.loads(recorded[1].read_text())
    del data["sweep"]
    assert dataset_run_from_dict(data).sweep is None


def test_a_recorded_sweep_is_served_without_the_models_and_matches_a_live_one(recorded, tiny_pair, monkeypatch):
    folder, _, prompts = recorded
    ask = (*tiny_pair, stats_tab.UPLOAD, str(prompts), 3, ["8", "4"], 8)
    [live] = [a for a in sweep_answers(*ask) if a[3] == stats_sweep.LIVE_NOTE]  # the shipped folder has none
    monkeypatch.setattr(stats_sweep, "DATASETS_DIR", folder)
    monkeypatch.setattr(stats_sweep, "live_sweep", no_model_work)
    [served] = while_held(lambda: sweep_answers(*ask))
    assert "Recorded sweep" in served[3] and "p.jsonl" in served[3]
    shown = [c for c in live[0].columns if "speed-up" not in c]  # the speed-ups are the recording machine's
    assert len(served[0]) == 4 and served[0][shown].equals(live[0][shown])
    with pytest.raises(gr.Error, match="must not load"):  # one setting changed: swept live
        sweep_answers(*tiny_pair, stats_tab.UPLOAD, str(prompts), 2, ["4"], 8)


def test_a_live_sweep_waits_its_turn_saying_how_many_are_ahead(tiny_pair, tmp_path):
    prompts = tmp_path / "q.txt"
    prompts.write_text("def g(y):\n")
    first, said = answers_behind_a_holder(
        stats_sweep.run_sweep(*tiny_pair, stats_tab.UPLOAD, str(prompts), 1, ["4"], 8, progress=no_progress))
    assert "1 request is ahead of yours" in first[3] and all(o == gr.skip() for o in first[:3])
    assert said[-1][3] == stats_sweep.LIVE_NOTE and len(said[-1][0]) == 2


def test_the_section_opens_on_the_recorded_sweep_and_sweep_asks_for_it_again(recorded, tiny_pair, monkeypatch):
    assert stats_sweep.first_sweep(None) == (None, None, None, "")
    demo, blocks = tab_opened_on(recorded, tiny_pair, monkeypatch)
    [sweep] = [f for f in demo.fns.values() if f.fn is stats_sweep.run_sweep]
    assert len(sweep.outputs) == 4 and sweep.concurrency_limit is None
    assert "Recorded sweep" in blocks["stats-sweep-note"].value
    assert len(sweep.outputs[0].value["data"]) == 2 * len(ALL_NS)
    base, cllm, source, limit, ns, tokens = (blocks[k].value for k in (
        "stats-base", "stats-cllm", "stats-source", "stats-limit", "stats-sweep-ns", "stats-tokens"))
    [out] = sweep_answers(base, cllm, source, None, limit, ns, tokens)
    assert "Recorded sweep" in out[3]  # what a visitor gets on pressing Sweep as the tab opened


def test_the_opening_needs_a_sweep_at_every_n_the_form_ticks(recorded):
    run = load_dataset_run(recorded[1])
    run.sweep = [r for r in run.sweep if r["n"] != 64]
    assert stats_sweep.first_sweep(run) == (None, None, None, "")


def test_a_sweep_is_kept_beside_plain_jacobi_runs_only(recorded, tiny_pair, tmp_path, capsys):
    out = tmp_path / "x.json"
    ask = ["stats", "--base", tiny_pair[0], "--cllm", tiny_pair[1], "--prompts", str(recorded[2]), *SETTINGS,
           "--decoder", "recycle"]
    assert main(ask + ["--sweep", "4", "--record", str(out)]) == 2
    assert "plain Jacobi runs only" in capsys.readouterr().err and not out.exists()
    assert main(ask + ["--record", str(out)]) == 0  # a recycle run alone is kept; a sweep stitched to it is not
    stitched = json.loads(out.read_text()) | {"sweep": json.loads(recorded[1].read_text())["sweep"]}
    with pytest.raises(DatasetRunError, match="plain Jacobi runs only"):
        dataset_run_from_dict(stitched)


def test_every_shipped_run_carries_a_sweep_the_tab_opens_on():
    """Every recorded run that ships carries a sweep at every n the form ticks, each run equal to greedy."""
    from cllm.dataset_run import DATASETS_DIR, recorded_runs
    runs = list(recorded_runs(DATASETS_DIR).values())
    assert runs
    for run in runs:
        assert {r["n"] for r in run.sweep} >= set(evaluate.SWEEP_NS) and all(r["matches_ar"] == 1.0 for r in run.sweep)
        assert stats_sweep.first_sweep(run)[3].startswith("**Recorded sweep**")
