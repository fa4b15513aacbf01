"""HumanEval: the completion cut, the sandbox's verdicts, and a resumable run of a tiny model."""
from __future__ import annotations

import json

import pytest

from cllm.cli import main
from cllm.humaneval import (HumanEvalConfig, cut_completion, evaluate_model, load_problems, read_results, report,
                            check_program)
from cllm.models import load_model
from cllm.sandbox import SandboxLimits, run_python


FAKE = [{"task_id": f"Fake/{i}", "prompt": f"def add{i}(a, b):\n", "canonical_solution": "    return a + b\n",
         "test": "def check(f):\n    assert f(1, 2) == 3\n", "entry_point": f"add{i}"} for i in range(2)]


def test_cut_at_the_first_stop_sequence():
    assert cut_completion("    return x\n\ndef other():\n    pass") == "    return x\n"
    assert cut_completion("    return x\nif __name__:\n#") == "    return x"
    assert cut_completion("    return x") == "    return x"


@pytest.mark.parametrize("index", [0, 1, 2, 53])
def test_canonical_solutions_pass_and_wrong_ones_fail(index):
    problem = load_problems()[index]
    assert run_python(check_program(problem, problem["canonical_solution"])).passed
    wrong = run_python(check_program(problem, "    return None\n"))
    assert not wrong.passed and wrong.outcome.startswith("failed")


def test_sandbox_stops_loops_system_calls_and_sockets():
    assert run_python("while True: pass", SandboxLimits(seconds=1)).outcome == "timed out"
    assert not run_python("import os; os.system('true')").passed
    assert not run_python("import socket; socket.socket()").passed
    assert not run_python("x = bytearray(8 * 1024 ** 3)").passed


def test_a_tiny_model_run_resumes_and_reports(tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir), "cpu")
    problems, out = FAKE, tmp_path / "he.jsonl"  # HumanEval's prompts overflow the tiny model's context
    config = HumanEvalConfig(n=4, max_new_tokens=8)
    first = evaluate_model(loaded, problems[:1], config, out)
    with open(out, "a") as f:
        f.write('{"model": "cut short')  # a killed run's last line
    seen = []
    both = evaluate_model(loaded, problems, config, out, on_result=seen.append)
    assert [r.task_id for r in seen] == [problems[1]["task_id"]]  # the first problem is not redone
    assert both[0] == first[0] and len(read_results(out)) == 2
    assert all(r.equals_greedy and r.hf_equal for r in both)  # Jacobi, our AR and HF generate agree
    rep = report(loaded.name, both, 12.5)
    assert rep.problems == 2 and rep.tpf == sum(r.tokens for r in both) / sum(r.forward_passes for r in both)
    jacobi_rate = rep.problems and sum(r.tokens for r in both) / sum(r.jacobi_seconds for r in both)
    hf_rate = sum(r.hf_tokens - 1 for r in both) / sum(r.hf_seconds for r in both)
    assert rep.speedup_vs_hf == pytest.approx(jacobi_rate / hf_rate)


def test_cli_prints_json_reports(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cllm.humaneval.load_problems", lambda limit=None, start=0: FAKE[start:][:limit])
    assert main(["humaneval", "--base", str(tiny_model_dir), "--out", str(tmp_path / "r.jsonl"), "--limit", "1",
                 "--n", "4", "--max-new-tokens", "6", "--json"]) == 0
    (rep,) = json.loads(capsys.readouterr().out)
    assert rep["problems"] == 1 and rep["passed"] == 0 and rep["canonical_perplexity"] > 1


def test_cli_bad_limit_is_one_line(tmp_path, capsys):
    assert main(["humaneval", "--out", str(tmp_path / "r.jsonl"), "--limit", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("start, says", [("-1", "--start must be 0 or more"), ("164", "past the last problem")])
def test_cli_bad_start_is_one_line(tmp_path, capsys, start, says):
    assert main(["humaneval", "--out", str(tmp_path / "r.jsonl"), "--start", start]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and not (tmp_path / "r.jsonl").exists()


def test_a_run_split_by_start_covers_every_problem_once():
    everything = [p["task_id"] for p in load_problems()]
    first, rest = load_problems(109), load_problems(start=109)
    assert [p["task_id"] for p in first + rest] == everything and len(everything) == 164
    assert [p["task_id"] for p in load_problems(2, start=162)] == ["HumanEval/162", "HumanEval/163"]


def test_results_made_with_other_settings_are_refused_not_mixed(tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir), "cpu")
    out = tmp_path / "he.jsonl"
    evaluate_model(loaded, FAKE[:1], HumanEvalConfig(n=4, max_new_tokens=8, hf_generate=False), out)
    before = out.read_text()
    with pytest.raises(ValueError, match="made with .*'n': 4.*use another --out"):
        evaluate_model(loaded, FAKE, HumanEvalConfig(n=8, max_new_tokens=8, hf_generate=False), out)
    with pytest.raises(ValueError, match="without HF generate"):
        evaluate_model(loaded, FAKE, HumanEvalConfig(n=4, max_new_tokens=8), out)
    assert out.read_text() == before  # nothing lost


def test_bad_settings_fail_before_any_model_loads():
    with pytest.raises(ValueError, match="n \\(block size\\)"):
        HumanEvalConfig(n=0)


def test_append_line_adds_whole_lines_and_closes_one_a_killed_writer_left_open(tmp_path):
    from cllm.humaneval import append_line
    path = tmp_path / "results.jsonl"
    append_line(path, '{"a": 1}')
    append_line(path, '{"a": 2}')
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'  # no blank line between records
    path.write_text(path.read_text() + '{"a": 3, "cut sh')  # a run killed mid-line
    append_line(path, '{"a": 4}')
    assert path.read_text().splitlines()[-2:] == ['{"a": 3, "cut sh', '{"a": 4}']


def test_the_shipped_humaneval_records_are_whole_and_exact():
    """assets/results holds the per-problem records behind the README's HumanEval table: all 164 problems for
    both models, in order, made with the default settings, each equal to greedy decoding, ours and HF's."""
    from pathlib import Path
    records = read_results(Path(__file__).resolve().parents[1] / "assets/results/smollm2-humaneval.jsonl")
    problems = [p["task_id"] for p in load_problems()]
    for model in ("smollm2-135m", "smollm2-135m-cllm"):
        assert [r.task_id for r in records if r.model == model] == problems  # in order, no gap, no repeat
        assert all(r.settings == HumanEvalConfig().settings() and r.equals_greedy and r.hf_equal
                   for r in records if r.model == model)
    assert len(records) == 2 * len(problems)
