"""The race grid's HTML on a hand-made trajectory: statuses, marks, tooltips, escaping, player data."""
import re

import pytest

from cllm.race import Race
from cllm.trajectory import Block, RunMeta, Trajectory
from cllm.ui import grid

# fixed point [1,2,3,4,5]; c = [0, 1, 5]. Row 0: 1 and 3 wrong... see tests/test_stats.py JUMP:
# guess: 9 9 3 9 5 -> wrong wrong right-for-now wrong right-for-now
# it 1:  1 9 3 9 5 -> committed wrong stationary wrong stationary
# it 2:  1 2 3 4 5 -> committed committed fast-forwarded x3
JUMP = Block(states=[[9, 9, 3, 9, 5], [1, 9, 3, 9, 5], [1, 2, 3, 4, 5]], iteration_seconds=[0.1, 0.2])
SECOND = Block(states=[[6, 6], [7, 8]], iteration_seconds=[0.05])
TEXT = {1: "def", 2: " ", 3: "<script>", 4: "\n", 5: "x", 6: "&", 7: "y", 8: "z", 9: "?"}


def make_traj(*blocks, ar=None):
    meta = RunMeta(model="/models/<b>base</b>", n=5, max_new_tokens=20, vocab_size=10)
    return Trajectory(meta=meta, prompt_ids=[1], blocks=list(blocks), prompt="p", token_text=TEXT, ar_tokens=ar)


def rows_of(html: str, block: int) -> list[list[str]]:
    table = re.search(rf'<table class="cr-grid" data-block="{block}".*?</table>', html).group(0)
    return [re.findall(r'<td class="([^"]+)"', row) for row in re.findall(r'<tr data-it="\d+">(.*?)</tr>', table)]


def test_cell_classes_follow_statuses():
    html = grid.block_grid_html(make_traj(JUMP), 0)
    assert rows_of(html, 0) == [
        ["s-w", "s-w", "s-k", "s-w", "s-k"],
        ["s-c", "s-w", "s-s", "s-w", "s-s"],
        ["s-c", "s-c", "s-f", "s-f", "s-f"],
    ]
    assert 'data-commit="0,1,5"' in html and 'data-secs="0.100000,0.200000"' in html and 'data-width="5"' in html
    assert '<th>guess</th>' in html and '<tr data-it="2"><th>2 ✓</th>' in html


def test_tooltips_and_escaping():
    html = grid.block_grid_html(make_traj(JUMP), 0)
    assert 'data-tip="“?” id 9 · position 0 · guess · not the final token yet"' in html
    assert "“&lt;script&gt;” id 3 · position 2 · pass 1 · stationary: " in html
    assert "“↵” id 4 · position 3 · pass 2 · fast-forwarded: " in html
    assert ">&lt;script&gt;</td>" in html and " title=" not in html  # whole in the cell; no native tooltip
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert ">·</td>" in html and ">↵</td>" in html  # whitespace made visible


def test_every_status_has_a_mark_beyond_colour():
    css = (grid.__file__.rsplit("/cllm/", 1)[0] + "/assets/player.css")
    text = open(css, encoding="utf-8").read()
    assert 'content: "»"' in text and 'content: "⚓"' in text  # fast-forwarded, stationary: icons
    assert "inset 0 -3px 0" in text and "dashed" in text  # committed: underline bar; wrong: dashed border


def test_race_html_has_both_panels_clock_and_texts():
    base = make_traj(JUMP, SECOND, ar=[1, 2, 3, 4, 5, 7, 8])
    cllm = make_traj(JUMP, ar=[1, 2, 3, 4, 4])
    html = grid.race_html(Race(base, cllm, title="t <1>"), "run42")
    assert 'data-run="run42" data-ticks="3"' in html  # the longer run: 2 + 1 passes
    assert html.count('<section class="cr-panel"') == 2 and 'data-role="cllm"' in html
    assert html.count('class="cr-tb" data-block=') == 3  # text split per block: 2 + 1
    assert "&lt;b&gt;base&lt;/b&gt;" in html and "t &lt;1&gt;" in html
    assert "✓ identical to greedy" in html and "✗ differs from greedy decoding from token 4" in html
    assert 'max="3" value="3"' in html and grid.LEGEND_HTML in html
    assert '<b data-k="tpf">2.33</b>' in html  # 7 tokens / 3 passes


def test_pending_verdict_before_the_ar_check():
    assert "comparing with greedy" in grid.verdict_html(make_traj(JUMP))


def test_a_focus_opens_the_player_there_and_rings_its_cells():
    from cllm.moments import Moment

    race = Race(make_traj(JUMP, SECOND), make_traj(SECOND, JUMP), title="t")
    html = grid.race_html(race, "r", focus=Moment("cllm", 1, 2, 1, 5))
    assert 'data-open="3"' in html  # SECOND's 1 pass + JUMP's 2
    cllm_panel = html.split('data-role="cllm"')[1]
    assert rows_of(cllm_panel, 1)[2] == ["s-c", "s-c cr-focus", "s-f cr-focus", "s-f cr-focus", "s-f cr-focus"]
    assert html.count("cr-focus") == 4 and "data-open" not in grid.race_html(race, "r")


