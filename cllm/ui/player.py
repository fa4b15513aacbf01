"""The race player component: a gr.HTML whose value is grid.race_html(...), animated by assets/player.js."""
from __future__ import annotations

from functools import lru_cache

import gradio as gr

from cllm.models import REPO_ROOT
from cllm.ui.grid import EMPTY_HTML

ASSETS = REPO_ROOT / "assets"


@lru_cache(maxsize=1)
def _head() -> str:
    """Script and style read once; gr.HTML injects an inline script into the page only once."""
    js = (ASSETS / "player.js").read_text(encoding="utf-8")
    css = (ASSETS / "player.css").read_text(encoding="utf-8")
    return f"<script>{js}</script><style>{css}</style>"


def make_player(elem_id: str, empty: str = EMPTY_HTML) -> gr.HTML:
    return gr.HTML(empty, label="race player", head=_head(), js_on_load="cllmPlayer.attach(element, props, watch);",
                   apply_default_css=False, elem_id=elem_id)
