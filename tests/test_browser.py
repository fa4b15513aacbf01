"""A real browser (headless Chromium) drives the app: run a prompt, watch both grids, step, scrub, and
replay a saved race in the Gallery. Needs /usr/bin/chromium and the playwright package (no browser
download: playwright drives the system Chromium)."""
import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
SHIPPED = Path(__file__).parent.parent / "saved_trajectories"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BLUE, RED = "rgb(0, 114, 178)", "rgb(253, 227, 211)"  # committed fill, not-yet fill (assets/player.css)


# Every table on screen that scrolls sideways (its last columns out of sight), as [label, content px, shown px].
OVERFLOWING_TABLES = """() => [...document.querySelectorAll('.gradio-container .table-wrap')].filter(t => t.offsetParent)
  .map(w => [w.closest('.block')?.innerText.slice(0, 40), w.querySelector('.virtual-table-viewport') || w])
  .map(([label, v]) => [label, v.scrollWidth, v.clientWidth]).filter(([, wide, shown]) => wide > shown + 1)"""


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


@pytest.fixture(scope="module")
def page(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app_server[0], wait_until="load")
        page.wait_for_selector("#run")
        yield page
        browser.close()


def fill(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(value)


def open_settings(page) -> None:
    """Opens Explore's settings (block size, seed, race, decoders): closed at first, so the race shows on arrival."""
    if not page.locator("#block-size").is_visible():
        page.locator("#settings .label-wrap").click()
    page.locator("#block-size").wait_for()


def clock(player) -> int:
    return int(player.locator(".cr").get_attribute("data-t"))


def visible_rows(panel) -> int:
    return panel.locator("table.cr-grid:not(.cr-off) tbody tr:not(.cr-off)").count()


def test_run_step_scrub_and_gallery(page, tiny_pair, app_server):
    fill(page, "prompt", "def add(a, b):")
    fill(page, "base-model", tiny_pair[0])
    fill(page, "cllm-model", tiny_pair[1])
    page.click("#run")
    player = page.locator("#explore-player")
    player.locator('.cr:not([data-run^="landing-"]) .cr-verdict.cr-ok').nth(1).wait_for()  # both runs checked against greedy decoding
    panels = player.locator(".cr-panel")
    assert panels.count() == 2
    for i in range(2):  # blue and red cells in both grids, drawn in those colours
        cells = panels.nth(i).locator("td")
        assert cells.locator("xpath=self::*[contains(@class,'s-w')]").count() > 0
        assert panels.nth(i).locator("td.s-c, td.s-f").count() > 0
    assert player.locator("td.s-w").first.evaluate("e => getComputedStyle(e).backgroundColor") == RED
    assert player.locator("td.s-c").first.evaluate("e => getComputedStyle(e).backgroundColor") == BLUE
    title = player.locator("td").first.get_attribute("data-tip")  # the tooltip text (player.js draws it)
    assert re.search(r"id \d+ · position \d+ · (guess|pass \d+) · ", title)

    # pause wherever playback is, then scrub to the start: only each first block's guess row shows
    if "Pause" in player.locator(".cr-play").inner_text():
        player.locator(".cr-play").click()
    scrub = player.locator(".cr-scrub")
    scrub.evaluate("e => { e.value = 0; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert clock(player) == 0 and [visible_rows(panels.nth(i)) for i in range(2)] == [1, 1]
    player.locator('[data-act="fwd"]').click()
    player.locator('[data-act="fwd"]').click()
    assert clock(player) == 2 and visible_rows(panels.nth(0)) in (2, 3)  # 3 rows, or a new block's 2
    player.locator('[data-act="back"]').click()
    assert clock(player) == 1 and "passes 1" in panels.nth(0).locator(".cr-counters").inner_text()
    ticks = int(player.locator(".cr").get_attribute("data-ticks"))
    scrub.evaluate(f"e => {{ e.value = {ticks}; e.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
    assert all("done in" in panels.nth(i).locator(".cr-where").inner_text() for i in range(2))

    fill(page, "save-name", "browser-run")
    page.click("#save")
    page.get_by_text("Saved as browser-run").wait_for()

    for name in ("heldout-02", "recycle-02"):  # the longest shipped title, and a decoder named beside each model
        shutil.copy(SHIPPED / f"{name}.json", app_server[1] / f"{name}.json")
    page.get_by_role("tab", name="Gallery").click()
    page.locator("#gallery-table [role=gridcell]", has_text="recycle-02").first.wait_for()
    row = page.locator("#gallery-table [role=gridcell]", has_text="browser-run").first
    assert page.evaluate(OVERFLOWING_TABLES) == []  # every column in sight (tokens per pass was cut off)
    row.click()  # a click on the table row loads it
    gallery = page.locator("#gallery-player")
    gallery.locator(".cr-panel").nth(1).wait_for()
    assert gallery.locator("td.s-w").count() > 0 and gallery.locator(".cr").get_attribute("data-t") is not None
