"""Bad-input sweep of the CLI: every hostile value gives exit status 2 and one `error: ...` line, never a
traceback, and leaves nothing half-written behind. The README's reliability table lists these cases."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cllm import models
from cllm.cli import main

M = "{model}"  # replaced by the tiny model folder
DECODE = ["decode", "--model", M, "--n", "4", "--max-new-tokens", "8"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_dir):
    """Hostile prompt files and model folders, by name."""
    root = tmp_path_factory.mktemp("hostile")
    raw = {
        "nonutf8.jsonl": b'\xff\xfe{"prompt": "x"}\n', "empty.jsonl": b"", "blank.jsonl": b"\n \n\t\n",
        "deep.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n", "notjson.jsonl": b"def f(x):\n",
        "noprompt.jsonl": b'{"text": "x"}\n', "promptint.jsonl": b'{"prompt": 5}\n', "toplist.jsonl": b'["a"]\n',
        "huge.jsonl": (json.dumps({"prompt": "x" * 1000}) + "\n").encode() * 6000,
        "longprompt.jsonl": (json.dumps({"prompt": "x" * 20_001}) + "\n").encode(),
        "surrogate.jsonl": b'{"prompt": "a\\ud800b"}\n', "bigint.jsonl": b'{"prompt": "x", "id": ' + b"9" * 5000 + b"}\n",
        "ok.jsonl": b'{"prompt": "def f(x):"}\n', "afile": b"x",
    }
    for name, data in raw.items():
        (root / name).write_bytes(data)
    (root / "adir").mkdir()
    (root / "notok").mkdir()
    shutil.copy(tiny_model_dir / "config.json", root / "notok")
    (root / "noconfig").mkdir()
    shutil.copy(tiny_model_dir / "tokenizer.json", root / "noconfig")
    return root


def run(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


CASES = [  # (argv, part of the one error line); {model} = tiny model folder, {f} = the hostile files' folder
    (["decode", "--model", "", "--prompt", "x"], "no model given"),
    (["decode", "--model", "   ", "--prompt", "x"], "no model given"),
    (["decode", "--model", "nobody/no-such-model", "--prompt", "x"], "hub is unreachable"),
    (["decode", "--model", "{f}/missing", "--prompt", "x"], "no model folder at"),
    (["decode", "--model", "{f}/afile", "--prompt", "x"], "no model folder at"),
    (["decode", "--model", "{f}/notok", "--prompt", "x"], "holds no tokenizer"),
    (["decode", "--model", "{f}/noconfig", "--prompt", "x"], "holds no config.json"),
    (["decode", "--model", "/" + "x" * 5000, "--prompt", "x"], "xxx…'"),
    ([*DECODE, "--prompt", ""], "the prompt is empty"),
    ([*DECODE, "--prompt", " \n\t "], "the prompt is empty"),
    ([*DECODE, "--prompt", "x" * 100_000], "the limit is 20000"),
    ([*DECODE, "--prompt", "def f(x):\n" * 60], "exceeds the model's context of 128 tokens"),
    ([*DECODE, "--prompt", "a\udcffb"], "not valid text"),  # what argv holds for a non-UTF-8 byte
    ([*DECODE, "--prompt", "x", "--n", "0"], "n (block size) must be a positive integer"),
    ([*DECODE, "--prompt", "x", "--n", "-1"], "n (block size) must be a positive integer"),
    ([*DECODE, "--prompt", "x", "--n", "abc"], "argument --n/--block-size: invalid int value"),
    ([*DECODE, "--prompt", "x", "--n", "1.5"], "argument --n/--block-size: invalid int value"),
    ([*DECODE, "--prompt", "x", "--max-new-tokens", "0"], "max_new_tokens must be a positive integer"),
    ([*DECODE, "--prompt", "x", "--max-new-tokens", str(10**12)], "exceeds the model's context"),
    ([*DECODE, "--prompt", "x", "--seed", "-1"], "seed must be a whole number from 0 to 4294967295"),
    ([*DECODE, "--prompt", "x", "--seed", str(2**64)], "seed must be a whole number from 0 to 4294967295"),
    ([*DECODE, "--prompt", "x", "--init", "bogus"], "argument --init: invalid choice"),
    ([*DECODE, "--prompt", "x", "--device", "tpu"], "unknown device 'tpu'"),
    ([*DECODE, "--prompt", "x", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    ([*DECODE, "--prompt", "x", "--save", "{f}/adir"], "is a folder; give a file name"),
    ([*DECODE, "--prompt", "x", "--save", "{f}/afile/t.json"], "is a file, not a folder"),
    ([*DECODE, "--prompt", "x", "--save", ""], "the --save file name is empty"),
    (["bench", "--base", M, "--prompts", "{f}/missing.jsonl"], "no prompt file at"),
    (["bench", "--base", M, "--prompts", "{f}/adir"], "no prompt file at"),
    (["bench", "--base", M, "--prompts", "{f}/nonutf8.jsonl"], "is not UTF-8 text"),
    (["bench", "--base", M, "--prompts", "{f}/empty.jsonl"], "holds no prompts"),
    (["bench", "--base", M, "--prompts", "{f}/blank.jsonl"], "holds no prompts"),
    (["bench", "--base", M, "--prompts", "{f}/deep.jsonl"], "line 1 is not JSON"),
    (["bench", "--base", M, "--prompts", "{f}/notjson.jsonl"], "line 1 is not JSON"),
    (["bench", "--base", M, "--prompts", "{f}/bigint.jsonl"], "line 1 is not JSON"),
    (["bench", "--base", M, "--prompts", "{f}/noprompt.jsonl"], "needs a non-empty string field \"prompt\""),
    (["bench", "--base", M, "--prompts", "{f}/promptint.jsonl"], "needs a non-empty string field \"prompt\""),
    (["bench", "--base", M, "--prompts", "{f}/toplist.jsonl"], "needs a non-empty string field \"prompt\""),
    (["bench", "--base", M, "--prompts", "{f}/huge.jsonl"], "is larger than 5 MiB"),
    (["bench", "--base", M, "--prompts", "{f}/longprompt.jsonl"], "line 1's prompt is 20001 characters"),
    (["bench", "--base", M, "--prompts", "{f}/surrogate.jsonl"], "line 1's prompt is not valid text"),
    (["bench", "--base", M, "--prompts", "{f}/ok.jsonl", "--limit", "0"], "--limit must be at least 1"),
    (["bench", "--base", M, "--prompts", "{f}/ok.jsonl", "--limit", "x"], "argument --limit: invalid int value"),
    (["stats", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--top", "0"], "--top must be at least 1"),
    (["stats", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--sweep", ""], "--sweep must be comma-separated"),
    (["stats", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--sweep", "4,,8"], "--sweep must be comma-separated"),
    (["stats", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--sweep", "0"], "--sweep must be positive"),
    (["stats", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--csv", "{f}/adir"], "is a folder"),
    (["stats", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--csv", ""], "the --csv file name is empty"),
    (["block-cost", "--model", M, "--widths", ""], "--widths must be comma-separated integers"),
    (["block-cost", "--model", M, "--widths", "0"], "--widths must be positive"),
    (["block-cost", "--model", M, "--widths", "1000000"], "widths must be 1 to 64 for this model"),
    (["record", "--base", M, "--cllm", M, "--limit", "0"], "--limit must be at least 1"),
    (["record", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--prefix", "../../x"], "not a valid name"),
    (["record", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--prefix", ".hidden"], "not a valid name"),
    (["record", "--base", M, "--cllm", M, "--prompts", "{f}/ok.jsonl", "--dtype", "bfloat16"], "--device cpu --dtype float32"),
    (["pretrain", "--max-steps", "0"], "--max-steps and --max-minutes must be positive"),
    (["pretrain", "--max-minutes", "nan"], "--max-steps and --max-minutes must be positive"),
    (["pretrain", "--max-minutes", "-1"], "--max-steps and --max-minutes must be positive"),
    (["pretrain", "--hidden-size", "0"], "--hidden-size must be at least 1"),
    (["pretrain", "--eval-every", "-5"], "--eval-every must be at least 0"),
    (["pretrain", "--lr", "nan"], "--lr must be between 0 and 1"),
    (["pretrain", "--heads", "3"], "--heads (3) must divide --hidden-size (256)"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}/c", "--n", "0"], "n must be at least 1"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}/c", "--batch-size", "0"], "batch-size must be at least 1"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}/c", "--seed", "-1"], "seed must be a whole number"),
    (["collect", "--model", M, "--prompts", "{f}/nonutf8.jsonl", "--out", "{f}/c"], "is not UTF-8 text"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}/c", "--dtype", "half"], "argument --dtype: invalid choice"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}/c", "--max-new-tokens", "1000"], "leaves no room for a prompt"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}/afile", "--n", "4", "--max-new-tokens", "8"], "is not a folder"),
    (["collect", "--model", M, "--prompts", "{f}/ok.jsonl", "--out", "{f}", "--n", "4", "--max-new-tokens", "8"], "is not empty and holds no meta.json"),
    (["train", "--model", M, "--data", "{f}/missing", "--out", "{f}/t"], "no dataset folder at"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t"], "holds no meta.json"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--lr", "nan"], "lr must be a finite number"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--lr", "-1"], "lr must be positive"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--epochs", "inf"], "epochs must be a finite number"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--ar-weight", "nan"], "ar-weight must be a finite number"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--max-minutes", "nan"], "max-minutes must be a finite number"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--warmup", "-1"], "warmup must be non-negative"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--scheduler", "bogus"], "unknown scheduler 'bogus'"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--batch-size", "0"], "batch-size must be at least 1"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--rounds", "0"], "rounds must be at least 1"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--dtype", "fp8"], "argument --dtype: invalid choice"),
    (["train", "--model", M, "--data", "{f}/adir", "--out", "{f}/t", "--seed", str(2**40)], "seed must be a whole number"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--steps", "0"], "--steps must be a positive whole number"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--lr", "nan"], "--lr must be in (0, 1)"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--alpha", "-1"], "--alpha in (0, 1000)"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--seed", "-1"], "seed must be a whole number"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--text", "{f}/missing.txt"], "missing.txt: no such file"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--prompts", "{f}/empty.jsonl"], "holds no prompts"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--text", "{f}/nonutf8.jsonl", "--heldout", "{f}/ok.jsonl"], "is not UTF-8 text"),
    (["unlikelihood", "--model", M, "--out", "{f}/u", "--text", "{f}/afile", "--heldout", "{f}/ok.jsonl"], "tokens: fewer than one window of 128"),
    (["unlikelihood", "--model", M, "--out", "{f}/noconfig"], "non-empty folder that holds no model"),
    (["unlikelihood", "--model", M, "--out", "{f}/afile"], "exists and is a file"),
    (["unlikelihood", "--model", M, "--out", M], "is the model being fine-tuned"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_clear_line(argv, message, files, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=2.0: False)  # offline, as on this machine
    before = sorted(p.name for p in files.rglob("*"))
    argv = [a.replace(M, str(tiny_model_dir)).replace("{f}", str(files)) for a in argv]
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in files.rglob("*")) == before  # nothing written, not even a temp file


def test_non_utf8_argv_from_a_real_shell(tiny_model_dir):
    """A prompt whose bytes are not UTF-8 reaches Python as lone surrogates: a clear error, not a traceback."""
    proc = subprocess.run([sys.executable.encode(), b"-m", b"cllm", b"decode", b"--model", str(tiny_model_dir).encode(),
                           b"--prompt", b"\xff\xfe def"], capture_output=True, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.startswith("error: the prompt is not valid text") and len(err.splitlines()) == 1
