"""Recorded dataset runs (cllm.dataset_run): written by `stats --record`, read back whole, served by the Stats tab
for exactly the request they answer and only while their manifest vouches for them."""
from __future__ import annotations

import json

import gradio as gr
import pytest
import torch

from cllm.cli import main
from cllm.dataset_run import (DATASETS_DIR, DatasetRunError, dataset_run_from_dict, dataset_run_to_dict, find_recorded,
                              load_dataset_run, recorded_runs, runs_of_pair)
from cllm.jacobi import JacobiConfig
from cllm.race import GALLERY_DIR
from cllm.shipped import MANIFEST, Request, read_manifest
from cllm.ui import stats_sweep, stats_tab
from test_model_worker import answers_behind_a_holder, no_model_work, while_held
from test_stats_tab import built_stats_tab

PROMPTS = ["def f(x):", "class A:", "import os"]
SETTINGS = ["--n", "4", "--max-new-tokens", "8"]
SWEEP = "4,8,16,32,64"  # every n the Stats tab's sweep ticks, so the section may open on it (tests/test_stats_sweep.py)


def no_progress(*args, **kwargs):
    return None


def answers(*args) -> list[tuple]:
    """Everything stats_tab.run_dataset yields for these inputs."""
    return list(stats_tab.run_dataset(*args, progress=no_progress))


@pytest.fixture(autouse=True)
def a_cpu_app(monkeypatch):
    """The serving under test is a CPU app's, whatever runs the test (on CUDA the app decodes live)."""
    monkeypatch.setattr(stats_tab, "cached_dtype", lambda: torch.float32)


@pytest.fixture(scope="module")
def recorded(tiny_pair, tmp_path_factory):
    """`stats --record --sweep` of the tiny pair over three prompts: (folder, path, prompts file)."""
    folder = tmp_path_factory.mktemp("datasets")
    prompts = folder.parent / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    path = folder / "tiny-3.json"
    code = main(["stats", "--base", tiny_pair[0], "--cllm", tiny_pair[1], "--prompts", str(prompts), *SETTINGS,
                 "--sweep", SWEEP, "--record", str(path)])
    assert code == 0
    return folder, path, prompts


def asked(tiny_pair, **settings) -> tuple[Request, Request]:
    config = JacobiConfig(**({"n": 4, "max_new_tokens": 8} | settings))
    return tuple(Request.asked(m, config, False, torch.float32) for m in tiny_pair)


def test_record_writes_a_listed_run_that_reads_back_whole(recorded, tiny_pair):
    folder, path, prompts = recorded
    assert read_manifest(folder) and path.name in read_manifest(folder)
    run = load_dataset_run(path)
    assert run.prompts == PROMPTS and run.prompt_set == prompts.name and run.recorded.count("-") == 2
    assert run.machine.startswith("CPU, ") and " thread" in run.machine
    for role in ("base", "cllm"):
        assert all(t.tokens == t.ar_tokens for t in run.trajs[role])  # checked against greedy when recorded
    assert {row["decoder"] for row in run.bench} == {"ar", "jacobi", "hf_greedy", "hf_prompt_lookup"}
    assert dataset_run_from_dict(json.loads(json.dumps(dataset_run_to_dict(run)))).bench == run.bench


def test_a_run_is_found_only_for_the_request_it_answers(recorded, tiny_pair):
    folder = recorded[0]
    assert find_recorded(folder, PROMPTS, *asked(tiny_pair)) is not None
    assert find_recorded(folder, PROMPTS, *asked(tiny_pair, seed=1)) is None
    assert find_recorded(folder, PROMPTS, *asked(tiny_pair, n=8)) is None
    assert find_recorded(folder, PROMPTS[:2], *asked(tiny_pair)) is None
    assert find_recorded(folder, PROMPTS, *reversed(asked(tiny_pair))) is None
    assert [len(r.prompts) for r in runs_of_pair(folder, *tiny_pair)] == [3]
    assert runs_of_pair(folder, tiny_pair[1], tiny_pair[0]) == []


