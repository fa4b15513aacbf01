"""Records of a Jacobi run (or of another exact parallel decoder, cllm.decoders), and their versioned JSON form.

A `Trajectory` holds every block's states from the initial guess to the fixed point, with timing and
the run's metadata. Version 2 adds what the other decoders record: `meta.decoder` and its options, and per
pass (optional, all three or none) the drafts verified, which one won and the tokens gained. A plain Jacobi
record is still written as version 1, so readers from before version 2 keep reading it; both are read.
`save_trajectory` writes it atomically; `load_trajectory` reads it back with
validation, so a malformed or hostile file gives a `TrajectoryError` with a clear message, never a
crash and never code execution (plain JSON, no pickle).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cllm.files import STALE_TEMP_SECONDS, atomic_write_text, check_output_path, drop_stale_temps  # noqa: F401 (were here)

SCHEMA = "cllm-trajectory"
SCHEMA_VERSION = 2  # the newest version written; READ_VERSIONS are read
READ_VERSIONS = (1, 2)
MAX_DRAFTS = 64  # drafts recorded per pass (pool candidates verified together)
MAX_FILE_BYTES = 8 * 1024 * 1024  # a 512-token run of n=64 is ~1 MB; anything far larger is not ours
MAX_BLOCKS = 4096
MAX_BLOCK_WIDTH = 1024
MAX_TEXT_CHARS = 200_000
MAX_TOKEN_TEXT_CHARS = 256


class TrajectoryError(ValueError):
    """A trajectory file or dict that cannot be read: the message says what is wrong."""


def committed_prefix(state: list[int], fixed_point: list[int]) -> int:
    """c_j: how many leading tokens of `state` already equal the fixed point. Here, beside the records, so the
    decoders use it without importing the metrics (and pandas)."""
    return next((i for i, (a, b) in enumerate(zip(state, fixed_point)) if a != b), len(state))


@dataclass
class Block:
    """One n-token block: its Jacobi states, from the initial guess to the fixed point."""

    states: list[list[int]]  # states[0] = initial guess, states[-1] = fixed point; all of one width
    iteration_seconds: list[float]  # wall time of each iteration; iteration j turns states[j] into states[j+1]
    # Per pass, when the decoder verified drafts besides the block's own state (cllm.decoders):
    drafts: list[list[list[int]]] | None = None  # the drafts verified by pass j (ids after the last committed one)
    winners: list[int] | None = None  # index into drafts[j] of the accepted one; -1: the block's own state won
    gains: list[int] | None = None  # tokens pass j committed (accepted prefix + the pass's own next token)

    @property
    def fixed_point(self) -> list[int]:
        return self.states[-1]

    @property
    def width(self) -> int:
        return len(self.states[0])

    @property
    def iterations(self) -> int:
        """Forward passes spent on this block (one per iteration)."""
        return len(self.states) - 1


@dataclass
class RunMeta:
    """What produced a trajectory: enough to reproduce it."""

    model: str = ""  # hub id or path, as the user named it
    n: int = 16  # block size asked for (the last block may be narrower)
    max_new_tokens: int = 64
    seed: int = 0
    init: str = "prompt"
    device: str = "cpu"
    dtype: str = "float32"
    vocab_size: int = 0  # bounds every token id in the file
    eos_token_id: int | None = None
    chat: bool = False  # the prompt was sent as a user turn of the chat template (prompt_ids hold the template)
    decoder: str = "jacobi"  # a name of cllm.decoders.DECODERS
    options: dict[str, float | bool] = field(default_factory=dict)  # that decoder's own settings (pool size, ...)


@dataclass
class Trajectory:
    """A whole Jacobi run: prompt, blocks, timing; tokens are the blocks' fixed points joined."""

    meta: RunMeta
    prompt_ids: list[int]
    blocks: list[Block]
    prefill_seconds: float = 0.0
    prompt: str = ""  # set by whoever holds the tokenizer (the decoder knows ids only)
    token_text: dict[int, str] = field(default_factory=dict)  # id -> display text, for every id used
    ar_tokens: list[int] | None = None  # greedy AR output of the same model, when checked
    ar_seconds: float | None = None  # wall time of that AR decode
    title: str = ""

    @property
    def tokens(self) -> list[int]:
        """Generated ids (already cut after the first EOS by the decoder)."""
        return [t for block in self.blocks for t in block.fixed_point]

    @property
    def forward_passes(self) -> int:
        """Decode forward passes (the prompt's prefill is not counted, as for AR)."""
        return sum(block.iterations for block in self.blocks)

    @property
    def decode_seconds(self) -> float:
        return sum(sum(block.iteration_seconds) for block in self.blocks)

    @property
    def matches_ar(self) -> bool | None:
        return None if self.ar_tokens is None else self.tokens == self.ar_tokens

    def text_of(self, ids: list[int]) -> str:
        return "".join(self.token_text.get(i, "") for i in ids)


