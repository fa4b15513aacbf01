"""Code prompts drawn from real source: HumanEval's shape, never HumanEval's functions."""
from __future__ import annotations

import json
from pathlib import Path

from cllm.training.code_prompts import (CodePromptConfig, draw_code_prompts, function_name, humaneval_signatures,
                               prompts_in_file, signature_line)
from cllm.models import REPO_ROOT
from cllm.prompts import read_prompts

CODE_SETS = [REPO_ROOT / "assets" / "prompts" / name for name in ("code-train.jsonl", "code-heldout.jsonl")]


def test_no_shipped_code_prompt_shares_a_function_with_humaneval():
    names, signatures = humaneval_signatures()
    assert len(names) >= 160 and len(signatures) >= 160  # 164 problems; a few share an entry-point name
    for path in CODE_SETS:
        prompts = read_prompts(path)
        assert len(prompts) >= 64
        shared = [p for p in prompts if function_name(p) in names or signature_line(p) in signatures]
        assert shared == [], f"{path.name} shares functions with HumanEval: {shared[:2]}"


def test_training_and_heldout_code_prompts_are_disjoint():
    train, held = (set(read_prompts(p)) for p in CODE_SETS)
    assert not train & held


def test_humaneval_functions_in_a_source_tree_are_left_out(tmp_path):
    (tmp_path / "mod.py").write_text(
        'def has_close_elements(numbers, threshold):\n    """Check if in given list of numbers, are any two numbers '
        'closer to each other than given threshold."""\n    return False\n\n\n'
        'def mean_of(values: list[float]) -> float:\n    """Return the arithmetic mean of a non-empty list of '
        'numbers, as a float.\n\n    >>> mean_of([1, 2])\n    1.5\n    """\n    return sum(values) / len(values)\n\n\n'
        '@decorated\ndef skipped(x):\n    """A decorated function is left out: its decorator changes what it does."""\n\n\n'
        'def _private(x):\n    """A private helper is left out, whatever its docstring says about it."""\n')
    drawn = draw_code_prompts([tmp_path], CodePromptConfig())
    assert [p.name for p in drawn] == ["mean_of"]
    assert drawn[0].prompt.startswith("def mean_of(values: list[float]) -> float:\n") and drawn[0].prompt.endswith('"""\n')
    assert "return" not in drawn[0].prompt  # the body is what the model writes


def test_signature_line_folds_whitespace():
    assert signature_line("def f(a,\n      b) -> int:\n    pass") == "def f(a, b) -> int:"
    assert function_name("async def g(x):") == "g"


def test_unreadable_files_give_nothing(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"def f(:\n\xff")
    assert list(prompts_in_file(bad, tmp_path, CodePromptConfig())) == []


def test_shipped_files_carry_their_source():
    first = json.loads(Path(CODE_SETS[0]).read_text().split("\n")[0])
    assert first["source"].count(":") == 2 and first["prompt"].lstrip().startswith(("def ", "async def "))


def test_cli_refuses_a_missing_or_empty_root_and_keeps_the_old_file(tmp_path, capsys):
    from cllm.cli import main

    out = tmp_path / "train.jsonl"
    out.write_text('{"prompt": "def kept():\\n"}\n')
    assert main(["code-prompts", "--out", str(out), "--root", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["code-prompts", "--out", str(out), "--root", str(tmp_path / "empty")]) == 2
    assert "nothing was written" in capsys.readouterr().err
    assert out.read_text() == '{"prompt": "def kept():\\n"}\n'
