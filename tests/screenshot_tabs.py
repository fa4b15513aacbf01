"""Serve the app and save a screenshot of each tab as a first visitor sees it (the README's pictures).

    python tests/screenshot_tabs.py --out assets            # assets/screenshot-<tab>.png, 1400 px wide
    python tests/screenshot_tabs.py --out /tmp/s --width 900

Not a test (pytest does not collect it). Explore: the landing race, paused partway; Learn: its third step;
Gallery: a shipped race; Stats: the landing prompt run and charted, and the pair's recorded dataset run as a first
visitor sees it (or, where none ships, a live one over a few held-out prompts; collocation tables); Train: a short collection, the slot this browser's. Needs /usr/bin/chromium, the
playwright package and the bundled pair (the Stats dataset run decodes with it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from screenshot import scrub  # noqa: E402
from test_browser import ARGS, CHROMIUM  # noqa: E402

import app  # noqa: E402


def explore(page) -> None:
    player = page.locator("#explore-player")
    page.wait_for_function("() => Number(document.querySelector('#explore-player .cr')?.dataset.t) >= 1")
    if "Pause" in player.locator(".cr-play").inner_text():
        player.locator(".cr-play").click()
    scrub(player, 14)  # the CLLM in its fourth block, the base still in its first: the race mid-way


def learn(page) -> None:
    page.get_by_role("tab", name="Learn").click()
    page.locator("#learn-player .cr-focus").first.wait_for()
    for _ in range(2):
        page.click("#learn-next")
    page.locator("#learn-text h3", has_text="3.").wait_for()
    page.locator("#learn-player .cr-focus").first.wait_for()


def gallery(page) -> None:
    page.get_by_role("tab", name="Gallery").click()
    page.locator("#gallery-table [role=gridcell]", has_text="heldout-01").first.click()
    player = page.locator("#gallery-player")
    player.locator(".cr-panel").nth(1).wait_for()
    player.locator(".cr-play").click()  # pause where it is
    scrub(player, 30)


def stats(page, prompts: int) -> None:
    page.click("#run")  # the landing prompt, decoded live: the visitor's own run, which Stats charts
    page.locator('#explore-player .cr:not([data-run^="landing-"]) .cr-verdict.cr-ok').nth(1).wait_for(timeout=600_000)
    page.get_by_role("tab", name="Stats").click()
    page.click("#stats-chart")
    if not page.locator("#stats-dataset-note", has_text="Recorded run").count():  # no recorded run of this pair
        page.locator("#stats-limit input").fill(str(prompts))
        page.click("#stats-dataset")
    page.locator("#stats-ff [role=gridcell]").first.wait_for(timeout=600_000)
    page.wait_for_timeout(1000)


def train(page) -> None:
    """A short collection with the bundled base (8 prompts, 32 tokens each): the slot is this browser's."""
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-slot").get_by_text("training slot").wait_for()
    for elem_id, value in (("train-prompts", "8"), ("train-tokens", "32")):
        page.locator(f"#{elem_id} input").fill(value)
    page.click("#train-collect")
    page.get_by_text("Now press Train").wait_for(timeout=600_000)
    page.locator("#train-slot").get_by_text("yours, in this browser").wait_for()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="assets")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--prompts", type=int, default=8, help="held-out prompts of the Stats dataset run")
    p.add_argument("--tabs", default="explore,learn,gallery,stats,train")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = {"explore": explore, "learn": learn, "gallery": gallery, "stats": lambda pg: stats(pg, args.prompts),
             "train": train}

    from playwright.sync_api import sync_playwright

    demo = app.serve(warm_up=False, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for tab in args.tabs.split(","):
                page = browser.new_page(viewport={"width": args.width, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(demo.local_url, wait_until="load")
                page.wait_for_selector("#run")
                steps[tab](page)
                path = out / f"screenshot-{tab}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"saved {path} ({path.stat().st_size // 1024} KiB)")
                page.close()
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
