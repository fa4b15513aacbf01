"""Stats tab: charts of a run, dataset mode (callbacks and through gradio_client), sweep, bad uploads."""
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from cllm import evaluate
from cllm.decode import decode_prompt, decode_race
from cllm.decoders import make_config
from cllm.jacobi import JacobiConfig
from cllm.models import cached_model
from cllm.race import Race, load_race
from cllm.ui import stats_sweep, stats_tab, stats_tables
from cllm.ui.collocation_view import DISPLAY_COLUMNS, display_table


@pytest.fixture(scope="module")
def race(tiny_pair):
    base, cllm = (cached_model(p) for p in tiny_pair)
    return decode_race(base, cllm, "def f(x):", JacobiConfig(n=4, max_new_tokens=12))


def test_run_charts(race):
    table, convergence, fast, rate, stationary, iterations = stats_tab.run_charts(race)
    assert table["metric"].tolist() == ["fast-forward rate (paper, tokens/pass)", "stationary tokens (paper, per run)",
                                        "tokens per pass (per run)", "fast-forwarded tokens beyond each pass's first (per run)"]
    assert list(table.columns) == ["metric", "Base", "CLLM", "ratio (CLLM ÷ Base)", "paper's ratio"]
    assert table["paper's ratio"].tolist() == ["2.0-6.8x", "2.0-6.8x", "-", "-"]  # the surplus is not set beside the paper
    assert all(_rounded(v) for column in ("Base", "CLLM") for v in table[column])
    assert len(convergence.data) == len(race.base.blocks) + len(race.cllm.blocks)
    assert [d.name for d in fast.data] == ["Base", "CLLM"] and [d.name for d in rate.data] == ["Base", "CLLM"]


def test_a_base_of_zero_gives_no_ratio_not_infinity():
    """The real pair's chat race: its base holds no stationary token, its CLLM a few."""
    race = load_race("saved_trajectories/real-chat-01.json")
    table = stats_tab.run_charts(race)[0].set_index("metric")
    stationary = table.loc["stationary tokens (paper, per run)"]
    assert stationary["Base"] == 0 and stationary["CLLM"] > 0
    assert stationary["ratio (CLLM ÷ Base)"] == evaluate.NO_RATIO
    assert "∞" not in table.to_string()


def test_the_cli_report_says_no_ratio_in_the_apps_words():
    """`python -m cllm stats` prints the same Table 3 as text: the chat race's stationary row has no ratio."""
    from cllm.report import table3_text
    race = load_race("saved_trajectories/real-chat-01.json")
    frame = pd.concat([evaluate.prompt_frame([race.base], "base"), evaluate.prompt_frame([race.cllm], "cllm")])
    stationary = next(line for line in table3_text(evaluate.table3(frame)).splitlines() if "stationary" in line)
    assert evaluate.NO_RATIO in stationary and "inf" not in stationary


def test_run_charts_of_one_model_with_two_decoders_name_the_decoders(tiny_pair):
    """A race of the CLLM against itself with another decoder: legends and Table 3 say which decoder is which."""
    cllm = cached_model(tiny_pair[1])
    left = decode_prompt(cllm, "def f(x):", make_config("jacobi", n=4, max_new_tokens=12))
    right = decode_prompt(cllm, "def f(x):", make_config("recycle", n=4, max_new_tokens=12))
    table, convergence, fast, *_ = stats_tab.run_charts(Race(left, right))
    assert list(table.columns)[1:4] == ["Left (jacobi)", "Right (recycle)", "ratio (Right (recycle) ÷ Left (jacobi))"]
    assert [d.name for d in fast.data] == ["Left (jacobi)", "Right (recycle)"]
    assert {d.legendgroup for d in convergence.data} == {"Left (jacobi)", "Right (recycle)"}


def test_run_charts_without_a_run():
    with pytest.raises(gr.Error, match="no run yet"):
        stats_tab.run_charts(None)


def built_stats_tab(opening=None):
    """(the Blocks, the stand-in Explore view) of the Stats tab built beside an Explore view that opened on
    `opening`."""
    with gr.Blocks() as demo:
        explore = SimpleNamespace(race=gr.State(None), player=gr.HTML(), status=gr.Markdown(), download=gr.File(),
                                  prompt=gr.Textbox(), opening=opening)
        with gr.Tabs() as tabs:
            stats_tab.build(explore, tabs)
    return demo, explore


