"""Fuzz the other loaders of untrusted files with the trajectory fuzzer's mutations (wrong types, giant lists,
negative or huge ids, deep nesting, truncation): race files (gallery and uploads, 1,000 cases), collected-data
folders (meta.json + shard, 500 cases) and prompt files (JSONL and text, 500 cases). Each file either loads
as consistent data or raises the loader's own error with a one-line message; nothing else escapes."""
import copy
import json
import random

import pytest
from test_trajectory_fuzz import check_loaded, mutate, serialize, valid_dict

from cllm.training.dataset import DatasetError, load_entries
from cllm.prompts import check_prompt, read_prompt_file
from cllm.race import RaceError, list_gallery, race_from_json


def one_line(error: Exception) -> None:
    assert str(error) and "\n" not in str(error)


def valid_race() -> dict:
    base = valid_dict()
    return {"schema": "cllm-race", "version": 1, "title": "t", "base": base, "cllm": copy.deepcopy(base)}


def maybe_garble(raw: str, rng: random.Random) -> str | bytes:
    roll = rng.random()
    if roll < 0.1:  # truncated
        return raw[: rng.randrange(len(raw))]
    if roll < 0.15:  # bytes that are not UTF-8
        data = bytearray(raw.encode())
        data[rng.randrange(len(data))] = rng.choice([0xFF, 0xC3, 0x80])
        return bytes(data)
    return raw


@pytest.mark.parametrize("chunk", range(10))
def test_hostile_race_files(chunk, tmp_path):
    rng = random.Random(1000 + chunk)
    for case in range(100):
        raw = maybe_garble(serialize(mutate(valid_race(), rng)), rng)
        try:
            race = race_from_json(raw)
        except RaceError as e:
            one_line(e)
            continue
        check_loaded(race.base)
        check_loaded(race.cllm)
        assert race.base.prompt == race.cllm.prompt and isinstance(race.title, str)
        if case % 10 == 0:  # a gallery holding it (and a broken file) still lists
            (tmp_path / f"r{case}.json").write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    (tmp_path / "broken.json").write_bytes(b"\xff{")
    for entry in list_gallery(tmp_path):
        assert entry.error == "" or "\n" not in entry.error


def valid_dataset() -> tuple[dict, dict]:
    meta = {"schema": "cllm-consistency-data", "version": 1, "model": "m", "n": 4, "max_new_tokens": 8,
            "vocab_size": 50, "counts": {}, "shards": ["shard-00000.jsonl"]}
    record = {"prompt_index": 0, "prompt_ids": [1, 2], "output": [5, 6, 7, 8, 9, 9],
              "blocks": [{"start": 0, "states": [[1, 2, 3, 4], [5, 6, 7, 8]], "augmented": [[5, 2, 7, 4]]},
                         {"start": 4, "states": [[1, 1], [9, 9]], "augmented": []}]}
    return meta, record


@pytest.mark.parametrize("chunk", range(5))
def test_hostile_dataset_folders(chunk, tmp_path):
    rng = random.Random(2000 + chunk)
    for case in range(100):
        folder = tmp_path / f"d{case}"
        folder.mkdir()
        meta, record = valid_dataset()
        if rng.random() < 0.3:
            meta = mutate(meta, rng)
        else:
            record = mutate(record, rng)
        (folder / "meta.json").write_text(serialize(meta))
        (folder / "shard-00000.jsonl").write_bytes(_bytes(maybe_garble(serialize(record), rng)) + b"\n")
        try:
            meta, entries = load_entries(folder)
        except DatasetError as e:
            one_line(e)
            continue
        for entry in entries:
            width = len(entry.states[0])
            assert 1 <= width <= meta["n"] and all(len(s) == width for s in entry.states + entry.augmented)
            assert all(0 <= t < meta["vocab_size"] for t in entry.context + [t for s in entry.states for t in s])


@pytest.mark.parametrize("chunk", range(5))
def test_hostile_prompt_files(chunk, tmp_path):
    rng = random.Random(3000 + chunk)
    for case in range(100):
        suffix = rng.choice([".jsonl", ".txt"])
        lines = [serialize(mutate({"prompt": "def f(x):", "id": 1}, rng)) for _ in range(rng.randint(1, 4))]
        raw = maybe_garble("\n".join(lines), rng)
        path = tmp_path / f"p{case}{suffix}"
        path.write_bytes(_bytes(raw))
        try:
            prompts = read_prompt_file(path, limit=200)
        except ValueError as e:
            one_line(e)
            continue
        assert 1 <= len(prompts) <= 200
        for prompt in prompts:
            check_prompt(prompt)  # what is returned passes the typed prompt's checks


def _bytes(raw: str | bytes) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
