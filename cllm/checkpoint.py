"""Atomic folder writes (HF-format checkpoints, tokenizers): a crash or a full disk mid-save leaves the old
folder (or none), never half of one."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cllm.trajectory import drop_stale_temps


def save_pretrained_atomic(model, tokenizer, out: str | Path, card: str) -> Path:
    """Model + tokenizer + model card (README.md), written into a temp folder beside `out`, then swapped in."""
    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")
    return write_folder_atomic(out, write)


def write_folder_atomic(out: str | Path, write: Callable[[Path], None]) -> Path:
    """Run `write(temp folder)` beside `out`, then swap the temp folder in as `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out)
    drop_stale_temps(out)  # hidden temp folders of saves that were killed (they never became `out`)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be read by everyone
    try:
        write(tmp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def old_path(out: Path) -> Path:
    """Where `_swap_in` keeps the previous folder for the instant between its two renames."""
    return out.with_name(f".{out.name}.old")


def recover_interrupted_swap(out: Path) -> None:
    """A save killed between `_swap_in`'s renames left no `out` and the previous folder in `.out.old`: put it back."""
    old = old_path(out)
    if not out.exists() and old.is_dir():
        old.rename(out)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename is atomic per folder; the old folder is moved aside first and deleted only after."""
    old = None
    if out.exists():
        old = old_path(out)
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
