"""The app builds, and its decode callback turns bad input into gr.Error."""
import gradio as gr
import pytest

import app
from cllm.ui import decode_tab


def test_app_builds():
    assert isinstance(app.build_app(), gr.Blocks)


def test_decode_callback(tiny_model_dir):
    text, grid = decode_tab.decode_text(str(tiny_model_dir), "def f(x):", 4, 8)
    assert "equals greedy AR: yes" in grid and isinstance(text, str)


@pytest.mark.parametrize("prompt, n, message", [("", 4, "prompt is empty"), ("x", 0, "block size")])
def test_decode_callback_errors(tiny_model_dir, prompt, n, message):
    with pytest.raises(gr.Error, match=message):
        decode_tab.decode_text(str(tiny_model_dir), prompt, n, 8)
