"""Serve the app and screenshot the decoders' views: Explore racing the CLLM with Jacobi vs recycle (strip
and the "right token, wrong position" layer on) and the Learn tab's recycling step.

    python tests/screenshot_decoders.py --out /tmp/shots

Not a test (pytest does not collect it). Needs /usr/bin/chromium and the playwright package, like
tests/test_browser.py, and the bundled pair.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_browser import ARGS, CHROMIUM, open_settings  # noqa: E402

import app  # noqa: E402


def pick(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator("ul[role=listbox] li", has_text=value).first.click()


def explore(page, out: Path, at: int) -> None:
    open_settings(page)
    page.locator("#race-mode").get_by_text("two decoders on the CLLM").click()
    pick(page, "decoder-b", "recycle")
    page.click("#run")
    player = page.locator("#explore-player")
    player.locator('.cr:not([data-run^="landing-"]) .cr-verdict.cr-ok').nth(1).wait_for()
    if "Pause" in player.locator(".cr-play").inner_text():
        player.locator(".cr-play").click()
    player.locator(".cr-scrub").evaluate(f"e => {{ e.value = {at}; e.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
    player.locator("[data-act=shift]").check()
    player.screenshot(path=str(out / "explore-two-decoders.png"))


def learn(page, out: Path) -> None:
    page.get_by_role("tab", name="Learn").click()
    page.locator("#learn-step").get_by_text("9. Recycling").click()
    page.locator("#learn-text h3", has_text="9. Recycling").wait_for()
    player = page.locator("#learn-player")
    player.locator(".cr-focus").first.wait_for()
    player.locator("[data-act=shift]").check()
    player.screenshot(path=str(out / "learn-recycling.png"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/cllm-shots")
    p.add_argument("--at", type=int, default=8, help="pass at which the Explore race is paused")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    demo = app.serve(warm_up=False, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            page.goto(demo.local_url, wait_until="load")
            page.wait_for_selector("#run")
            explore(page, out, args.at)
            learn(page, out)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {out / 'explore-two-decoders.png'} and {out / 'learn-recycling.png'}")


if __name__ == "__main__":
    main()
