"""Serve the app, run one prompt in a real browser, time the first animated frame, save a screenshot.

    python tests/screenshot.py --base tiny-python --cllm tiny-python-cllm --out assets/screenshot-explore.png

Not a test (pytest does not collect it): a tool to regenerate the README screenshot and to measure
"click Run -> first frame". Needs /usr/bin/chromium and the playwright package, like tests/test_browser.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from test_browser import ARGS, CHROMIUM, fill, open_settings  # noqa: E402

import app  # noqa: E402
from cllm.prompts import HELDOUT_PROMPTS, read_prompts  # noqa: E402


def run_once(page, args) -> float:
    """Click Run; seconds until the player shows a new race (its first frame)."""
    player = page.locator("#explore-player")
    before = player.locator(".cr").get_attribute("data-run") if player.locator(".cr").count() else None
    t0 = time.perf_counter()
    page.click("#run")
    new_race = "([el, old]) => { const r = el.querySelector('.cr[data-t]'); return r && r.dataset.run !== old; }"
    page.wait_for_function(new_race, arg=[player.element_handle(), before], timeout=600_000)
    first = time.perf_counter() - t0
    player.locator(".cr-verdict:not(.cr-pending)").nth(1).wait_for(timeout=600_000)
    print(json.dumps({"first_frame_s": round(first, 3), "with_ar_check_s": round(time.perf_counter() - t0, 3)}))
    return first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--cllm", required=True)
    p.add_argument("--prompt", default=None, help="default: the first held-out prompt")
    p.add_argument("--n", default="16")
    p.add_argument("--max-new-tokens", default="64")
    p.add_argument("--chat", action="store_true", help="tick 'chat': the prompt goes in as a user turn")
    p.add_argument("--runs", type=int, default=3, help="timed runs (the first one loads the models)")
    p.add_argument("--at", type=float, default=0.6, help="show this fraction of the CLLM's passes")
    p.add_argument("--out", default="assets/screenshot-explore.png")
    args = p.parse_args()
    prompt = args.prompt or read_prompts(HELDOUT_PROMPTS, 1)[0]

    from playwright.sync_api import sync_playwright

    demo = app.serve(warm_up=False, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(demo.local_url, wait_until="load")
            page.wait_for_selector("#run")
            for elem_id, value in (("prompt", prompt), ("base-model", args.base), ("cllm-model", args.cllm)):
                fill(page, elem_id, value)
            open_settings(page)
            fill(page, "block-size", args.n)
            fill(page, "max-new", args.max_new_tokens)
            page.locator("#chat input[type=checkbox]").set_checked(args.chat)  # the landing race may be chat
            for _ in range(args.runs):
                run_once(page, args)
            show_pass(page, args.at)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"saved {args.out} ({os.path.getsize(args.out) // 1024} KiB)")


def show_pass(page, fraction: float) -> None:
    """Pause and scrub to a pass where the CLLM is partway through (the most telling frame)."""
    player = page.locator("#explore-player")
    if "Pause" in player.locator(".cr-play").inner_text():
        player.locator(".cr-play").click()
    scrub(player, int(player.locator(".cr").get_attribute("data-ticks")))
    passes = int(player.locator('[data-role="cllm"] [data-k="it"]').inner_text())
    scrub(player, max(1, round(fraction * passes)))


def scrub(player, t: int) -> None:
    move = f"e => {{ e.value = {t}; e.dispatchEvent(new Event('input', {{bubbles: true}})); }}"
    player.locator(".cr-scrub").evaluate(move)


if __name__ == "__main__":
    main()