def dataset_answer(*args, **kwargs) -> tuple:
    """run_dataset's last answer (it yields waiting notes first when the models are busy)."""
    return list(stats_tab.run_dataset(*args, **kwargs))[-1]


def _rounded(value) -> bool:
    """A shown number has at most 3 decimals (no 1.1228070175438596)."""
    return not isinstance(value, float) or value != value or round(value, 3) == value


def test_follow_run_charts_a_new_run_and_keeps_the_last_while_decoding(race):
    """The Explore race State's change charts the new run; None (Explore still decoding) leaves the charts."""
    charted = stats_tab.follow_run(race)
    assert len(charted) == 6 and charted[0].equals(stats_tab.run_charts(race)[0])
    assert all(isinstance(out, dict) and out.get("__type__") == "update" and len(out) == 1  # gr.skip(): untouched
               for out in stats_tab.follow_run(None))
    assert stats_tab.follow_note(race).startswith(f"Charted now: the Explore tab's last run ({race.title}).")
    assert stats_tab.follow_note(None) == gr.skip()  # the note names what the charts still show


def test_tidy_names_and_rounds():
    frame = pd.DataFrame({"fast_forwarded": [3], "tokens_per_s": [146.66666], "ff_rate": [1.1228070175438596],
                          "matches_ar": [0.08333333]})
    shown = stats_tables.tidy(frame)
    assert list(shown.columns) == ["fast-forwarded tokens (beyond each pass's first)", "tokens/s",
                                   "fast-forward rate (paper, tokens/pass)", "same text as greedy AR (share of runs)"]
    assert shown.iloc[0].tolist() == [3, 146.7, 1.12, 0.083]
    assert stats_tables.tidy_number(float("nan")) != stats_tables.tidy_number(float("nan")) and stats_tables.tidy_number("x") == "x"
    assert stats_tables.tidy_number(float("inf")) == "∞"  # a ratio over a base of 0 (Gradio would show a blank)


def test_empty_tables_show_their_column_names(monkeypatch, tmp_path):
    """Before any run every table shows the names its rows will have (not Gradio's "1 2 3")."""
    monkeypatch.setattr(stats_tab, "DATASETS_DIR", tmp_path)  # no recorded run to open on, whatever the machine has
    demo, explore = built_stats_tab(opening=None)
    tables = [b for b in demo.blocks.values() if isinstance(b, gr.Dataframe)]
    assert len(tables) == 10
    for table in tables:
        headers = table.value["headers"]
        assert headers and all(isinstance(h, str) and not h.isdigit() for h in headers), table.label
    names = {h for table in tables for h in table.value["headers"]}
    assert {"tokens/s", "fast-forward rate (paper, tokens/pass)", stats_tables.SPEEDUP} <= names
    assert not names & {"fast_forwarded", "tokens_per_s", "ff_rate", "speedup", "forward_passes"}
    for follow in (stats_tab.follow_run, stats_tab.follow_note):  # no button press needed
        follows = [f for f in demo.fns.values() if f.fn is follow]
        assert len(follows) == 1 and follows[0].targets == [(explore.race._id, "change")]


def test_the_tab_opens_charting_the_race_explore_opened_on(race, monkeypatch, tmp_path):
    monkeypatch.setattr(stats_tab, "DATASETS_DIR", tmp_path)
    demo, explore = built_stats_tab(opening=race)
    [chart] = [f for f in demo.fns.values() if f.fn is stats_tab.run_charts]
    table, *plots = chart.outputs
    assert [row[0] for row in table.value["data"]] == stats_tab.run_charts(race)[0]["metric"].tolist()
    assert all(plot.value is not None for plot in plots)
    assert any("Charted now: the race Explore opened on" in str(b.value) for b in demo.blocks.values()
               if isinstance(b, gr.Markdown))


