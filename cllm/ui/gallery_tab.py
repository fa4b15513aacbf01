"""Gallery: saved races (saved_trajectories/*.json) and uploaded race files, replayed with no model loaded."""
from __future__ import annotations

import uuid

import gradio as gr

from cllm.models import app_pair
from cllm.race import GalleryEntry, Race, gallery_dir, list_gallery, load_from_gallery, load_race
from cllm.ui.common import race_summary, save_run, user_errors
from cllm.ui.grid import race_html
from cllm.ui.player import make_player

COLUMNS = ["name", "title", "base model", "CLLM", "n", "tokens (base / CLLM)", "tokens per pass (base / CLLM)"]
COLUMN_WIDTHS = ["11%", "31%", "15%", "16%", "5%", "10%", "12%"]  # titles wrap, so every column fits at 1400 px
EMPTY = '<div class="cr-empty">Pick a saved race above, or upload a race file, to replay it here.</div>'
HELP = ("Recorded races replay here in the same player, with no model loaded. Pick one from the list "
        "(or click a row), or upload a race file saved from the Explore tab.")


def gallery_listing() -> tuple[list[tuple[str, str]], list[list]]:
    """Dropdown choices (label, name) and table rows; an unreadable file is listed with its error."""
    choices, rows = [], []
    for e in app_pair_first(list_gallery(gallery_dir())):
        if e.error:
            rows.append([e.name, f"unreadable: {e.error}", "", "", None, "", ""])
            continue
        choices.append((f"{e.name}: {e.title}", e.name))
        base, cllm = (model if decoder == "jacobi" else f"{model} · {decoder}"  # the decoder, when not plain Jacobi
                      for model, decoder in zip((e.base_model, e.cllm_model), e.decoders))
        tokens, tpf = "{} / {}".format(*e.tokens), f"{e.base_tpf:.2f} / {e.cllm_tpf:.2f}"
        rows.append([e.name, e.title, base, cllm, e.n, tokens, tpf])
    return choices, rows


def app_pair_first(entries: list[GalleryEntry]) -> list[GalleryEntry]:
    """The races of the pair the app opens on lead (the real pair's, once its base is here: the tiny pair's
    used to come first by name), then the others; by name within each."""
    pair = app_pair()
    return sorted(entries, key=lambda e: (e.base_model, e.cllm_model) != pair)


def refresh():
    choices, rows = gallery_listing()
    return gr.Dropdown(choices=choices, value=None), rows


def show(race: Race):
    return race_html(race, uuid.uuid4().hex[:12]), race_summary(race), race


def load_saved(name: str):
    with user_errors():
        race = load_from_gallery(gallery_dir(), name or "")
    return show(race)


def load_row(evt: gr.SelectData):
    """A click on a table row loads that row's race (the name is the first column)."""
    name = (evt.row_value or [""])[0]
    return (name, *load_saved(name))


def load_upload(path: str | None):
    with user_errors():
        if not path:
            raise ValueError("no file received: choose a race .json file")
        race = load_race(path)
    return show(race)


def build() -> None:
    with gr.Tab("Gallery", id="gallery") as tab:
        gr.Markdown(HELP)
        choices, rows = gallery_listing()
        with gr.Row():
            choice = gr.Dropdown(choices, value=None, label="Saved race", scale=3, elem_id="gallery-choice",
                                 allow_custom_value=True)  # names are checked by load_from_gallery
            upload = gr.File(label="…or replay a race file", file_types=[".json"], scale=2, height=110,
                             elem_id="gallery-upload")
        table = gr.Dataframe(rows, headers=COLUMNS, interactive=False, max_height=260, elem_id="gallery-table",
                             wrap=True, column_widths=COLUMN_WIDTHS)
        status = gr.Markdown(label="summary")
        player = make_player("gallery-player", EMPTY)
        with gr.Row():
            name = gr.Textbox(label="Add the uploaded race to the gallery as", scale=3)
            save = gr.Button("Save to gallery", scale=1, size="md")
        saved = gr.Markdown(label="saved")
        race = gr.State(None)
        outputs = [player, status, race]
        tab.select(refresh, None, [choice, table], api_visibility="private")
        choice.input(load_saved, choice, outputs, api_name="load")
        table.select(load_row, None, [choice, *outputs], api_visibility="private")
        upload.upload(load_upload, upload, outputs, api_name="upload")
        saved_event = save.click(save_run, [race, name], saved, api_name="save_upload")
        saved_event.then(refresh, None, [choice, table], api_visibility="private")
