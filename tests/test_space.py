"""Hugging Face Space readiness: the README's front matter, and spaces.GPU only where `spaces` exists."""
import re
import sys
import types
from pathlib import Path

import yaml

from cllm.ui import common

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must open with a --- YAML block for the Space"
    return yaml.safe_load(match.group(1))


def test_front_matter_is_a_valid_gradio_space_config():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    requirement = re.search(r"^gradio>=(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert meta["sdk_version"] == requirement  # the Space installs the version the tests ran against
    assert str(meta["python_version"]) == "3.11" and meta["title"] and len(meta["short_description"]) <= 60
    assert meta["suggested_hardware"] in {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "a10g-small",
                                          "a10g-large", "a100-large", "zero-a10g"}


def test_on_gpu_leaves_functions_alone_without_spaces(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError

    def decode():
        return 1
    assert common.on_gpu(60)(decode) is decode


def test_on_gpu_wraps_with_spaces_gpu_when_importable(monkeypatch):
    calls = []

    def gpu(duration):
        calls.append(duration)
        return lambda fn: ("on a GPU", fn)
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))

    def decode():
        return 1
    assert common.on_gpu(120)(decode) == ("on a GPU", decode) and calls == [120]
