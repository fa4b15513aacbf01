"""A race: the base model's and the CLLM's Jacobi runs of one prompt, saved together for replay.

File format (JSON, versioned like the trajectories it holds):
    {"schema": "cllm-race", "version": 1, "title": str,
     "base": <cllm-trajectory dict>, "cllm": <cllm-trajectory dict>}
Both runs are read with cllm.trajectory's validation; a bad file raises `RaceError` (a TrajectoryError)
with a one-line reason. The gallery is a folder of such files named `<name>.json`; names are checked
(no path parts, no odd characters) and a saved run is never overwritten.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cllm.files import read_capped_bytes
from cllm.stats import tokens_per_forward
from cllm.trajectory import (MAX_FILE_BYTES, Trajectory, TrajectoryError, atomic_write_text, drop_stale_temps,
                             parse_json, trajectory_from_dict, trajectory_to_dict)

RACE_SCHEMA = "cllm-race"
RACE_VERSION = 1
MAX_RACE_BYTES = 2 * MAX_FILE_BYTES  # two trajectories
MAX_TITLE_CHARS = 200
GALLERY_DIR = Path(__file__).resolve().parent.parent / "saved_trajectories"
NAME_RULE = "1 to 64 letters, digits, '-' or '_', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # no dots or slashes: no traversal, no hidden files


class RaceError(TrajectoryError):
    """A race file, dict or gallery name that cannot be used: the message says why."""


@dataclass
class Race:
    base: Trajectory  # the target model's Jacobi run
    cllm: Trajectory  # the consistency model's run of the same prompt
    title: str = ""

    @property
    def prompt(self) -> str:
        return self.base.prompt

    @property
    def one_model(self) -> bool:
        """Both sides are runs of one model (e.g. with two decoders): its sides are left and right, not base
        and CLLM."""
        return bool(self.base.meta.model) and self.base.meta.model == self.cllm.meta.model


def default_title(prompt: str, limit: int = 60) -> str:
    """First non-blank line of the prompt, shortened: what a gallery list can show."""
    line = next((s.strip() for s in prompt.splitlines() if s.strip()), "untitled")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def race_to_dict(race: Race) -> dict:
    return {"schema": RACE_SCHEMA, "version": RACE_VERSION, "title": race.title,
            "base": trajectory_to_dict(race.base), "cllm": trajectory_to_dict(race.cllm)}


def race_from_dict(data: object) -> Race:
    """Validate a parsed race: schema, version, title, then both trajectories in full."""
    if not isinstance(data, dict):
        raise RaceError("a race file must hold a JSON object")
    if data.get("schema") != RACE_SCHEMA:
        raise RaceError(f"not a race file (schema should be {RACE_SCHEMA!r}, got {str(data.get('schema'))[:40]!r})")
    if data.get("version") != RACE_VERSION:
        raise RaceError(f"unsupported race version {data.get('version')!r} (this app reads version {RACE_VERSION})")
    title = data.get("title", "")
    if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS:
        raise RaceError(f"title must be a string of at most {MAX_TITLE_CHARS} characters")
    runs = {}
    for role in ("base", "cllm"):
        try:
            runs[role] = trajectory_from_dict(data.get(role))
        except TrajectoryError as e:
            raise RaceError(f"{role} run: {e}") from None
    if runs["base"].prompt != runs["cllm"].prompt:
        raise RaceError("the base and CLLM runs are of different prompts")
    return Race(runs["base"], runs["cllm"], title or default_title(runs["base"].prompt))


def race_from_json(raw: str | bytes, name: str = "race file") -> Race:
    return race_from_dict(parse_json(raw, name, MAX_RACE_BYTES, RaceError))


def race_json(race: Race) -> str:
    return json.dumps(race_to_dict(race), ensure_ascii=False, separators=(",", ":"))


def load_race(path: str | os.PathLike) -> Race:
    path = Path(path)
    return race_from_json(read_capped_bytes(path, MAX_RACE_BYTES, RaceError), path.name)


def save_race(race: Race, path: str | os.PathLike) -> Path:
    """Write atomically, replacing any file at `path` (callers that must not replace use add_to_gallery)."""
    path = Path(path)
    atomic_write_text(path, race_json(race))
    return path


# --- The gallery: a folder of <name>.json race files ---------------------------------------------


def gallery_dir() -> Path:
    """saved_trajectories/ in the repo; CLLM_GALLERY_DIR points elsewhere (tests, read-only installs)."""
    return Path(os.environ.get("CLLM_GALLERY_DIR") or GALLERY_DIR)


def check_name(name: object) -> str:
    """A gallery name, or RaceError: the name becomes a file name, so nothing but a plain word passes."""
    if not isinstance(name, str) or not _NAME.fullmatch(name.strip()):
        empty = name is None or (isinstance(name, str) and not name.strip())
        shown = "an empty name" if empty else repr(name)[:40]
        raise RaceError(f"{shown} is not a valid name: use {NAME_RULE}")
    return name.strip()


def gallery_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{check_name(name)}.json"


def add_to_gallery(race: Race, folder: Path, name: str) -> Path:
    """Write `<name>.json` atomically and only if no such file exists (a hard link never replaces)."""
    path = gallery_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a saved run is a file to share
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(race_json(race))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # atomic, and fails if `path` exists: two savers cannot both win
    except FileExistsError:
        raise RaceError(f"a saved run named {path.stem!r} already exists; choose another name") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_from_gallery(folder: Path, name: str) -> Race:
    path = gallery_path(folder, name)
    if not path.is_file():
        raise RaceError(f"no saved run named {path.stem!r}")
    return load_race(path)


@dataclass
class GalleryEntry:
    name: str
    title: str = ""
    base_model: str = ""
    cllm_model: str = ""
    n: int = 0
    tokens: tuple[int, int] = (0, 0)  # the base's, the CLLM's (they differ when one stops at EOS)
    base_tpf: float = 0.0
    cllm_tpf: float = 0.0
    error: str = ""  # why the file could not be read; listed rather than hidden
    decoders: tuple[str, str] = ("jacobi", "jacobi")  # of the base and CLLM runs (cllm.decoders)


def list_gallery(folder: Path) -> list[GalleryEntry]:
    """Every `<name>.json` in the folder, read and validated; unreadable ones carry their error."""
    entries = []
    for path in sorted(Path(folder).glob("*.json")):
        if not _NAME.fullmatch(path.stem):
            continue
        try:
            race = load_race(path)
        except RaceError as e:
            entries.append(GalleryEntry(path.stem, error=str(e)))
            continue
        entries.append(GalleryEntry(
            path.stem, race.title, race.base.meta.model, race.cllm.meta.model, race.cllm.meta.n,
            (len(race.base.tokens), len(race.cllm.tokens)), _tpf(race.base), _tpf(race.cllm),
            decoders=(race.base.meta.decoder, race.cllm.meta.decoder)))
    return entries


def _tpf(traj: Trajectory) -> float:
    return tokens_per_forward(len(traj.tokens), traj.forward_passes)
