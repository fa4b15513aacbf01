"""The CLI as a user runs it: decode and bench on a model folder, one-line errors with exit 2."""
import json
import subprocess
import sys

import pytest

from cllm import stats
from cllm.cli import main
from cllm.trajectory import load_trajectory


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_json_checks_ar_and_saves(tiny_model_dir, tmp_path, capsys):
    save = tmp_path / "t.json"
    code, out, err = run(capsys, "decode", "--model", str(tiny_model_dir), "--prompt", "def add(a, b):",
                         "--n", "4", "--max-new-tokens", "12", "--check-ar", "--json", "--save", str(save))
    assert code == 0, err
    data = json.loads(out)
    for key in ("prompt", "prompt_ids", "tokens", "text", "n", "seed", "forward_passes", "tpf",
                "fast_forwarded", "ff_rate", "eos_token_id", "stationary", "blocks", "ar_tokens", "matches_ar"):
        assert key in data
    assert data["matches_ar"] is True and data["tokens"] == data["ar_tokens"]
    assert [t for b in data["blocks"] for t in b["fixed_point"]] == data["tokens"]
    assert data["tpf"] == len(data["tokens"]) / data["forward_passes"]
    assert load_trajectory(save).tokens == data["tokens"]
    assert data["eos_token_id"] == load_trajectory(save).meta.eos_token_id
    assert abs(data["ff_rate"] - stats.ff_rate(load_trajectory(save))) < 1e-12 and data["ff_rate"] >= 1.0


def test_decode_terminal_view(tiny_model_dir, capsys):
    code, out, _ = run(capsys, "decode", "--model", str(tiny_model_dir), "--prompt", "class", "--n", "4",
                       "--max-new-tokens", "8")
    assert code == 0
    assert out.count("block ") == 2 and "guess |" in out and "forward passes (TPF" in out
    assert "equals greedy AR: not checked" in out


def test_bench_table_and_json(tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "def f(x):", "id": 1}\n\n{"prompt": "for i in"}\n')
    code, out, err = run(capsys, "bench", "--base", str(tiny_model_dir), "--prompts", str(prompts), "--n", "4",
                         "--max-new-tokens", "8", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["decoder"] for r in rows] == ["ar", "jacobi", "hf_greedy", "hf_prompt_lookup"]
    assert rows[0]["tpf"] == 1.0 and rows[1]["matches_ar"] == 1.0 and rows[1]["prompts"] == 2
    assert 0 <= rows[0]["repeats"] <= 1 and 1 < rows[0]["perplexity"] < 1e6  # the AR row: the model as a writer
    code, out, _ = run(capsys, "bench", "--base", str(tiny_model_dir), "--prompts", str(prompts), "--n", "4",
                       "--max-new-tokens", "8")
    assert "decoder" in out and "jacobi" in out and "device: CPU" in out and "hf_prompt_lookup" in out
    assert "prompt lookup draft = 10" in out and "vs_hf_greedy" in out


@pytest.mark.parametrize("args, message", [
    (["--n", "0"], "block size"),
    (["--n", "abc"], "invalid int value"),
    (["--prompt", "   "], "prompt is empty"),
    (["--max-new-tokens", "100000"], "exceeds the model's context"),
    (["--device", "tpu"], "unknown device"),
])
def test_decode_bad_arguments(tiny_model_dir, capsys, args, message):
    code, _, err = run(capsys, "decode", "--model", str(tiny_model_dir), "--prompt", "x", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_model_path(capsys, tmp_path):
    code, _, err = run(capsys, "decode", "--model", str(tmp_path / "nope"), "--prompt", "x")
    assert code == 2 and err.startswith("error: no model folder")


def test_bench_bad_prompt_file(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    code, _, err = run(capsys, "bench", "--base", str(tiny_model_dir), "--prompts", str(bad))
    assert code == 2 and "line 1 needs" in err


def test_python_dash_m_entry_point(tiny_model_dir):
    proc = subprocess.run([sys.executable, "-m", "cllm", "decode", "--model", str(tiny_model_dir), "--prompt", "",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: the prompt is empty: type some text to continue"


def test_stats_command_writes_csv_equal_to_bench(tiny_model_dir, tmp_path, capsys):
    """One code path: the per-prompt CSV of `stats` sums to what `bench` reports for the same inputs."""
    import pandas as pd

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "def f(x):"}\n{"prompt": "for i in"}\n{"prompt": "class A:"}\n')
    csv = tmp_path / "out.csv"
    common = ["--prompts", str(prompts), "--n", "4", "--max-new-tokens", "8"]
    code, out, err = run(capsys, "stats", "--base", str(tiny_model_dir), "--cllm", str(tiny_model_dir), *common,
                         "--csv", str(csv), "--sweep", "2,4")
    assert code == 0, err
    assert "most fast_forwarded spans" in out and "ratio" in out and "2.0-6.8x" in out and "hf_prompt_lookup" in out
    assert "without runs flagged token_run" in out and "paper ff rate by block" in out
    frame = pd.read_csv(csv)
    assert set(frame["model"]) == {"base", "cllm"} and len(frame) == 6 and frame["matches_ar"].all()
    code, out, _ = run(capsys, "bench", "--base", str(tiny_model_dir), *common, "--json")
    jacobi = json.loads(out)["rows"][1]
    base = frame[frame["model"] == "base"]
    assert jacobi["forward_passes"] == base["forward_passes"].sum() and jacobi["tokens"] == base["tokens"].sum()


def test_stats_bad_sweep(tiny_model_dir, capsys):
    code, _, err = run(capsys, "stats", "--base", str(tiny_model_dir), "--cllm", str(tiny_model_dir), "--sweep", "4,x")
    assert code == 2 and "--sweep must be comma-separated integers" in err

def test_record_races_into_a_gallery(tiny_pair, tmp_path, capsys):
    from cllm.race import list_gallery

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "def f(x):"}\n{"prompt": "class A:"}\n{"prompt": "import os"}\n')
    out = tmp_path / "gallery"
    args = ["record", "--base", tiny_pair[0], "--cllm", tiny_pair[1], "--prompts", str(prompts), "--limit", "2",
            "--out", str(out), "--n", "4", "--max-new-tokens", "8"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert stdout.count("equals greedy AR: True") == 2
    entries = list_gallery(out)
    assert [e.name for e in entries] == ["p-01", "p-02"] and entries[1].title == "class A:" and entries[0].n == 4
    from cllm.shipped import read_manifest, shipped_races
    assert set(read_manifest(out)) == {"p-01.json", "p-02.json"} and len(shipped_races(out)) == 2  # may stand in
    code, _, err = run(capsys, *args)  # a second recording never replaces the first
    assert code == 2 and "'p-01' already exists" in err
    code, _, err = run(capsys, *args, "--prefix", "../up")
    assert code == 2 and "not a valid name" in err
