"""A real browser (headless Chromium) races one model with two decoders in Explore: the recycle panel has its
per-pass strip, the "right token, wrong position" toggle switches its layer on and survives the AR check's
update, and the replay steps through both decoders' passes."""
from __future__ import annotations

import pytest

from test_browser import _missing, clock, fill, open_settings, page  # noqa: F401 (page: the browser fixture, one per module)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


def pick(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator("ul[role=listbox] li", has_text=value).first.click()


def test_one_model_two_decoders_strip_and_layer(page, tiny_pair):
    fill(page, "prompt", "def add(a, b):\n    return a + b\n\n\ndef add(a, b):")
    fill(page, "base-model", tiny_pair[0])
    fill(page, "cllm-model", tiny_pair[1])
    open_settings(page)
    page.locator("#race-mode").get_by_text("two decoders on the CLLM").click()
    pick(page, "decoder-b", "recycle")
    page.click("#run")
    player = page.locator("#explore-player")
    player.locator('.cr:not([data-run^="landing-"]) .cr-verdict.cr-ok').nth(1).wait_for()
    panels = player.locator(".cr-panel")
    assert "Decoder jacobi" in panels.nth(0).inner_text() and "Decoder recycle" in panels.nth(1).inner_text()
    assert panels.nth(0).locator("td.cr-pass").count() == 0 and panels.nth(1).locator("td.cr-pass").count() > 0
    if "Pause" in player.locator(".cr-play").inner_text():
        player.locator(".cr-play").click()
    player.locator(".cr-scrub").evaluate("e => { e.value = 1; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert clock(player) == 1
    strip = panels.nth(1).locator("td.cr-pass:visible")
    assert strip.count() == 2 and strip.nth(1).inner_text().startswith("+")  # guess row + pass 1
    box = player.locator("[data-act=shift]")
    assert not box.is_checked() and "cr-show-shift" not in player.locator(".cr").get_attribute("class")
    box.check()
    assert "cr-show-shift" in player.locator(".cr").get_attribute("class")
    player.locator('[data-act="fwd"]').click()
    assert clock(player) == 2 and player.locator("[data-act=shift]").is_checked()
