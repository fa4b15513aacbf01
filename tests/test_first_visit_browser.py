"""A first visit in a real browser (headless Chromium): the page lands on a race in motion, both grids fit
at 1400 and 900 px (no horizontal overflow, all 16 columns on screen; stacked when narrow), the tooltip
works, the mini-map jumps, and the training slot comes back to its browser after a reload."""
from __future__ import annotations

import time

import pytest

from test_browser import ARGS, CHROMIUM, _missing, fill
from test_train_browser import PROMPTS

pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]

# Every element inside a grid panel that sticks out of its panel or scrolls sideways, as "tag.class (px)".
OVERFLOW = """root => {
  const out = [];
  root.querySelectorAll('.cr-panel').forEach(panel => {
    const right = panel.getBoundingClientRect().right + 0.5;
    panel.querySelectorAll('*').forEach(e => {
      const r = e.getBoundingClientRect();
      if (r.width && r.right > right) out.push(`${e.tagName}.${e.className} (${Math.round(r.right - right)} px)`);
      if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible' && e.tagName !== 'TD')
        out.push(`${e.tagName}.${e.className} scrolls`);
    });
  });
  return out;
}"""


@pytest.fixture(scope="module")
def browser(app_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url, width):
    """A page in a context of its own: its own cookies, as another visitor's browser."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="load")
    return page


def test_the_page_lands_on_a_race_in_motion(browser, app_server):
    page = open_page(browser, app_server[0], 1400)
    loaded = time.monotonic()
    player = page.locator("#explore-player")
    page.wait_for_function("() => Number(document.querySelector('#explore-player .cr')?.dataset.t) >= 2",
                           timeout=3000)  # moving within 3 s of load, with no click
    assert time.monotonic() - loaded < 3
    assert page.locator("#prompt textarea").input_value().strip()  # the race's prompt: Run works at once
    assert "Now playing" in page.locator("#explore-status").inner_text() and "Learn" in page.locator(
        "#explore-status").inner_text()
    assert player.locator(".cr-prompt pre").is_visible()  # the prompt is shown, not folded away
    counters = player.locator(".cr-counters").first  # the race's moving counters, above the fold
    assert counters.evaluate("e => e.getBoundingClientRect().bottom") < 1000
    page.close()


@pytest.mark.parametrize("width", [1400, 900])
def test_grids_fit_their_panels(browser, app_server, width):
    page = open_page(browser, app_server[0], width)
    player = page.locator("#explore-player")
    player.locator(".cr-panel").nth(1).wait_for()
    ticks = int(player.locator(".cr").get_attribute("data-ticks"))
    player.locator(".cr-scrub").evaluate(f"e => {{ e.value = {ticks}; e.dispatchEvent(new Event('input', {{bubbles: true}})); }}")
    assert player.evaluate(OVERFLOW) == []
    boxes = [player.locator(".cr-panel").nth(i).bounding_box() for i in range(2)]
    side_by_side = abs(boxes[0]["y"] - boxes[1]["y"]) < 1
    assert side_by_side is (width == 1400)  # stacked when narrow
    for i in range(2):  # all 16 position columns of the shown block are inside the panel
        heads = player.locator(".cr-panel").nth(i).locator("table.cr-grid:not(.cr-off) thead th")
        assert heads.count() == 17
        last = heads.nth(16).bounding_box()
        assert last["width"] > 0 and last["x"] + last["width"] <= boxes[i]["x"] + boxes[i]["width"]
    page.close()


def test_tooltip_and_mini_map(browser, app_server):
    page = open_page(browser, app_server[0], 1400)
    player = page.locator("#explore-player")
    player.locator(".cr-map button").nth(1).wait_for()
    player.locator('[data-role="cllm"] .cr-map button').nth(1).click()  # jump to block 2 of the CLLM, paused
    assert "block 2 of" in player.locator('[data-role="cllm"] .cr-where').inner_text()
    cell = player.locator('[data-role="cllm"] table.cr-grid:not(.cr-off) tbody tr:not(.cr-off) td').first
    cell.hover()
    tip = page.locator(".cr-tip")
    tip.wait_for(state="visible")
    assert "id " in tip.inner_text() and "position 0" in tip.inner_text()
    assert tip.locator("code").inner_text() == cell.inner_text()  # the whole token, as in the cell
    page.close()

    touch = browser.new_page(viewport={"width": 900, "height": 1000}, has_touch=True)
    touch.goto(app_server[0], wait_until="load")
    touch.locator("#explore-player .cr-play", has_text="Pause").tap()  # hold the grid still
    touch.locator("#explore-player table.cr-grid:not(.cr-off) tbody tr:not(.cr-off) td").first.tap()  # no hover: a tap
    touch.locator(".cr-tip").wait_for(state="visible")
    assert "position 0" in touch.locator(".cr-tip").inner_text()
    touch.close()


def test_the_training_slot_comes_back_after_a_reload(browser, app_server, train_slot, tiny_pair, tmp_path):
    prompts = tmp_path / "prompts.txt"  # short prompts: the tiny model's context is 128 tokens
    prompts.write_text("\n".join(PROMPTS) + "\n")
    page = open_page(browser, app_server[0], 1400)
    page.get_by_role("tab", name="Train").click()
    page.get_by_text("The training slot is free").wait_for()
    fill(page, "train-base", tiny_pair[0])
    page.locator("#train-source").get_by_text("uploaded file").click()
    page.locator("#train-upload input[type=file]").set_input_files(str(prompts))
    for elem_id, value in (("train-prompts", "2"), ("train-n", "4"), ("train-tokens", "8")):
        fill(page, elem_id, value)
    page.click("#train-collect")
    page.get_by_text("Now press Train").wait_for()
    page.reload(wait_until="load")  # a new Gradio session, the same browser
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-slot").get_by_text("The training slot is yours, in this browser (collected)").wait_for()
    page.locator("#train-collected").get_by_text("Now press Train").wait_for()  # its collection line is back

    bob = open_page(browser, app_server[0], 1400)  # another visitor
    bob.get_by_role("tab", name="Train").click()
    slot_line = bob.locator("#train-slot")
    slot_line.get_by_text("Busy: a visitor is holding collected data").wait_for()
    assert "1st in line" in slot_line.inner_text()
    count = slot_line.locator(".tr-count")
    first = count.inner_text()
    bob.wait_for_function(f"() => document.querySelector('#train-slot .tr-count').textContent !== '{first}'",
                          timeout=3000)  # the countdown ticks

    page.click("#train-discard")
    page.locator("#train-slot").get_by_text("The training slot is free").wait_for()
    page.close()
    bob.close()


def test_an_example_click_plays_its_race(browser, app_server):
    """A chip fills the prompt and runs it: no Run click (it only filled the box, while the page said the
    examples play)."""
    page = open_page(browser, app_server[0], 1400)
    page.locator("#explore-player .cr").wait_for()
    chip = page.locator("button.gallery-item").first
    chip.click()
    player = page.locator('#explore-player .cr:not([data-run^="landing-"])')
    player.locator(".cr-verdict.cr-ok").nth(1).wait_for()  # both sides decoded and checked against greedy
    prompt = page.locator("#prompt textarea").input_value()
    assert prompt.strip() and prompt.strip() in player.locator(".cr-prompt pre").first.inner_text()
    page.close()
