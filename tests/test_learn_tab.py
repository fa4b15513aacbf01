"""Learn tab: every step opens a shipped race at its moment, with its figures filled in; the endpoint too."""
import re

import gradio as gr
import pytest
from gradio_client import Client

from cllm import moments
from cllm.race import GALLERY_DIR, load_from_gallery
from cllm.ui import learn_tab


@pytest.mark.parametrize("title", learn_tab.TITLES)
def test_each_step_opens_its_race_at_a_ringed_moment(title):
    text, html, table = learn_tab.open_step(title)
    assert text.startswith(f"### {title}") and not re.search(r"\{\w+", text)  # every figure filled in
    opened, ticks = (int(re.search(rf'data-{k}="(\d+)"', html).group(1)) for k in ("open", "ticks"))
    assert 0 <= opened <= ticks and html.count("cr-focus") >= 1
    assert table["visible"] is (title == learn_tab.TITLES[7])  # the collocation table, its step only


def test_the_fast_forward_step_quotes_the_race_it_shows():
    text, html, _ = learn_tab.open_step(learn_tab.TITLES[5])
    name = re.search(r"\*Race: ([\w-]+)\*", text).group(1)
    race = load_from_gallery(GALLERY_DIR, name)
    moment = moments.biggest_fast_forward(race)
    assert f'data-open="{moments.clock(race, moment)}"' in html
    assert html.count("cr-focus") == moment.end - moment.start and f"({moment.end - moment.start} tokens)" in text
    assert f"fast-forwarded {moments.summary_numbers(race)['cllm_fast_forwarded']} tokens" in text


def test_the_recycling_step_rings_the_tokens_a_recycled_draft_gave():
    text, html, _ = learn_tab.open_step(learn_tab.TITLES[8])
    name = re.search(r"\*Race: ([\w-]+)\*", text).group(1)
    race = load_from_gallery(GALLERY_DIR, name)
    assert name in learn_tab.RECYCLE_RACES and race.base.meta.decoder == race.cllm.meta.decoder == "recycle"
    moment = moments.biggest_recycled_win(race)
    block = getattr(race, moment.role).blocks[moment.block]
    assert block.winners[moment.iteration - 1] >= 0 and block.gains[moment.iteration - 1] == moment.end - moment.start
    assert f'data-open="{moments.clock(race, moment)}"' in html and html.count("cr-focus") == moment.end - moment.start
    assert 'class="cr-pass' in html and 'data-act="shift"' in html  # the strip and the layer's toggle
    assert moments.biggest_recycled_win(load_from_gallery(GALLERY_DIR, "heldout-01")) is None  # Jacobi: no drafts


def test_step_navigation_and_unknown_steps():
    assert learn_tab.step_by(learn_tab.TITLES[0], -1) == learn_tab.TITLES[0]
    assert learn_tab.step_by(learn_tab.TITLES[0], +1) == learn_tab.TITLES[1]
    assert learn_tab.step_by(learn_tab.TITLES[-1], +1) == learn_tab.TITLES[-1]
    with pytest.raises(gr.Error, match="no such step"):
        learn_tab.open_step("9. bogus")


def test_missing_races_give_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(learn_tab, "GALLERY_DIR", tmp_path)
    with pytest.raises(gr.Error, match="none could be read"):
        learn_tab.open_step(learn_tab.TITLES[0])


def test_learn_step_endpoint(app_server):
    from gradio_client.exceptions import AppError

    client = Client(app_server[0], verbose=False)
    text, html, _ = client.predict(learn_tab.TITLES[6], api_name="/learn_step")
    assert "Stationary tokens" in text and "data-open=" in html and "cr-focus" in html
    for bogus in ("9. bogus", "", "../../etc/passwd"):
        with pytest.raises(AppError, match="not in the list of choices"):
            client.predict(bogus, api_name="/learn_step")


def test_the_collocation_step_sets_the_paper_rate_not_the_surplus_beside_table_3():
    from cllm import stats

    text, _, _ = learn_tab.open_step(learn_tab.TITLES[7])
    races = learn_tab.lesson_races()
    rates = {role: sum(stats.ff_rate(getattr(r, role)) for _, r in races) / len(races) for role in ("base", "cllm")}
    assert f"rate is {rates['cllm']:.2f} tokens per pass against the base model's {rates['base']:.2f}" in text
    assert f"({rates['cllm'] / rates['base']:.1f}x)" in text and "2.0-6.8x" in text
    assert "not the paper's" in text  # the surplus is named apart from Table 3


def test_the_collocation_step_lists_spans_outside_loops_as_the_stats_tab_names_them():
    _, _, table = learn_tab.open_step(learn_tab.TITLES[7])
    assert list(table["value"].columns) == ["CLLM count", "base count", "span", "tokens (pieces)"]
    frame, _, _ = learn_tab.top_collocations(learn_tab.lesson_races())
    assert len(frame) == 10 and (frame["in_loop"] == 0).all()  # a loop of ",,,," led the list before
