"""Time the Train tab's default run through a running app's API: what clicking Collect, Train, Save does.

    python app.py &                                   # CLLM_TRAINED_DIR=... to keep the model elsewhere
    python tests/time_train_tab.py http://127.0.0.1:7860/ --name timed-cllm
    python -m cllm bench --cllm runs/trained/timed-cllm  # TPF on all 64 held-out prompts

Not a test (pytest does not collect it): the README's "In the app" figures come from it. It prints the
seconds of each phase and the tab's own status lines as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client  # noqa: E402

from cllm.ui.train_tab import COLLECT, TRAIN  # noqa: E402
from cllm.ui.train_tab import SHIPPED  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--name", default="timed-cllm", help="the saved model's name")
    args = parser.parse_args()
    client = Client(args.url, verbose=False)
    t0 = time.perf_counter()
    collected = client.predict("timer", "tiny-python", SHIPPED, None, COLLECT.limit, COLLECT.n, COLLECT.max_new_tokens,
                               api_name="/collect")
    t1 = time.perf_counter()
    status = client.predict(TRAIN.loss, TRAIN.ar_weight, TRAIN.lr, "minutes", TRAIN.max_minutes, TRAIN.eval_every,
                            COLLECT.max_new_tokens, TRAIN.rounds, api_name="/train")[0]
    t2 = time.perf_counter()
    saved = client.predict(args.name, api_name="/save_model")
    print(json.dumps({"collect_s": t1 - t0, "train_s": t2 - t1, "collect_to_trained_s": t2 - t0,
                      "collected": collected, "trained": status, "saved": saved}, indent=1))


if __name__ == "__main__":
    main()