def is_plain_jacobi(traj: Trajectory) -> bool:
    """A record version 1 can hold: Jacobi, no per-pass draft fields."""
    return traj.meta.decoder == "jacobi" and not traj.meta.options and all(b.drafts is None for b in traj.blocks)


def trajectory_to_dict(traj: Trajectory) -> dict:
    plain = is_plain_jacobi(traj)
    meta = asdict(traj.meta)
    if plain:
        del meta["decoder"], meta["options"]
    return {
        "schema": SCHEMA,
        "version": 1 if plain else SCHEMA_VERSION,
        "title": traj.title,
        "meta": meta,
        "prompt": traj.prompt,
        "prompt_ids": traj.prompt_ids,
        "prefill_seconds": traj.prefill_seconds,
        "blocks": [{k: v for k, v in asdict(b).items() if v is not None} for b in traj.blocks],
        "token_text": {str(k): v for k, v in sorted(traj.token_text.items())},
        "ar_tokens": traj.ar_tokens,
        "ar_seconds": traj.ar_seconds,
    }


def save_trajectory(traj: Trajectory, path: str | os.PathLike) -> Path:
    """Write atomically: a crash mid-write leaves the old file (or none), never half a file."""
    path = Path(path)
    text = json.dumps(trajectory_to_dict(traj), ensure_ascii=False, separators=(",", ":"))
    atomic_write_text(path, text)
    return path


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise TrajectoryError(f"cannot read {path.name}: {e.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise TrajectoryError(f"{path.name} is {size / 2**20:.1f} MiB; trajectory files are at most {MAX_FILE_BYTES // 2**20} MiB")
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise TrajectoryError(f"{path.name} is not UTF-8 text") from None
    return trajectory_from_json(raw, name=path.name)


def trajectory_from_json(raw: str, name: str = "trajectory") -> Trajectory:
    return trajectory_from_dict(parse_json(raw, name, MAX_FILE_BYTES, TrajectoryError))


def parse_json(raw: str | bytes, name: str, max_bytes: int, error: type[ValueError]) -> object:
    """Parse untrusted JSON text: size-capped, UTF-8, bounded nesting; every failure is `error(one line)`."""
    if len(raw) > max_bytes:
        raise error(f"{name} is larger than {max_bytes // 2**20} MiB")
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        raise error(f"{name} is not UTF-8 text") from None
    except RecursionError:
        raise error(f"{name} is nested too deeply to be read") from None
    except json.JSONDecodeError as e:
        raise error(f"{name} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except ValueError:  # an integer literal of thousands of digits (Python's int-conversion limit)
        raise error(f"{name} holds a number too long to be read") from None


def trajectory_from_dict(data: object) -> Trajectory:
    """Build a Trajectory from parsed JSON, checking every field's type, range and shape."""
    _check(isinstance(data, dict), "the file must hold a JSON object")
    _check(data.get("schema") == SCHEMA, f"not a trajectory file (schema should be {SCHEMA!r})")
    version = data.get("version")
    _check(version in READ_VERSIONS and not isinstance(version, bool),
           f"unsupported trajectory version {version!r} (this app reads versions 1 to {SCHEMA_VERSION})")
    meta = _read_meta(data.get("meta"), version)
    ids = _id_list(data.get("prompt_ids"), "prompt_ids", meta.vocab_size, MAX_TEXT_CHARS)
    _check(len(ids) >= 1, "prompt_ids is empty")
    blocks = _read_blocks(data.get("blocks"), meta, version)
    ar = data.get("ar_tokens")
    return Trajectory(
        meta=meta,
        prompt_ids=ids,
        blocks=blocks,
        prefill_seconds=_seconds(data.get("prefill_seconds", 0.0), "prefill_seconds"),
        prompt=_text(data.get("prompt", ""), "prompt", MAX_TEXT_CHARS),
        token_text=_read_token_text(data.get("token_text", {}), meta.vocab_size),
        ar_tokens=None if ar is None else _id_list(ar, "ar_tokens", meta.vocab_size, MAX_TEXT_CHARS),
        ar_seconds=None if data.get("ar_seconds") is None else _seconds(data["ar_seconds"], "ar_seconds"),
        title=_text(data.get("title", ""), "title", 200),
    )


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TrajectoryError(message)


def _int(value: object, name: str, low: int, high: int) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool), f"{name} must be an integer")
    _check(low <= value <= high, f"{name} = {value} is out of range [{low}, {high}]")
    return value


def _seconds(value: object, name: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    _check(ok, f"{name} must be a non-negative number of seconds")
    return float(value)


def _bool(value: object, name: str) -> bool:
    _check(isinstance(value, bool), f"{name} must be true or false")
    return value


def _text(value: object, name: str, max_chars: int) -> str:
    _check(isinstance(value, str), f"{name} must be a string")
    _check(len(value) <= max_chars, f"{name} is longer than {max_chars} characters")
    return value


def _id_list(value: object, name: str, vocab_size: int, max_len: int) -> list[int]:
    _check(isinstance(value, list), f"{name} must be a list of token ids")
    _check(len(value) <= max_len, f"{name} has more than {max_len} entries")
    for v in value:
        _check(isinstance(v, int) and not isinstance(v, bool), f"{name} must hold integers only")
        _check(0 <= v < vocab_size, f"{name} holds token id {v}, outside the vocabulary [0, {vocab_size})")
    return list(value)


def _read_meta(raw: object, version: int) -> RunMeta:
    _check(isinstance(raw, dict), "meta must be an object")
    if version == 1:
        _check("decoder" not in raw and "options" not in raw, "meta.decoder and meta.options need version 2")
    eos = raw.get("eos_token_id")
    vocab = _int(raw.get("vocab_size"), "meta.vocab_size", 1, 10_000_000)
    return RunMeta(
        model=_text(raw.get("model", ""), "meta.model", 500),
        n=_int(raw.get("n"), "meta.n", 1, MAX_BLOCK_WIDTH),
        max_new_tokens=_int(raw.get("max_new_tokens"), "meta.max_new_tokens", 1, 1_000_000),
        seed=_int(raw.get("seed", 0), "meta.seed", -(2**63), 2**64 - 1),
        init=_text(raw.get("init", "prompt"), "meta.init", 40),
        chat=_bool(raw.get("chat", False), "meta.chat"),
        device=_text(raw.get("device", "cpu"), "meta.device", 100),
        dtype=_text(raw.get("dtype", "float32"), "meta.dtype", 40),
        vocab_size=vocab,
        eos_token_id=None if eos is None else _int(eos, "meta.eos_token_id", 0, vocab - 1),
        decoder=_text(raw.get("decoder", "jacobi"), "meta.decoder", 40),
        options=_read_options(raw.get("options", {})),
    )


def _read_options(raw: object) -> dict[str, float]:
    _check(isinstance(raw, dict) and len(raw) <= 16, "meta.options must be an object of at most 16 settings")
    for key, value in raw.items():
        _check(len(key) <= 40 and key.isidentifier(), "meta.options keys must be short names")
        ok = isinstance(value, (int, float)) and math.isfinite(value)  # bools are ints: on/off settings
        _check(ok, f"meta.options.{key} must be a finite number or true/false")
    return dict(raw)


def _read_blocks(raw: object, meta: RunMeta, version: int) -> list[Block]:
    _check(isinstance(raw, list), "blocks must be a list")
    _check(1 <= len(raw) <= MAX_BLOCKS, f"a trajectory has 1 to {MAX_BLOCKS} blocks, this one has {len(raw)}")
    blocks, total = [], 0
    for b, item in enumerate(raw):
        where = f"blocks[{b}]"
        _check(isinstance(item, dict), f"{where} must be an object")
        states = item.get("states")
        _check(isinstance(states, list) and len(states) >= 2, f"{where}.states must list the initial guess and at least one iteration")
        _check(len(states) <= MAX_BLOCK_WIDTH + 2, f"{where} has more iterations than any block can need")
        rows = [_id_list(s, f"{where}.states", meta.vocab_size, meta.n) for s in states]
        width = len(rows[0])
        _check(width >= 1 and all(len(r) == width for r in rows), f"{where}.states must all have the same width (1 to n = {meta.n})")
        times = item.get("iteration_seconds")
        _check(isinstance(times, list) and len(times) == len(rows) - 1, f"{where}.iteration_seconds needs one entry per iteration")
        times = [_seconds(t, f"{where}.iteration_seconds") for t in times]
        blocks.append(Block(rows, times, *_read_passes(item, where, meta, len(times), version)))
        total += width
    _check(total <= meta.max_new_tokens, f"the blocks hold {total} tokens, more than max_new_tokens = {meta.max_new_tokens}")
    return blocks


def _read_passes(item: dict, where: str, meta: RunMeta, passes: int, version: int) -> tuple:
    """The optional per-pass fields of a block: all three or none, one entry per pass, winners in range."""
    present = [k in item for k in ("drafts", "winners", "gains")]
    if not any(present):
        return None, None, None
    _check(version >= 2, f"{where}: drafts, winners and gains need version 2")
    _check(all(present), f"{where} must have drafts, winners and gains together")
    drafts, winners, gains = item["drafts"], item["winners"], item["gains"]
    for name, value in (("drafts", drafts), ("winners", winners), ("gains", gains)):
        _check(isinstance(value, list) and len(value) == passes, f"{where}.{name} needs one entry per iteration")
    rows = []
    for j, (pass_drafts, winner, gain) in enumerate(zip(drafts, winners, gains)):
        _check(isinstance(pass_drafts, list) and len(pass_drafts) <= MAX_DRAFTS, f"{where}.drafts[{j}] must be a list of at most {MAX_DRAFTS} drafts")
        rows.append([_id_list(d, f"{where}.drafts", meta.vocab_size, MAX_BLOCK_WIDTH) for d in pass_drafts])
        _int(winner, f"{where}.winners[{j}]", -1, len(pass_drafts) - 1)
        _int(gain, f"{where}.gains[{j}]", 0, MAX_BLOCK_WIDTH)
    return rows, list(winners), list(gains)


def _read_token_text(raw: object, vocab_size: int) -> dict[int, str]:
    _check(isinstance(raw, dict), "token_text must be an object mapping token id to text")
    _check(len(raw) <= 100_000, "token_text has too many entries")
    out = {}
    for key, value in raw.items():
        _check(key.isascii() and key.isdigit() and len(key) < 10 and int(key) < vocab_size, f"token_text key {key[:20]!r} is not a token id in the vocabulary")
        out[int(key)] = _text(value, "token_text values", MAX_TOKEN_TEXT_CHARS)
    return out
