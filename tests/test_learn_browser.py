"""A real browser (headless Chromium) walks the Learn tab: each step opens a race paused at its moment with
the cells ringed; and a collocation row clicked in Stats opens its example in Explore."""
from __future__ import annotations

import pytest

from cllm.ui import learn_tab
from test_browser import OVERFLOWING_TABLES, _missing, clock, page  # noqa: F401 (page: the browser fixture, one per module)
from test_train_browser import PROMPTS

pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


def wait_for_step(page, title: str):
    page.locator("#learn-text h3", has_text=title).wait_for()
    player = page.locator("#learn-player")
    player.locator(".cr-focus").first.wait_for()
    return player


def test_walk_every_learn_step(page):
    page.get_by_role("tab", name="Learn").click()
    player = wait_for_step(page, learn_tab.TITLES[0])  # the tab opens on its first step
    for i, title in enumerate(learn_tab.TITLES):
        if i:
            page.click("#learn-next")
            player = wait_for_step(page, title)
        root = player.locator(".cr")
        opened = int(root.get_attribute("data-open"))
        assert clock(player) == opened  # paused at the moment, not playing from pass 0
        assert "Play" in player.locator(".cr-play").inner_text()
        focus = player.locator(".cr-focus")
        assert focus.first.is_visible() and focus.count() >= 1  # the ringed cells are on screen
        style = focus.first.evaluate("e => getComputedStyle(e).outlineStyle")
        assert style == "solid"
        if i == 7:
            assert page.locator("#learn-collocations").is_visible()  # the collocation step lists them
            page.locator("#learn-collocations [role=gridcell]").first.wait_for()
            assert page.evaluate(OVERFLOWING_TABLES) == []  # its counts were pushed out by long spans
    player.locator('[data-act="fwd"]').click()  # from the moment, the player steps on as usual
    assert clock(player) == min(opened + 1, int(root.get_attribute("data-ticks")))


def test_a_collocation_row_opens_in_explore(page, tiny_pair, tmp_path):
    prompts = tmp_path / "prompts.txt"  # short prompts: the tiny models' context is 128 tokens
    prompts.write_text("\n".join(PROMPTS) + "\n")
    page.get_by_role("tab", name="Stats").click()
    page.locator("#stats-source").get_by_text("uploaded file").click()
    page.locator("#stats-upload input[type=file]").set_input_files(str(prompts))
    for elem_id, value in (("stats-base", tiny_pair[0]), ("stats-cllm", tiny_pair[1]), ("stats-limit", "10"),
                           ("stats-n", "4"), ("stats-tokens", "16")):
        page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(value)
    page.click("#stats-dataset")
    table = page.locator("#stats-ff")
    table.locator("[role=gridcell]").first.wait_for()
    table.locator("[role=gridcell]").first.click()
    player = page.locator("#explore-player")
    player.locator(".cr-focus").first.wait_for()
    assert player.is_visible()  # the Explore tab is showing
    assert clock(player) == int(player.locator(".cr").get_attribute("data-open"))
    prompt = page.locator("#prompt textarea").input_value()
    assert prompt in PROMPTS  # the example's prompt is in the box: Run decodes it at once


def test_collocation_counts_are_on_screen(page):
    """Run after test_a_collocation_row_opens_in_explore (same page): the count columns are not scrolled away."""
    page.get_by_role("tab", name="Stats").click()
    table = page.locator("#stats-ff")
    header = table.get_by_role("columnheader", name="CLLM count").first
    header.wait_for()
    box, cell = table.bounding_box(), header.bounding_box()
    assert box["x"] <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"] + 1


def test_the_stats_tables_show_every_column(page):
    """Run after the dataset run above (its tables full): at 1400 px no table scrolls sideways (the collocation
    tables had six of their twelve columns out of sight)."""
    page.get_by_role("tab", name="Stats").click()
    page.locator("#stats-ff [role=gridcell]").first.wait_for()
    assert page.evaluate(OVERFLOWING_TABLES) == []