def test_dataset_mode_from_an_uploaded_text_file(tiny_pair, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def f(x):\n\nclass A:\nimport os\n")
    out = dataset_answer(*tiny_pair, stats_tab.UPLOAD, str(prompts), 2, 4, 8, progress=lambda *a, **k: None)
    per_prompt, agg, ratios, dist, csv, ff, st, by_block, by_pass, bench, trajs, note = out
    assert note == stats_tab.LIVE_NOTE  # nothing recorded for these prompts
    assert len(per_prompt) == 4 and set(per_prompt["model"]) == {"base", "cllm"}
    assert per_prompt["same text as greedy AR"].all() and per_prompt["prompt #"].tolist() == [1, 2, 1, 2]
    assert list(per_prompt.columns) == stats_tab.PROMPT_COLUMNS and list(bench.columns) == stats_tab.BENCH_COLUMNS
    assert bench["decoder"].tolist() == ["ar", "jacobi", "hf_greedy", "hf_prompt_lookup"] * 2
    assert bench["same text as greedy AR (share of runs)"].tolist() == [1.0] * 8
    assert agg["runs"].tolist() == ["all", "all", "without token_run", "without token_run"]
    assert stats_tables.SPEEDUP in agg.columns and "tokens/s" in agg.columns
    assert ratios["metric"][0] == "fast-forward rate (paper, tokens/pass)"
    assert list(by_block.columns) == stats_tab.RATE_COLUMNS["block"] and by_block["block"].tolist()[0] == 1  # as the player counts
    assert by_pass["pass"].tolist()[0] == 1 and "in a loop" in ff.columns
    for table in (per_prompt, agg, ratios, by_block, by_pass, bench):
        assert all(_rounded(v) for column in table.columns for v in table[column]), table.columns
    assert pd.read_csv(csv)["tokens"].sum() == per_prompt["tokens"].sum()  # the CSV keeps the raw names
    assert list(ff.columns)[:4] == ["CLLM count", "base count", "in a loop", "span"]  # counts where a narrow table shows them
    assert [len(trajs[role]) for role in ("base", "cllm")] == [2, 2]


def test_a_collocation_row_opens_its_example_in_explore():
    """A clicked row becomes a race paused at the row's pass, its span ringed, and the tabs switch."""
    from types import SimpleNamespace

    from cllm.collocations import collocation_table
    from test_moments import JUMP, STAIRS, TWO, traj

    trajs = {"base": [traj(STAIRS, model="base"), traj(STAIRS, STAIRS, model="base")],
             "cllm": [traj(TWO, model="cllm"), traj(TWO, JUMP, model="cllm")]}
    table = collocation_table(trajs["cllm"], trajs["base"], "fast_forwarded")
    row = table[table["tokens"] == 4].iloc[0]  # JUMP's pass 2: positions 1..4 of run 1, block 1
    assert (row["run"], row["block"], row["iteration"], row["position"]) == (1, 1, 2, 1)
    shown = display_table(table, trajs["cllm"])
    clicked = shown[shown["tokens"] == 4].iloc[0]
    assert (clicked["prompt #"], clicked["block"], clicked["pass"], clicked["position"]) == (2, 2, 2, 1)  # as the player counts
    html, summary, download, race, tabs, prompt = stats_tab.open_collocation(trajs, SimpleNamespace(row_value=list(clicked)))
    assert prompt == trajs["cllm"][1].prompt  # Explore's prompt box: Run works at once
    assert race.cllm is trajs["cllm"][1] and race.base is trajs["base"][1]
    assert 'data-open="3"' in html and html.count("cr-focus") == 4  # pass 1 of block 0 + pass 2 of block 1
    assert tabs.selected == "explore" and "CLLM" in summary
    assert load_race(download).cllm.blocks[1].states == JUMP.states  # the download is the race on screen
    with pytest.raises(gr.Error, match="run both models over a prompt set first"):
        stats_tab.open_collocation(None, SimpleNamespace(row_value=list(clicked)))


@pytest.mark.parametrize("change, message", [
    ({"run": 7}, "earlier dataset run"), ({"run": float("inf")}, "run must be a whole number"),
    ({"block": -1}, "block must be a whole number from 0"), ({"iteration": 3}, "is outside it"),
    ({"block": 1, "iteration": 0}, "guess row of block 1 is never on screen"), ({"tokens": "x"}, "tokens must be"),
])
def test_a_tampered_collocation_row_is_a_clear_error(change, message):
    """Row values come back from the browser: anything off is one clear message."""
    from types import SimpleNamespace

    from cllm.collocations import COLUMNS
    from test_moments import JUMP, STAIRS, TWO, traj

    trajs = {"base": [traj(STAIRS, STAIRS)], "cllm": [traj(TWO, JUMP)]}
    row = {"text": "x" * 500, "tokens": 4, "cllm_count": 1, "cllm_share": 1.0, "base_count": 0, "base_share": 0.0, "in_loop": 0,
           "run": 0, "block": 1, "iteration": 2, "position": 1} | change
    frame = pd.DataFrame([{**row, "run": 0, "block": 1, "tokens": 4}], columns=COLUMNS)
    shown = display_table(frame, trajs["cllm"]).iloc[0].to_dict()  # the row as the table shows it, then tampered
    shown.update({"prompt #": row["run"] + 1 if isinstance(row["run"], int) else row["run"],
                  "block": row["block"] + 1, "pass": row["iteration"], "tokens": row["tokens"]})
    with pytest.raises(gr.Error, match=message):
        stats_tab.open_collocation(trajs, SimpleNamespace(row_value=[shown[c] for c in DISPLAY_COLUMNS]))


@pytest.mark.parametrize("content, name, message", [
    (b"\xff\xfe bad", "p.txt", "not UTF-8"),
    (b"", "p.txt", "holds no prompts"),
    (b'{"text": 1}\n', "p.jsonl", "needs a non-empty string field"),
])
def test_bad_uploads(tiny_pair, tmp_path, content, name, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(gr.Error, match=message):
        dataset_answer(*tiny_pair, stats_tab.UPLOAD, str(path), 5, 4, 8, progress=lambda *a, **k: None)


def test_limits_and_missing_upload(tiny_pair):
    with pytest.raises(gr.Error, match="number of prompts must be"):
        dataset_answer(*tiny_pair, stats_tab.HELDOUT, None, 0, 4, 8, progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="choose a prompt file"):
        dataset_answer(*tiny_pair, stats_tab.UPLOAD, None, 5, 4, 8, progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="pick at least one block size"):
        list(stats_sweep.run_sweep(*tiny_pair, stats_tab.HELDOUT, None, 2, [], 8, progress=lambda *a, **k: None))


def test_dataset_and_sweep_endpoints(app_server, tiny_pair, tmp_path):
    client = Client(app_server[0], verbose=False)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "def g(y):"}\n{"prompt": "for i in"}\n')
    out = client.predict(*tiny_pair, stats_tab.UPLOAD, handle_file(str(prompts)), 2, 4, 8, api_name="/stats_dataset")
    per_prompt = out[0]
    assert len(per_prompt["data"]) == 4
    sweep = client.predict(*tiny_pair, stats_tab.UPLOAD, handle_file(str(prompts)), 1, ["4", "8"], 8,
                           api_name="/stats_sweep")[0]
    assert [row[1] for row in sweep["data"]] == [4, 4, 8, 8]
    with pytest.raises(AppError, match="number of prompts must be"):
        client.predict(*tiny_pair, stats_tab.UPLOAD, handle_file(str(prompts)), 0, 4, 8, api_name="/stats_dataset")


def test_dataset_mode_with_another_decoder(tiny_pair, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def f(x):\nclass A:\n")
    out = dataset_answer(*tiny_pair, stats_tab.UPLOAD, str(prompts), 2, 4, 8, "token_run", False, "recycle",
                                progress=lambda *a, **k: None)
    per_prompt, bench, trajs, csv = out[0], out[9], out[10], out[4]
    assert bench["decoder"].tolist() == ["ar", "recycle", "hf_greedy", "hf_prompt_lookup"] * 2
    assert per_prompt["same text as greedy AR"].all() and trajs["cllm"][0].meta.decoder == "recycle"
    assert set(pd.read_csv(csv)["decoder"]) == {"recycle"}
    with pytest.raises(gr.Error, match="decoder must be one of"):
        dataset_answer(*tiny_pair, stats_tab.UPLOAD, str(prompts), 2, 4, 8, "token_run", False, "beam",
                              progress=lambda *a, **k: None)
