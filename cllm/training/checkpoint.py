"""Atomic folder writes (HF-format checkpoints, tokenizers): a crash or a full disk mid-save leaves the old
folder (or none), never half of one."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cllm.adapters import is_adapter_folder
from cllm.trajectory import drop_stale_temps


def save_pretrained_atomic(model, tokenizer, out: str | Path, card: str, extra_files: dict[str, str] | None = None,
                           replace: bool = True) -> Path:
    """Model + tokenizer + model card (README.md) + `extra_files` (name -> text), written into a temp folder
    beside `out`, then swapped in. With replace=False an existing `out` is never touched (FileExistsError)."""
    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "README.md").write_text(card, encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (folder / name).write_text(text, encoding="utf-8")
    return write_folder_atomic(out, write, replace)


def write_folder_atomic(out: str | Path, write: Callable[[Path], None], replace: bool = True) -> Path:
    """Run `write(temp folder)` beside `out`, then swap the temp folder in as `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out)
    if not replace and out.exists():
        raise FileExistsError(f"{out} already exists")
    drop_stale_temps(out)  # hidden temp folders of saves that were killed (they never became `out`)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be read by everyone
    try:
        write(tmp)
        _swap_in(tmp, out, replace)
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


def _swap_in(tmp: Path, out: Path, replace: bool = True) -> None:
    """Rename is atomic per folder; the old folder is moved aside first and deleted only after. Without
    `replace`, a folder that appeared meanwhile wins: rename onto a non-empty folder fails."""
    old = None
    if out.exists():
        if not replace:
            raise FileExistsError(f"{out} already exists")
        old = old_path(out)
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


def check_out_folder(out: Path, protected: list[Path], protected_what: str) -> Path:
    """Refuse an `out` whose replacement would destroy something that is not a model we wrote."""
    if out.resolve() in [p.resolve() for p in protected]:
        raise ValueError(f"--out {out} is {protected_what}; choose a new folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file")
    holds_model = (out / "config.json").exists() or is_adapter_folder(out)  # a LoRA run's out holds an adapter
    if out.is_dir() and any(out.iterdir()) and not holds_model:
        raise ValueError(f"--out {out} is a non-empty folder that holds no model; refusing to replace it")
    return out


def check_disk_for(model, out: Path) -> None:
    """Fail before training, not after, when the checkpoint cannot fit (weights in float32, plus slack)."""
    need = sum(p.numel() for p in model.parameters()) * 4 * 1.1 + 16 * 2**20
    parent = next(p for p in [out.resolve(), *out.resolve().parents] if p.exists())
    free = shutil.disk_usage(parent).free
    if free < need:
        raise OSError(f"not enough disk space for the checkpoint at {parent}: ~{need / 2**20:.0f} MiB needed, "
                      f"{free / 2**20:.0f} MiB free")
