"""CLLM Explorer: `python app.py` serves the Gradio app (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)."""
import gradio as gr

from cllm.ui import decode_tab


def build_app() -> gr.Blocks:
    with gr.Blocks(title="CLLM Explorer") as demo:
        gr.Markdown("# CLLM Explorer\nJacobi decoding guesses a block of tokens and refines all of them in "
                    "parallel until they stop changing; the result equals greedy decoding.")
        decode_tab.build()
    return demo


if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=2).launch()