def test_legend_and_tooltip_use_the_same_words():
    for status, words in grid.STATUS_WORDS.items():
        assert grid.escape(words) in grid.LEGEND_HTML
    light_blue = grid.STATUS_WORDS["correct"]
    assert "will still change" in light_blue and "light blue" in grid.LEGEND_HTML
    assert all(f"<code>{mark}</code>" in grid.LEGEND_HTML for mark in "·↵⇥")


def test_compact_grids_mini_map_notes_and_loops():
    wide = Block(states=[[1] * 32, [1] * 32], iteration_seconds=[0.1])
    assert 'class="cr-grid cr-n32"' in grid.block_grid_html(make_traj(wide), 0)
    assert 'class="cr-grid"' in grid.block_grid_html(make_traj(JUMP), 0)
    html = grid.panel_html(make_traj(JUMP, SECOND), "base", "Base", "")
    assert re.findall(r'data-act="block" data-k="(\d)"[^>]*>(\d+)</button>', html) == [("0", "2"), ("1", "1")]
    assert "cr-loop" not in html and "cr-about" not in html  # an unknown model: no note
    assert "4 M-parameter Llama" in grid.about_html("tiny-python")
    loop = {1: "x = 1\n", 2: "y\n"}
    looping = Trajectory(meta=make_traj(JUMP).meta, prompt_ids=[1], prompt="p", token_text=loop,
                         blocks=[Block(states=[[1, 1, 1, 2, 1]], iteration_seconds=[])])
    assert "This output loops" in grid.loop_html(looping)


def test_the_prompt_is_shown_not_folded():
    html = grid.race_html(Race(make_traj(JUMP), make_traj(JUMP), title="t"), "r")
    prompt = html[html.index('<div class="cr-prompt">'):].split("</pre>")[0]
    assert "<pre>" in prompt and "<details" not in prompt
    assert html.count("<details") == 1 and "<summary>More: the colours in full" in html  # only the legend folds


def test_a_decoder_with_drafts_gets_its_strip_per_pass():
    """recycle/multiblock/lookup records: one strip cell per row after the header (+tokens, the winner, the
    drafts in the tooltip); plain Jacobi blocks have none; the panel names the decoder."""
    from cllm.race import Race
    from cllm.trajectory import Block, RunMeta, Trajectory
    from cllm.ui.grid import race_html

    recycled = Block([[0, 0, 0, 0], [1, 2, 3, 0], [1, 2, 3, 4]], [0.01, 0.01], drafts=[[[1, 2, 3], [7]], []],
                     winners=[0, -1], gains=[3, 1])
    meta = RunMeta(n=4, max_new_tokens=4, vocab_size=10, decoder="recycle", options={"pool_size": 4}, model="m")
    traj = Trajectory(meta, [5], [recycled], token_text={1: "a", 2: "b", 3: "c", 4: "d", 7: "z"})
    plain = Trajectory(RunMeta(n=4, max_new_tokens=4, vocab_size=10, model="m"), [5], [Block(recycled.states, [0.01, 0.01])])
    html = race_html(Race(plain, traj), "x")
    assert html.count('class="cr-pass') == 1 + 3  # the header and one per row, only on the recycle side
    assert "<b>+3</b> ⇐ abc" in html and "<b>+1</b> own" in html and 'class="cr-pass cr-won"' in html
    assert "won: draft 1 of 2" in html and "✓ draft 1: “abc”" in html and "draft 2: “z”" in html
    assert "Decoder jacobi" in html and "Decoder recycle" in html  # one model, two decoders: named by decoder
    assert "pool_size = 4" in html


@pytest.mark.parametrize("name", ["jacobi", "recycle", "multiblock", "lookup"])
def test_every_decoder_replays(name):
    """What player.js replays from: per block a commit curve of one entry per row (non-decreasing, ending at the
    block's width) and one time per pass; the clock's last tick is the run's pass count; strip rows match."""
    import re

    from cllm.decoders import decode, make_config
    from cllm.race import Race
    from cllm.ui.grid import race_html
    from conftest import tiny_model

    model = tiny_model("llama", seed=4)
    config = make_config(name, n=4, max_new_tokens=14, **({"ratio": 0.5} if name in ("recycle", "multiblock") else {}))
    traj = decode(model, [3, 4, 5, 3, 4, 5, 3, 4], config)
    html = race_html(Race(traj, traj), "r")
    assert f'data-ticks="{traj.forward_passes}"' in html
    tables = re.findall(r'<table class="cr-grid[^"]*" data-block="(\d+)" data-width="(\d+)" data-commit="([\d,]+)" '
                        r'data-secs="([\d.,]*)"', html)
    assert len(tables) == 2 * len(traj.blocks)
    for (k, width, commit, secs), block in zip(tables, traj.blocks * 2):
        curve = [int(c) for c in commit.split(",")]
        assert len(curve) == block.iterations + 1 == len(secs.split(",")) + 1
        assert curve == sorted(curve) and curve[-1] == int(width) == block.width
    strips = html.count('<td class="cr-pass')
    assert strips == (0 if name == "jacobi" else 2 * sum(b.iterations + 1 for b in traj.blocks))
