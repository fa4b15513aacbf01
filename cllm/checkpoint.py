"""Atomic HF-format checkpoints: a crash or a full disk mid-save leaves the old folder (or none), never half."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def save_pretrained_atomic(model, tokenizer, out: str | Path, card: str) -> Path:
    """Write model + tokenizer + model card (README.md) into a temp folder beside `out`, then swap it in."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename is atomic per folder; the old folder is moved aside first and deleted only after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