def test_a_changed_or_unlisted_file_is_not_served(recorded, tmp_path):
    folder, path, _ = recorded
    copy = tmp_path / "datasets"
    copy.mkdir()
    (copy / path.name).write_bytes(path.read_bytes())
    assert recorded_runs(copy) == {}  # not listed
    (copy / MANIFEST).write_text((folder / MANIFEST).read_text())
    assert len(recorded_runs(copy)) == 1
    changed = path.read_bytes().replace(b'"machine":"CPU', b'"machine":"cpu', 1)
    assert changed != path.read_bytes() and dataset_run_from_dict(json.loads(changed)).machine.startswith("cpu")
    (copy / path.name).write_bytes(changed)  # still a valid run, but not the bytes that were listed
    assert recorded_runs(copy) == {}


@pytest.mark.parametrize("change, message", [
    (lambda d: d | {"schema": "cllm-race"}, "not a dataset-run file"),
    (lambda d: d | {"version": 2}, "unsupported dataset-run version"),
    (lambda d: d | {"version": True}, "unsupported dataset-run version"),
    (lambda d: d | {"prompt_set": "../etc/p.jsonl"}, "not a path"),
    (lambda d: d | {"prompt_set": ".."}, "not a path"),
    (lambda d: d | {"machine": 7}, "machine must be"),
    (lambda d: d | {"machine": "[click](http://x)"}, "machine must be"),
    (lambda d: d | {"recorded": "yesterday"}, "must be a date"),
    (lambda d: d | {"cllm": d["cllm"][:2]}, "different numbers of runs"),
    (lambda d: d | {"cllm": d["cllm"][1:] + d["cllm"][:1]}, "different prompts"),
    (lambda d: d | {"base": []}, "a list of 1 to"),
    (lambda d: d | {"bench": [d["bench"][0] | {"tpf": float("nan")}]}, "finite number"),
    (lambda d: d | {"bench": [d["bench"][0] | {"tpf": {"a": 1}}]}, "finite number"),
    (lambda d: d | {"bench": [d["bench"][0] | {"secret": 1}]}, "the bench columns"),
    (lambda d: d | {"bench": [{"tpf": 1.0}]}, "the bench columns"),
    (lambda d: d | {"bench": [d["bench"][0] | {"prompts": 2}]}, "not the run's 3"),
    (lambda d: d | {"cllm": [t | {"meta": t["meta"] | {"dtype": "bfloat16"}} for t in d["cllm"]]}, "on a CPU in float32"),
    (lambda d: d | {"base": [t | {"meta": t["meta"] | {"device": "cuda:0"}} for t in d["base"]]}, "on a CPU in float32"),
    (lambda d: d | {"bench": "rows"}, "bench must be a list"),
    (lambda d: d | {"base": [d["base"][0] | {"blocks": "x"}] + d["base"][1:]}, "base run 1"),
    (lambda d: d | {"base": [d["base"][0] | {"ar_tokens": None}] + d["base"][1:]}, "not checked against greedy"),
    (lambda d: d | {"cllm": [d["cllm"][0] | {"meta": d["cllm"][0]["meta"] | {"seed": 5}}] + d["cllm"][1:]},
     "not all made with the same settings"),
])
def test_bad_files_are_refused_with_a_reason(recorded, change, message):
    data = json.loads(recorded[1].read_text())
    with pytest.raises(DatasetRunError, match=message):
        dataset_run_from_dict(change(data))


def test_record_refuses_what_the_stats_tab_cannot_ask_for(tiny_pair, recorded, tmp_path, capsys):
    base = ["stats", "--base", tiny_pair[0], "--cllm", tiny_pair[1], "--prompts", str(recorded[2]), *SETTINGS]
    for extra, message in ((["--dtype", "bfloat16"], "float32, seed 0"), (["--seed", "1"], "float32, seed 0"),
                           (["--init", "vocab"], "float32, seed 0"), (["--chat"], "no --chat"),
                           (["--draft", "5"], "--draft 10"), (["--decoder", "jacobi,recycle"], "one decoder's run"),
                           (["--decoder", "recycle", "--pool-size", "2"], "options at their defaults")):
        assert main(base + extra + ["--record", str(tmp_path / "x.json")]) == 2, extra
        assert message in capsys.readouterr().err, extra
    spaced = tmp_path / "my prompts.jsonl"  # a name the file may not hold: refused before decoding, not after
    spaced.write_text(recorded[2].read_text())
    assert main(base[:6] + [str(spaced), *SETTINGS, "--record", str(tmp_path / "x.json")]) == 2
    assert "must be a prompt file's name" in capsys.readouterr().err
    assert main(base + ["--record", str(tmp_path)]) == 2 and "is a folder" in capsys.readouterr().err
    gallery = GALLERY_DIR / "never-written.json"
    assert main(base + ["--record", str(gallery)]) == 2 and "apart from the gallery" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not gallery.exists()


