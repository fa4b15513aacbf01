"""A real browser (headless Chromium) trains a CLLM end to end on the tiny model: collect with a progress
bar, train while the charts and the live grid update, stop, save, then race the saved model in Explore."""
from __future__ import annotations

import re

import pytest

from test_browser import ARGS, CHROMIUM, _missing, fill, open_settings

pytestmark = [pytest.mark.browser, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]
PROMPTS = ["def add(a, b):", "for i in range(", "class Point:", "def f(x):", "print(", "import os", "while True:",
           "if x > 0:", "def sub(a, b):", "for j in range("]


def plotted_points(page, elem_id: str) -> int:
    """Points drawn by plotly in a gr.Plot (markers and line vertices of its first trace)."""
    return page.locator(f"#{elem_id} .js-plotly-plot").evaluate("e => (e.data && e.data[0] ? e.data[0].x.length : 0)")


def test_collect_train_stop_save_and_race(app_server, train_slot, tiny_pair, tmp_path):
    from playwright.sync_api import sync_playwright

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(app_server[0], wait_until="load")
        page.get_by_role("tab", name="Train").click()
        page.get_by_text("The training slot is free").wait_for()

        fill(page, "train-base", tiny_pair[0])
        page.locator("#train-source").get_by_text("uploaded file").click()
        page.locator("#train-upload input[type=file]").set_input_files(str(prompts))
        for elem_id, value in (("train-prompts", "8"), ("train-n", "4"), ("train-tokens", "8"), ("train-every", "1")):
            fill(page, elem_id, value)
        page.click("#train-collect")
        page.get_by_text("Now press Train").wait_for()
        bar = page.locator("#train-collected progress")
        assert bar.get_attribute("value") == bar.get_attribute("max") == "8"
        assert int(page.locator('#train-collected [data-k="states"]').inner_text().replace(",", "")) > 8

        page.click("#train-train")  # 3 minutes by default: it runs until Stop
        status = page.locator("#train-status")
        status.locator('[data-k="step"]').wait_for()
        status.get_by_text(re.compile(r"round \d of 3")).wait_for()  # three rounds by default
        first = plotted_points(page, "train-loss")
        page.wait_for_function(  # the charts keep updating while it trains
            f"() => document.querySelector('#train-loss .js-plotly-plot').data[0].x.length > {first + 2}")
        page.wait_for_function("() => document.querySelector('#train-tpf .js-plotly-plot').data[0].x.length >= 3")
        grid = page.locator("#train-player")
        grid.get_by_text(re.compile(r"After step \d+")).wait_for()
        assert grid.locator(".cr-panel").count() == 2 and grid.locator("td.s-w").count() > 0

        page.click("#train-stop")
        status.get_by_text("stopped by stop request").wait_for()
        assert "Trained" in status.inner_text() and "100%" in status.inner_text()

        fill(page, "train-name", "browser-cllm")
        page.click("#train-save")
        page.get_by_text("Saved browser-cllm").wait_for()

        page.get_by_role("tab", name="Explore").click()
        page.locator("#pair input").click()
        page.get_by_role("option", name=re.compile("vs browser-cllm")).click()
        page.wait_for_function("() => document.querySelector('#cllm-model textarea, #cllm-model input')"
                               ".value.endsWith('browser-cllm')")
        fill(page, "prompt", "def add(a, b):")
        open_settings(page)
        fill(page, "max-new", "16")
        page.click("#run")
        player = page.locator("#explore-player")
        player.locator('.cr:not([data-run^="landing-"]) .cr-verdict.cr-ok').nth(1).wait_for()  # both models, each equal to its greedy output
        assert "browser-cllm" in player.locator(".cr-panel").nth(1).locator("code").get_attribute("data-tip")
        browser.close()
