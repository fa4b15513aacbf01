"""Saved trajectories: round trip, atomic writes, and a clear TrajectoryError for every bad file."""
import copy
import json
import os

import pytest

from cllm import trajectory as T
from cllm.jacobi import JacobiConfig, jacobi_decode
from conftest import tiny_model


@pytest.fixture(scope="module")
def traj():
    t = jacobi_decode(tiny_model("llama"), [3, 1, 4], JacobiConfig(n=4, max_new_tokens=10, seed=2))
    t.prompt, t.title = "abc", "a run"
    t.token_text = {i: f"t{i}" for i in range(97)}
    t.ar_tokens, t.ar_seconds = list(t.tokens), 0.5
    return t


def test_round_trip(traj, tmp_path):
    path = T.save_trajectory(traj, tmp_path / "run.json")
    back = T.load_trajectory(path)
    assert T.trajectory_to_dict(back) == T.trajectory_to_dict(traj)
    assert back.tokens == traj.tokens and back.matches_ar is True


def test_failed_write_keeps_the_old_file(traj, tmp_path, monkeypatch):
    path = T.save_trajectory(traj, tmp_path / "run.json")
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    traj2 = copy.deepcopy(traj)
    traj2.title = "changed"
    with pytest.raises(OSError):
        T.save_trajectory(traj2, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left behind


def mutations():
    """(description, function that breaks a valid dict, expected message fragment)."""
    def setter(path, value):
        def apply(d):
            target = d
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return apply
    return [
        ("wrong schema", setter(["schema"], "other"), "not a trajectory file"),
        ("future version", setter(["version"], 99), "unsupported trajectory version"),
        ("meta not object", setter(["meta"], [1]), "meta must be an object"),
        ("n zero", setter(["meta", "n"], 0), "meta.n"),
        ("n string", setter(["meta", "n"], "16"), "meta.n must be an integer"),
        ("vocab bool", setter(["meta", "vocab_size"], True), "meta.vocab_size must be an integer"),
        ("negative id", setter(["prompt_ids"], [-1]), "outside the vocabulary"),
        ("huge id", setter(["prompt_ids"], [10**30]), "outside the vocabulary"),
        ("float id", setter(["prompt_ids"], [1.5]), "integers only"),
        ("empty prompt ids", setter(["prompt_ids"], []), "prompt_ids is empty"),
        ("no blocks", setter(["blocks"], []), "1 to"),
        ("block not object", setter(["blocks", 0], "x"), "blocks[0] must be an object"),
        ("one state", setter(["blocks", 0, "states"], [[1, 2, 3, 4]]), "at least one iteration"),
        ("ragged states", setter(["blocks", 0, "states"], [[1, 2, 3, 4], [1, 2]]), "same width"),
        ("wider than n", setter(["blocks", 0, "states"], [[1] * 5, [1] * 5]), "more than 4 entries"),
        ("times mismatch", setter(["blocks", 0, "iteration_seconds"], []), "one entry per iteration"),
        ("negative time", setter(["prefill_seconds"], -1), "non-negative"),
        ("nan time", setter(["ar_seconds"], float("nan")), "non-negative"),
        ("token text key", setter(["token_text"], {"abc": "x"}), "not a token id"),
        ("token text value", setter(["token_text"], {"1": 5}), "must be a string"),
        ("title type", setter(["title"], ["x"]), "title must be a string"),
        ("too many tokens", setter(["meta", "max_new_tokens"], 2), "more than max_new_tokens"),
        ("not an object", lambda d: d.clear() or d.update(x=1), "not a trajectory file"),
    ]


@pytest.mark.parametrize("name, mutate, message", mutations(), ids=[m[0] for m in mutations()])
def test_bad_fields_are_clear_errors(traj, name, mutate, message):
    data = json.loads(json.dumps(T.trajectory_to_dict(traj)))
    mutate(data)
    with pytest.raises(T.TrajectoryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        T.trajectory_from_json(json.dumps(data))


@pytest.mark.parametrize("raw, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("null", "must hold a JSON object"),
])
def test_unparseable_files(raw, message):
    with pytest.raises(T.TrajectoryError, match=message):
        T.trajectory_from_json(raw)


def test_file_level_errors(tmp_path, monkeypatch):
    with pytest.raises(T.TrajectoryError, match="cannot read"):
        T.load_trajectory(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(T.TrajectoryError, match="not UTF-8"):
        T.load_trajectory(tmp_path / "bin.json")
    monkeypatch.setattr(T, "MAX_FILE_BYTES", 10)
    (tmp_path / "big.json").write_text("{" + " " * 20 + "}")
    with pytest.raises(T.TrajectoryError, match="at most"):
        T.load_trajectory(tmp_path / "big.json")
