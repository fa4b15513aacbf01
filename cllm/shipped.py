"""Shipped races that may stand in for a live run: a visitor who presses Run on a shipped prompt with the
shipped settings gets the recorded race at once instead of queueing for the model worker (a race of a
135 M pair costs a minute of a CPU Space; the tokens are the same, decoding is deterministic).

Only races `python -m cllm record` wrote are trusted: it lists each file's sha256 in the folder's manifest
(`shipped.sha256`, `sha256sum` format). A race added through the app (an upload, a saved run) is not in it,
and a listed file whose bytes changed is left out, so nothing a visitor wrote can pose as a live run.
tests/test_shipped.py decodes every listed race again with the bundled models and compares them.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from cllm.decoders import decoder_name
from cllm.files import atomic_write_text, read_capped_bytes, sha256_of
from cllm.jacobi import JacobiConfig, options_of
from cllm.race import MAX_RACE_BYTES, Race, RaceError, race_from_json
from cllm.trajectory import RunMeta

MANIFEST = "shipped.sha256"
MAX_MANIFEST_BYTES = 1 << 20  # one line per shipped race
RECENT_RACES = 64  # live races a server keeps to play again (a 64-token race of the real pair: ~0.2 MB)
RECENT_GREEDY = 256  # greedy outputs a server keeps: other seeds, n or decoders on a prompt (a few kB each)
# What fixes a run's output: the same values give the same tokens (timings are the recording's and said so).
# The dtype is part of it: an app on CUDA decodes in bfloat16, whose tokens may differ, so the float32 records
# (decoded on a CPU; _read_races keeps no other) never stand in there.
REQUEST_FIELDS = ("model", "n", "max_new_tokens", "seed", "init", "chat", "decoder", "dtype", "options")


@dataclass(frozen=True)
class Request:
    """One side of a race asked for: a model (as named) and the decoder's settings."""

    model: str
    n: int
    max_new_tokens: int
    seed: int
    init: str
    chat: bool
    decoder: str
    dtype: str  # the weights' dtype as RunMeta names it ("float32", "bfloat16")
    options: tuple  # sorted (name, value) pairs of the decoder's own settings

    @classmethod
    def of(cls, meta: RunMeta) -> "Request":
        """What a recorded run was asked for."""
        values = {f: getattr(meta, f) for f in REQUEST_FIELDS}
        return cls(**(values | {"options": tuple(sorted(meta.options.items()))}))

    @classmethod
    def asked(cls, model: str, config: JacobiConfig, chat: bool, dtype: torch.dtype) -> "Request":
        """What a run of `model` with `config` (any decoder's) in `dtype` would be asked for."""
        return cls(model, config.n, config.max_new_tokens, config.seed, config.init, bool(chat),
                   decoder_name(config), str(dtype).removeprefix("torch."), tuple(sorted(options_of(config).items())))


def read_manifest(folder: Path) -> dict[str, str]:
    """name.json -> sha256 of the races `record` listed in `folder` (empty when there is no manifest)."""
    path = Path(folder) / MANIFEST
    if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
        return {}
    listed = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():  # a bad byte spoils one line only
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name.endswith(".json") and "/" not in name:
            listed[name] = digest
    return listed


def list_shipped(folder: Path, paths: list[Path]) -> Path:
    """Add (or update) `paths` in `folder`'s manifest, rewritten atomically."""
    listed = read_manifest(folder) | {Path(p).name: sha256_of(Path(p)) for p in paths}
    manifest = Path(folder) / MANIFEST
    atomic_write_text(manifest, "".join(f"{d}  {n}\n" for n, d in sorted(listed.items())))
    return manifest


def shipped_races(folder: Path) -> dict[tuple, Race]:
    """(prompt, left Request, right Request) -> race, for every listed race whose file still has its sha256.
    Read again only when the manifest or a listed file changes."""
    return read_listed(folder, _read_races)


def read_listed(folder: Path, index: Callable[[str, tuple, tuple], dict]) -> dict:
    """`index(folder, listed, stamps)` of the files `folder`'s manifest lists: an lru_cached reader is called
    again only when the manifest or a listed file's size or mtime changes (stamps)."""
    folder = Path(folder)
    listed = read_manifest(folder)
    stamps = tuple((name, _stamp(folder / name)) for name in sorted(listed))
    return index(str(folder), tuple(listed.items()), stamps)


def trusted_files(folder: str, listed: tuple, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each listed file whose bytes have the sha256 the manifest gives: read once, so the
    bytes checked are the bytes parsed. A file over `max_bytes` is skipped unread."""
    for name, digest in listed:
        try:
            raw = read_capped_bytes(Path(folder) / name, max_bytes)
        except ValueError:  # unreadable, or over the cap
            continue
        if hashlib.sha256(raw).hexdigest() == digest:
            yield name, raw


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


@lru_cache(maxsize=4)
def _read_races(folder: str, listed: tuple, stamps: tuple) -> dict[tuple, Race]:
    races = {}
    for name, raw in trusted_files(folder, listed, MAX_RACE_BYTES):
        try:
            race = race_from_json(raw, name)
        except RaceError:
            continue
        if all(t.ar_tokens is not None and t.meta.device == "cpu" for t in (race.base, race.cllm)):  # record checks
            races[request_key(race)] = race
    return races


def find_shipped(folder: Path, prompt: str, left: Request, right: Request) -> Race | None:
    """The shipped race of exactly this request, or None."""
    return shipped_races(folder).get((prompt, left, right))


def request_key(race: Race) -> tuple:
    """What a race answers: (prompt, left Request, right Request), as find_shipped and RecentRaces look it up."""
    return race.prompt, Request.of(race.base.meta), Request.of(race.cllm.meta)


class Recent:
    """A bounded map that request threads share: the least recently used entry goes first when it is full."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()  # Gradio runs requests in threads

    def get(self, key: Hashable):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class RecentRaces:
    """The last races this server decoded live, by request, so the same request again (a popular example, a
    second visitor) plays at once: the process keeps one model per name (cllm.models.cached_model) and
    decoding is deterministic, so the tokens would be the same. Only races checked against greedy decoding are
    kept; the least recently asked one goes first."""

    def __init__(self, size: int = RECENT_RACES):
        self._races = Recent(size)

    def get(self, prompt: str, left: Request, right: Request) -> Race | None:
        return self._races.get((prompt, left, right))

    def put(self, race: Race) -> None:
        if race.base.ar_tokens is None or race.cllm.ar_tokens is None:
            raise ValueError("only races checked against greedy decoding are kept")
        self._races.put(request_key(race), race)
