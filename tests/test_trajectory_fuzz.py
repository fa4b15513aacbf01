"""Fuzz the trajectory loader: 1,500 generated hostile files; each either loads as a consistent
trajectory or raises TrajectoryError with a message; nothing else escapes (no crash, no hang)."""
import copy
import json
import random
import re

import pytest

from cllm import trajectory as T
from cllm.trajectory import Block, RunMeta, Trajectory

NEST = "__nest__"
HOSTILE_VALUES = [None, True, -1, 0, 2**63, -(2**70), 1e308, float("inf"), float("nan"), "", "x" * 300, "../../etc/passwd",
                  [], [[]], [-5], [1.5], [10**40], {}, {"a": 1}, [[1, 2], [3]], "\x00", ["1"], [True]]


def valid_dict():
    meta = RunMeta(n=4, max_new_tokens=8, vocab_size=50, eos_token_id=3)
    blocks = [Block([[1, 2, 3, 4], [5, 6, 7, 8], [5, 6, 7, 8]], [0.1, 0.1]), Block([[1, 1], [9, 9]], [0.2])]
    traj = Trajectory(meta=meta, prompt_ids=[1, 2], blocks=blocks, token_text={1: "a", 9: "b"}, ar_tokens=[5, 6])
    return json.loads(json.dumps(T.trajectory_to_dict(traj)))


def paths(obj, prefix=()):
    """(container, key) locations in a JSON tree: the first 20 children of each, 30 levels deep."""
    if isinstance(obj, dict):
        items = list(obj.items())[:20]
    elif isinstance(obj, list):
        items = list(enumerate(obj))[:20]
    else:
        return
    if len(prefix) >= 30:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from paths(v, prefix + (k,))


def mutate(data, rng: random.Random):
    for _ in range(rng.randint(1, 4)):
        locs = list(paths(data))
        if not locs:  # every key deleted: nothing left to mutate
            break
        loc = rng.choice(locs)
        parent = data
        for k in loc[:-1]:
            parent = parent[k]
        action = rng.random()
        if action < 0.6:
            parent[loc[-1]] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        elif action < 0.75 and isinstance(parent, dict):
            del parent[loc[-1]]
        elif action < 0.85:  # giant lists, of scalars so that mutations never compound in size
            parent[loc[-1]] = [rng.choice([1, -1, 10**9, "x", None])] * rng.choice([2, 1000, 20_000])
        elif action < 0.95:  # deep nesting, spliced into the text by `serialize`
            parent[loc[-1]] = f"{NEST}{rng.choice([5, 50, 5000])}"
        elif isinstance(parent, dict):
            parent[f"extra{rng.randrange(99)}"] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    return data


def serialize(data) -> str:
    """JSON text, with each nesting marker replaced by that many nested lists."""
    raw = json.dumps(data, allow_nan=True)
    return re.sub(f'"{NEST}(\\d+)"', lambda m: "[" * int(m.group(1)) + "1" + "]" * int(m.group(1)), raw)


def check_loaded(traj: Trajectory):
    assert all(0 <= t < traj.meta.vocab_size for t in traj.prompt_ids + traj.tokens)
    for b in traj.blocks:
        assert len({len(s) for s in b.states}) == 1 and len(b.iteration_seconds) == b.iterations


@pytest.mark.parametrize("chunk", range(15))
def test_hostile_files_give_clear_errors(chunk):
    rng = random.Random(chunk)
    for case in range(100):
        data = mutate(valid_dict(), rng)
        raw = serialize(data)
        if rng.random() < 0.1:  # truncated or garbled bytes
            raw = raw[: rng.randrange(len(raw))]
        try:
            check_loaded(T.trajectory_from_json(raw))
        except T.TrajectoryError as e:
            assert str(e) and "\n" not in str(e)
