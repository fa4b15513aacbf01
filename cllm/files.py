"""What we write and read, the one copy of each helper: atomic writes, output-path checks (cllm.trajectory
re-exports them, where they were first), size-capped UTF-8 reads, JSON lines, strict-JSON values and one-line
error messages."""
from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STALE_TEMP_SECONDS = 3600  # a temp file of an atomic write untouched this long was left by a killed writer


def check_output_path(path: str | os.PathLike, what: str = "output file") -> Path:
    """Fail before any work when `path` cannot become a file: empty, a folder, or under a file."""
    if not str(path).strip():
        raise ValueError(f"the {what} name is empty")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"the {what} {path} is a folder; give a file name")
    parent = next((p for p in path.parents if p.exists()), Path("."))  # the nearest folder that exists
    if not parent.is_dir():
        raise ValueError(f"the {what} {path} cannot be created: {parent} is a file, not a folder")
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a hidden temp file beside `path`, fsync, then rename over it: readers see the old file or the
    new one, never part of one. A killed writer leaves only its hidden `.name.*.tmp` (dropped once stale)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a saved run is a file to share, like any other
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def drop_stale_temps(path: Path, age_seconds: float = STALE_TEMP_SECONDS) -> None:
    """Remove temp files (or folders) that a killed writer of `path` left behind; a live save takes
    seconds, so one untouched for an hour is a leftover, never work in progress."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > age_seconds:
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        except OSError:
            continue  # another process removed it first, or it is not ours to remove


def read_capped_bytes(path: Path, max_bytes: int, error: type[ValueError] = ValueError) -> bytes:
    """A file's bytes; `error` (one line) when it cannot be read or is over `max_bytes` (checked before reading)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path.name} is {size / 2**20:.1f} MiB; the limit is {max_bytes // 2**20} MiB")
        return path.read_bytes()
    except OSError as e:
        raise error(f"cannot read {path.name}: {e.strerror}") from None


def read_capped_text(path: Path, max_bytes: int, error: type[ValueError] = ValueError) -> str:
    """A file's UTF-8 text; `error` (one line) when it is over `max_bytes` or not UTF-8."""
    if path.stat().st_size > max_bytes:
        cap = f"{max_bytes // 2**20} MiB" if max_bytes >= 2**20 else f"{max_bytes // 1024} KiB"
        raise error(f"{path.name} is larger than {cap}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path.name} is not UTF-8 text") from None


def json_lines(text: str, name: str, error: type[ValueError] = ValueError,
               expected: str = "valid JSON") -> Iterator[tuple[int, object]]:
    """(line number, value) of each non-blank line. Lines split at \\n only: str.splitlines also splits at
    U+2028 and form feeds, which JSON strings may hold. A bad line is `error`: "<name> line k is not <expected>"."""
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, nested too deep, or a number too long to convert
            raise error(f"{name} line {lineno} is not {expected}") from None
        yield lineno, value


def finite_or_none(value):
    """NaN/inf (a rate with no counted pass, a perplexity with no text) become null, in dicts too: strict JSON
    for any reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    return value


def first_line(e: BaseException) -> str:
    """An exception as one line for a user-facing message (its type when it says nothing)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def sha256_of(path: Path) -> str:
    """A file's sha256 (hex), read in 1 MiB chunks: a 93 MB wheel or a race file alike."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
