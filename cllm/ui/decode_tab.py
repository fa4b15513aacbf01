"""A minimal decode tab: prompt in, trajectory summary out (the full explorer replaces it)."""
from __future__ import annotations

import gradio as gr

from cllm.decode import check_prompt, decode_prompt
from cllm.jacobi import JacobiConfig
from cllm.models import DEFAULT_CLLM, ModelLoadError, cached_model
from cllm.render import terminal_lines


def decode_text(model: str, prompt: str, n: float, max_new_tokens: float) -> tuple[str, str]:
    """Returns (generated text, plain-text trajectory); any bad input becomes a gr.Error."""
    try:
        check_prompt(prompt)
        config = JacobiConfig(n=int(n), max_new_tokens=int(max_new_tokens))
        traj = decode_prompt(cached_model(model.strip()), prompt, config, check_ar=True)
    except (ValueError, ModelLoadError) as e:
        raise gr.Error(str(e)) from None
    return traj.text_of(traj.tokens), "\n".join(terminal_lines(traj, color=False))


def build() -> None:
    with gr.Row():
        model = gr.Textbox(DEFAULT_CLLM, label="Model (registry name, folder or hub id)")
        n = gr.Number(16, label="Block size n", precision=0, minimum=1, maximum=64)
        max_new = gr.Number(64, label="Max new tokens", precision=0, minimum=1, maximum=512)
    prompt = gr.Textbox(label="Prompt", lines=3)
    run = gr.Button("Decode", variant="primary")
    text = gr.Textbox(label="Generated text", lines=4)
    grid = gr.Textbox(label="Trajectory ([bracketed] = not yet at the fixed point)", lines=12)
    run.click(decode_text, [model, prompt, n, max_new], [text, grid], api_name="decode")
