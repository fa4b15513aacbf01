"""Atomic HF-format checkpoints: a crash or a full disk mid-save leaves the old folder (or none), never half."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def save_pretrained_atomic(model, tokenizer, out: str | Path, card: str, extra_files: dict[str, str] | None = None,
                           replace: bool = True) -> Path:
    """Write model + tokenizer + model card (README.md) + `extra_files` (name -> text) into a temp folder
    beside `out`, then swap it in. With replace=False an existing `out` is never touched (FileExistsError)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not replace and out.exists():
        raise FileExistsError(f"{out} already exists")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be read by everyone
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        _swap_in(tmp, out, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path, replace: bool) -> None:
    """Rename is atomic per folder; the old folder is moved aside first and deleted only after. Without
    `replace`, a folder that appeared meanwhile wins: rename onto a non-empty folder fails."""
    old = None
    if out.exists():
        if not replace:
            raise FileExistsError(f"{out} already exists")
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError as e:
        if not replace and out.exists():
            raise FileExistsError(f"{out} already exists") from e
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
