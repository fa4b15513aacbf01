"""Race files: round trip, validation with clear messages, gallery names, atomic never-overwriting saves."""
import json

import pytest

from cllm import race as R
from cllm.jacobi import JacobiConfig, jacobi_decode
from conftest import tiny_model


def make_run(seed: int):
    t = jacobi_decode(tiny_model("llama", seed=seed), [3, 1, 4], JacobiConfig(n=4, max_new_tokens=10, seed=2))
    t.prompt = "def f(x):\n    return x\n"
    t.token_text = {i: f"t{i}" for i in range(97)}
    t.ar_tokens, t.ar_seconds = list(t.tokens), 0.5
    return t


@pytest.fixture(scope="module")
def race():
    return R.Race(make_run(0), make_run(1), title="a race")


def test_round_trip(race, tmp_path):
    back = R.load_race(R.save_race(race, tmp_path / "r.json"))
    assert R.race_to_dict(back) == R.race_to_dict(race)
    assert back.base.tokens == race.base.tokens and back.cllm.matches_ar is True
    assert json.loads((tmp_path / "r.json").read_text())["schema"] == "cllm-race"


def test_title_defaults_to_the_first_prompt_line(race):
    data = R.race_to_dict(race)
    data["title"] = ""
    assert R.race_from_dict(data).title == "def f(x):"
    assert R.default_title("\n\n  " + "x" * 100).endswith("…") and len(R.default_title("x" * 100)) == 60


def bad(race, edit):
    data = json.loads(R.race_json(race))
    edit(data)
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(schema="cllm-trajectory"), "not a race file"),
    (lambda d: d.update(version=2), "unsupported race version 2"),
    (lambda d: d.update(title=5), "title must be a string"),
    (lambda d: d.pop("cllm"), "cllm run: the file must hold a JSON object"),
    (lambda d: d["base"]["blocks"][0]["states"][0].__setitem__(0, 10**6),
     r"base run: blocks\[0\]\.states holds token id 1000000"),
    (lambda d: d["cllm"].update(prompt="other"), "different prompts"),
])
def test_bad_races_say_what_is_wrong(race, edit, message):
    with pytest.raises(R.RaceError, match=message):
        R.race_from_dict(bad(race, edit))


@pytest.mark.parametrize("raw, message", [
    (b"\xff\xfe", "not UTF-8"), ("{", "not valid JSON"), ("[" * 100_000, "nested too deeply"), ("[]", "JSON object"),
])
def test_bad_bytes(raw, message):
    with pytest.raises(R.RaceError, match=message):
        R.race_from_json(raw, "up.json")


def test_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "MAX_RACE_BYTES", 10)
    (tmp_path / "big.json").write_text("{}" * 10)
    with pytest.raises(R.RaceError, match="the limit is"):
        R.load_race(tmp_path / "big.json")


@pytest.mark.parametrize("name", ["", "   ", "../x", "a/b", ".hidden", "x.json", "a b", "é", "-x", "x" * 65, None, 5])
def test_bad_names(name):
    with pytest.raises(R.RaceError, match="not a valid name"):
        R.check_name(name)


@pytest.mark.parametrize("name", ["fib", "Fib_n16", "run-01", "x" * 64, " padded "])
def test_good_names(name):
    assert R.check_name(name) == name.strip()


def test_gallery_save_list_load(race, tmp_path):
    path = R.add_to_gallery(race, tmp_path, "first")
    assert path == tmp_path / "first.json" and [p.name for p in tmp_path.iterdir()] == ["first.json"]
    with pytest.raises(R.RaceError, match="already exists"):
        R.add_to_gallery(race, tmp_path, "first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.json"]  # no temp file left behind
    (tmp_path / "broken.json").write_text("{nope")
    (tmp_path / "not a name.json").write_text("{}")  # not a gallery name: ignored
    entries = {e.name: e for e in R.list_gallery(tmp_path)}
    assert set(entries) == {"first", "broken"}
    assert "not valid JSON" in entries["broken"].error
    e = entries["first"]
    assert (e.title, e.n, e.tokens) == ("a race", 4, (len(race.base.tokens), len(race.cllm.tokens))) and e.cllm_tpf > 0
    assert R.load_from_gallery(tmp_path, "first").title == "a race"
    with pytest.raises(R.RaceError, match="no saved run named 'missing'"):
        R.load_from_gallery(tmp_path, "missing")
    with pytest.raises(R.RaceError, match="not a valid name"):
        R.load_from_gallery(tmp_path, "../first")


def test_gallery_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CLLM_GALLERY_DIR", str(tmp_path))
    assert R.gallery_dir() == tmp_path
    monkeypatch.delenv("CLLM_GALLERY_DIR")
    assert R.gallery_dir() == R.GALLERY_DIR


def test_saved_files_are_readable_by_others(race, tmp_path):
    """mkstemp creates 0600 files; saved runs and trajectories are meant to be shared and served."""
    import stat

    from cllm.trajectory import atomic_write_text

    atomic_write_text(tmp_path / "t.json", "{}")
    saved = R.add_to_gallery(race, tmp_path, "shared")
    for path in (tmp_path / "t.json", saved):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