def test_the_stats_tab_serves_a_recorded_run_without_the_models(recorded, tiny_pair, monkeypatch):
    folder, _, prompts = recorded
    monkeypatch.setattr(stats_tab, "DATASETS_DIR", folder)
    monkeypatch.setattr(stats_tab, "live_dataset", no_model_work)
    [out] = while_held(lambda: answers(*tiny_pair, stats_tab.UPLOAD, str(prompts), 3, 4, 8))
    per_prompt, trajs, note = out[0], out[10], out[11]
    assert "Recorded run" in note and "p.jsonl" in note and len(per_prompt) == 6
    assert trajs is recorded_runs(folder)[(tuple(PROMPTS), *asked(tiny_pair))].trajs
    with pytest.raises(gr.Error, match="must not load"):  # one setting changed: decoded live
        answers(*tiny_pair, stats_tab.UPLOAD, str(prompts), 3, 8, 8)


def test_a_live_run_waits_its_turn_saying_how_many_are_ahead(tiny_pair, tmp_path):
    prompts = tmp_path / "q.txt"
    prompts.write_text("def g(y):\n")
    first, said = answers_behind_a_holder(
        stats_tab.run_dataset(*tiny_pair, stats_tab.UPLOAD, str(prompts), 1, 4, 8, progress=no_progress))
    assert "1 request is ahead of yours" in first[11] and all(o == gr.skip() for o in first[:11])
    assert said[-1][11] == stats_tab.LIVE_NOTE and len(said[-1][0]) == 2


def test_a_recorded_run_and_a_live_one_show_the_same_tables(recorded, tiny_pair, monkeypatch):
    folder, _, prompts = recorded
    live = answers(*tiny_pair, stats_tab.UPLOAD, str(prompts), 3, 4, 8)[-1]
    monkeypatch.setattr(stats_tab, "DATASETS_DIR", folder)
    [served] = answers(*tiny_pair, stats_tab.UPLOAD, str(prompts), 3, 4, 8)
    assert live[11] == stats_tab.LIVE_NOTE and served[11] != live[11]
    timed = {"decode time (s)", "greedy AR time (s)", "tokens/s", "speed-up vs own greedy AR (wall clock)"}
    for index in (0, 2, 5, 6, 7, 8):  # per prompt, Table 3, both collocation tables, both breakdowns: no timings
        shown = [c for c in live[index].columns if c not in timed]
        assert live[index][shown].equals(served[index][shown]), index


def test_the_first_visit_shows_the_pairs_recorded_run(recorded, tiny_pair, monkeypatch):
    folder = recorded[0]
    assert stats_tab.first_dataset(*tiny_pair).outputs[11] == ""  # the shipped folder has none of this pair
    monkeypatch.setattr(stats_tab, "DATASETS_DIR", folder)
    assert stats_tab.first_dataset(*tiny_pair).outputs[11] == ""  # its set is not one the form offers
    monkeypatch.setitem(stats_tab.PROMPT_SETS, stats_tab.CODE, recorded[2])  # as if it were a shipped set
    first = stats_tab.first_dataset(*tiny_pair)
    assert (first.source, first.limit, first.n, first.max_new) == (stats_tab.CODE, 3, 4, 8)
    assert "Recorded run" in first.outputs[11] and len(first.outputs[10]["cllm"]) == 3
    monkeypatch.setattr(stats_tab, "cached_dtype", lambda: torch.bfloat16)  # a GPU app decodes in bfloat16
    assert stats_tab.first_dataset(*tiny_pair).outputs[11] == ""


def test_a_recorded_run_the_form_cannot_ask_for_is_skipped_not_fatal(recorded, tiny_pair, monkeypatch):
    """E.g. a run recorded with n or tokens beyond the form's range: the tab still builds, on the defaults."""
    monkeypatch.setattr(stats_tab, "DATASETS_DIR", recorded[0])
    monkeypatch.setitem(stats_tab.PROMPT_SETS, stats_tab.CODE, recorded[2])
    assert stats_tab.opening_run(*tiny_pair) is not None

    def beyond_the_form(*args):
        raise ValueError("block size n must be from 1 to 64")
    monkeypatch.setattr(stats_tab, "form_config", beyond_the_form)
    assert stats_tab.opening_run(*tiny_pair) is None and stats_tab.first_dataset(*tiny_pair).source == stats_tab.HELDOUT


