"""The Stats tab's prompt sets: the shipped held-out sets (never training data) or a visitor's uploaded file; and
the prompt-file upload box that Stats and Train share."""
from __future__ import annotations

import gradio as gr

from cllm.dataset_run import MAX_RUNS
from cllm.prompts import CODE_HELDOUT_PROMPTS, HELDOUT_PROMPTS, read_prompt_file, read_prompts
from cllm.ui.common import whole_number

HELDOUT, CODE = "held-out Python prompts (the tiny pair's)", "held-out code prompts (the real pair's)"
UPLOAD = "uploaded file"
PROMPT_SETS = {HELDOUT: HELDOUT_PROMPTS, CODE: CODE_HELDOUT_PROMPTS}  # the choice label -> the shipped file


def prompt_file_box(elem_id: str, **layout) -> gr.File:
    """The upload box for a prompt file (Stats and Train). Its label stays short: Gradio draws the label over
    the drop zone, and a longer one ran under the upload icon in Train's narrow column."""
    return gr.File(label="Prompt file", file_types=[".jsonl", ".json", ".txt"], type="filepath", elem_id=elem_id,
                   **layout)


def load_prompts(source: str, upload, limit) -> list[str]:
    """The first `limit` prompts of a shipped set (by its label) or of the uploaded file."""
    limit = whole_number(limit, "number of prompts", 1, MAX_RUNS)
    if source == UPLOAD:
        if not upload:
            raise ValueError("choose a prompt file to upload (JSONL with a \"prompt\" field, or text, one per line)")
        return read_prompt_file(upload, limit)
    if source not in PROMPT_SETS:
        raise ValueError(f"prompts must be one of: {', '.join([*PROMPT_SETS, UPLOAD])}")
    return read_prompts(PROMPT_SETS[source], limit)
