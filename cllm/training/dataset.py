"""The consistency dataset on disk: Jacobi trajectories of a target model, ready for CLLM training.

A dataset is a folder:
    meta.json            {"schema": "cllm-consistency-data", "version": 1, model, n, max_new_tokens, init,
                          seed, prompts_file, limit, clean, augment, repeat_run, repeat_period, vocab_size, eos_token_id,
                          device, dtype, counts {...}, shards [...], format}
    shard-00000.jsonl    one JSON object per prompt, in prompt-file order within a shard:
                          {"prompt_index": k, "prompt_ids": [...], "output": [...],
                           "blocks": [{"start": s, "states": [[...], ...], "augmented": [[...], ...]}]}
`output` is the whole greedy (= Jacobi) continuation. A block's context is prompt_ids + output[:start],
its states run from the initial guess (states[0]) to the fixed point (states[-1] = output[start:start+w]),
and `augmented` holds extra states made from its states (empty without augmentation). Blocks dropped by
cleaning are absent from `blocks` (their tokens stay in `output`, as context of later blocks). A prompt
that could not be decoded (too long for the model's context) is a line {"prompt_index": k, "skipped": why}.

Shards are written whole and atomically; meta.json is rewritten after each shard and is derived from the
shards, so an interrupted collection resumes from the shards that exist. Reading validates every field;
no pickle anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cllm.files import json_lines
from cllm.trajectory import parse_json

SCHEMA = "cllm-consistency-data"
SCHEMA_VERSION = 1
META = "meta.json"
SHARD_GLOB = "shard-*.jsonl"
MAX_META_BYTES = 16 * 2**20  # meta.json lists options, counts and shard names: kilobytes
FORMAT_NOTE = ("one JSON line per prompt: prompt_index, prompt_ids, output (generated ids), blocks [{start, states, "
               "augmented}]; block context = prompt_ids + output[:start]; states[0] = initial guess, states[-1] = "
               "fixed point; cleaned-out blocks are absent; skipped prompts are {prompt_index, skipped}")


class DatasetError(ValueError):
    """A dataset folder that cannot be used; the message says what is wrong."""


@dataclass
class Entry:
    """One training example: an n-token block with the context it was decoded in."""

    context: list[int]  # prompt ids + tokens accepted before this block
    states: list[list[int]]  # Jacobi states, initial guess .. fixed point
    augmented: list[list[int]]  # extra states (a random half of the wrong tokens corrected)

    @property
    def fixed_point(self) -> list[int]:
        return self.states[-1]


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.jsonl"


def shard_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob(SHARD_GLOB))


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"no dataset folder at {folder}")
    path = folder / META
    if not path.is_file():
        raise DatasetError(f"{folder} holds no {META}: not a dataset made by `python -m cllm collect`")
    if path.stat().st_size > MAX_META_BYTES:
        raise DatasetError(f"{path} is larger than {MAX_META_BYTES // 2**20} MiB: not a meta.json written by collect")
    meta = parse_json(path.read_bytes(), str(path), MAX_META_BYTES, DatasetError)
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise DatasetError(f"{path} is not a consistency dataset (schema should be {SCHEMA!r})")
    if meta.get("version") != SCHEMA_VERSION:
        raise DatasetError(f"unsupported dataset version {meta.get('version')!r} (this code reads {SCHEMA_VERSION})")
    for key, kind in (("n", int), ("vocab_size", int), ("model", str), ("max_new_tokens", int)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise DatasetError(f"{path}: field {key!r} is missing or not {kind.__name__}")
    for key in ("n", "vocab_size", "max_new_tokens"):
        if meta[key] < 1:
            raise DatasetError(f"{path}: field {key!r} must be positive, got {meta[key]}")
    return meta


def read_shard_records(path: Path) -> list[dict]:
    """Parsed lines of one shard (structure checked later, per record)."""
    records = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path.name} is not UTF-8 text") from None
    for lineno, record in json_lines(text, path.name, DatasetError):
        index = record.get("prompt_index") if isinstance(record, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise DatasetError(f"{path.name} line {lineno} has no prompt_index (a whole number >= 0)")
        records.append(record)
    return records


def load_entries(folder: str | Path) -> tuple[dict, list[Entry]]:
    """meta + every kept block of every shard, validated against the meta (ids in vocabulary, widths <= n)."""
    meta = read_meta(folder)
    entries = []
    for path in shard_paths(Path(folder)):
        for record in read_shard_records(path):
            if "skipped" not in record:
                entries += _record_entries(record, meta, path.name)
    if not entries:
        raise DatasetError(f"{folder} holds no training blocks (no prompts collected, or cleaning dropped them all)")
    return meta, entries


def _record_entries(record: dict, meta: dict, where: str) -> list[Entry]:
    where = f"{where} prompt {record['prompt_index']}"
    prompt, output = _ids(record.get("prompt_ids"), meta, where), _ids(record.get("output"), meta, where)
    blocks = record.get("blocks")
    _check(isinstance(blocks, list), f"{where}: blocks must be a list")
    out = []
    for block in blocks:
        _check(isinstance(block, dict) and isinstance(block.get("start"), int), f"{where}: a block has no start")
        states = [_ids(s, meta, where) for s in _list(block.get("states"), where)]
        augmented = [_ids(s, meta, where) for s in _list(block.get("augmented", []), where)]
        start, width = block["start"], len(states[0]) if states else 0
        _check(len(states) >= 2 and 1 <= width <= meta["n"], f"{where}: a block needs >= 2 states of width 1..n")
        _check(all(len(s) == width for s in states + augmented), f"{where}: a block's states differ in width")
        _check(0 <= start and output[start:start + width] == states[-1], f"{where}: fixed point is not output[start:]")
        out.append(Entry(prompt + output[:start], states, augmented))
    return out


def _list(value, where: str) -> list:
    _check(isinstance(value, list), f"{where}: states must be lists")
    return value


def _ids(value, meta: dict, where: str) -> list[int]:
    vocab = meta["vocab_size"]
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < vocab for v in value)
    _check(ok, f"{where}: token ids must be integers in [0, {vocab})")
    return value


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DatasetError(message)