def test_an_unknown_prompt_set_is_refused(tiny_pair):
    with pytest.raises(gr.Error, match="prompts must be one of"):
        answers(*tiny_pair, "shipped held-out prompts", None, 3, 4, 8)


def test_a_live_run_that_fails_says_so_in_its_note(tiny_pair, tmp_path, monkeypatch):
    prompts = tmp_path / "q.txt"
    prompts.write_text("def g(y):\n")

    def fails(*args):
        raise ValueError("the model could not be loaded")
    monkeypatch.setattr(stats_tab, "live_dataset", fails)
    said = []
    with pytest.raises(gr.Error, match="could not be loaded"):
        for answer in stats_tab.run_dataset(*tiny_pair, stats_tab.UPLOAD, str(prompts), 1, 4, 8, progress=no_progress):
            said.append(answer)
    assert said[-2][11] == "Decoding live…" and "stopped" in said[-1][11]


def tab_opened_on(recorded, tiny_pair, monkeypatch) -> tuple[gr.Blocks, dict]:
    """The Stats tab built for the tiny pair as if its recorded run (and sweep) shipped in a set the form
    offers: (the Blocks, elem_id -> component)."""
    folder, _, prompts = recorded
    for module in (stats_tab, stats_sweep):
        monkeypatch.setattr(module, "DATASETS_DIR", folder)
    monkeypatch.setitem(stats_tab.PROMPT_SETS, stats_tab.CODE, prompts)
    monkeypatch.setattr(stats_tab, "app_pair", lambda: tiny_pair)
    demo, _ = built_stats_tab()
    return demo, {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def test_the_tab_opens_on_the_recorded_run(recorded, tiny_pair, monkeypatch):
    """Built for the tiny pair with its recorded run: every output holds it, and Run asks for it again."""
    demo, blocks = tab_opened_on(recorded, tiny_pair, monkeypatch)
    [run] = [f for f in demo.fns.values() if f.fn is stats_tab.run_dataset]
    assert len(run.outputs) == 12 and run.concurrency_limit is None
    assert "Recorded run" in blocks["stats-dataset-note"].value
    assert blocks["stats-limit"].value == 3 and blocks["stats-ff"].value["headers"][0] == "CLLM count"
    per_prompt, csv, state = (run.outputs[i] for i in (0, 4, 10))
    assert len(per_prompt.value["data"]) == 6 and csv.value is not None and len(state.value["cllm"]) == 3
    source, limit, n, tokens = (blocks[k].value for k in ("stats-source", "stats-limit", "stats-n", "stats-tokens"))
    [out] = answers(*tiny_pair, source, None, limit, n, tokens)  # what a visitor gets on pressing Run as it opened
    assert "Recorded run" in out[11]


def test_the_shipped_runs_read_back_and_equal_greedy():
    runs = recorded_runs(DATASETS_DIR)
    assert len(runs) == len(read_manifest(DATASETS_DIR)) >= 1  # every listed file is served
    for run in runs.values():
        pair = run.trajs["base"][0].meta.model, run.trajs["cllm"][0].meta.model
        assert stats_tab.opening_run(*pair)[0] is run  # the tab opens on it and its form asks for it again
        for role in ("base", "cllm"):
            assert all(t.tokens == t.ar_tokens and t.meta.dtype == "float32" for t in run.trajs[role])


@pytest.mark.slow
def test_the_shipped_runs_decode_again_to_the_same_tokens():
    """The models as they ship decode the first two prompts of every recorded run to the recorded tokens."""
    from cllm.decode import decode_prompt
    from cllm.decoders import make_config
    from cllm.models import load_model

    for run in recorded_runs(DATASETS_DIR).values():
        for role in ("base", "cllm"):
            meta = run.trajs[role][0].meta
            loaded = load_model(meta.model, dtype="float32")
            config = make_config(meta.decoder, n=meta.n, max_new_tokens=meta.max_new_tokens, seed=meta.seed,
                                 init=meta.init, **meta.options)
            for traj in run.trajs[role][:2]:  # every state of every pass, not only the text
                assert [b.states for b in decode_prompt(loaded, traj.prompt, config).blocks] == [b.states for b in traj.blocks]
