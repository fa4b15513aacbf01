"""Stats: why a CLLM is faster. Charts of the current Explore run, a dataset run over a prompt set with
per-prompt table and CSV, an n-sweep, and the collocations the CLLM fast-forwards or holds stationary."""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import gradio as gr
import pandas as pd

from cllm import evaluate
from cllm.bench import DATASET_COLUMNS, dataset_rows
from cllm.collocations import collocation_table
from cllm.models import app_pair
from cllm.moments import Moment
from cllm.peers import PeerConfig
from cllm.prompts import HELDOUT_PROMPTS, read_prompt_file, read_prompts
from cllm.race import Race, default_title
from cllm.ui import figures
from cllm.ui.collocation_view import DISPLAY_COLUMNS, display_table, row_place
from cllm.decoders import DECODERS, DEFAULT_DECODER
from cllm.ui.common import (DECODING, decoder_config, load_models, model_name, on_gpu, race_file, race_summary, read_config,
                            side_labels,
                            user_errors, whole_number)
from cllm.ui.grid import race_html
from cllm.ui.model_worker import one_at_a_time

MAX_PROMPTS = 200  # dataset mode on 2 CPU cores: ~3 s per prompt pair at 64 tokens, HF peers included
MAX_ROW_INDEX = 10**6  # bound of the numbers a clicked collocation row may carry (run, block, pass, position)
SWEEP_CHOICES = [str(n) for n in evaluate.SWEEP_NS]
HELDOUT, UPLOAD = "shipped held-out prompts", "uploaded file"
EXPLAIN = (
    "**Fast-forward rate** (`ff_rate`, the paper's count): tokens each forward pass adds to the correct prefix, "
    "averaged per block, then over blocks and runs, as the authors' code counts it (a plain model scores about "
    "1.0). **Stationary** tokens: predicted right while a token before them was still wrong, and never changed "
    "after (per run). The paper finds both rise 2.0-6.8x from the target model to its CLLM (its Table 3): the "
    "CLLM has learned collocations, word sequences that come together, so it can write several at once. "
    "**Fast-forwarded surplus** (`fast_forwarded`): tokens beyond one per pass, summed (a plain model scores "
    "about 0); a different quantity, not to be set beside Table 3."
)
EXCLUDE_LABELS = {"token_run": "the authors' rule: 10 identical tokens in a row", "looping": "a line repeated 3+ times",
                  "either": "either", "none": "keep every run"}  # choice labels of the exclusion dropdown

# Raw column (cllm.evaluate, cllm.bench; the CSV keeps these) -> the name a table shows, with its unit.
SPEEDUP = "speed-up vs own greedy AR (wall clock)"
COLUMN_NAMES = {
    "model": "model", "prompt": "prompt #", "runs": "runs", "decoder": "decoder", "prompts": "prompts", "n": "block size n",
    "tokens": "tokens", "forward_passes": "forward passes", "tpf": "tokens per pass",
    "fast_forwarded": "fast-forwarded tokens (beyond 1 per pass)", "ff_rate": "fast-forward rate (paper, tokens/pass)",
    "stationary": "stationary tokens", "stationary_per_run": "stationary tokens per run (paper)",
    "decode_seconds": "decode time (s)", "ar_seconds": "greedy AR time (s)", "speedup": SPEEDUP,
    "tokens_per_s": "tokens/s", "vs_hf_greedy": "tokens/s ÷ HF greedy's",
    "matches_ar": "same text as greedy AR (share of runs)",
    "token_run": "10 identical tokens in a row", "token_runs": "runs with 10 identical tokens in a row",
    "looping": "repeats a line 3+ times", "block": "block", "pass": "pass",
}
TABLE3_NAMES = {  # cllm.evaluate.TABLE3_METRICS' per-prompt column -> the row label shown
    "ff_rate": "fast-forward rate (paper, tokens/pass)", "stationary": "stationary tokens (paper, per run)",
    "tpf": "tokens per pass (per run)", "fast_forwarded": "fast-forwarded tokens beyond 1 per pass (per run)"}
TABLE3_COLUMNS = ["metric", "base", "CLLM", "ratio (CLLM ÷ base)", "paper's ratio"]
RATE_COLUMNS = {"block": ["block", "base (tokens/pass)", "CLLM (tokens/pass)"],
                "pass": ["pass", "base (tokens added)", "CLLM (tokens added)"]}
BENCH_COLUMNS = [COLUMN_NAMES[c] for c in DATASET_COLUMNS]
BENCH_COLUMNS[BENCH_COLUMNS.index(SPEEDUP)] = "speed-up vs own greedy AR (tokens/s)"  # bench's is a rate ratio
PROMPT_COLUMNS = [COLUMN_NAMES[c] if c != "matches_ar" else "same text as greedy AR" for c in evaluate.PROMPT_COLUMNS]
AGG_COLUMNS = ["runs", "model", "prompts", "tokens", "tpf", "forward_passes", "fast_forwarded", "stationary", "ff_rate",
               "stationary_per_run", "decode_seconds", "ar_seconds", "matches_ar", "token_runs", "looping",
               "tokens_per_s", "speedup"]  # evaluate.aggregate's order, "runs" first
SWEEP_COLUMNS = ["model", "n", "tpf", "speedup", "matches_ar"]  # evaluate.n_sweep's


def tidy_number(x):
    """A float rounded to the digits a reader uses: 146.7, 1.12, 0.083; an infinite ratio (base 0) as ∞; whole
    numbers, text and NaN as they are."""
    if not isinstance(x, float) or x != x:
        return x
    if x in (float("inf"), float("-inf")):
        return "∞" if x > 0 else "-∞"
    return round(x, 1 if abs(x) >= 100 else 2 if abs(x) >= 1 else 3)


def tidy(frame: pd.DataFrame, names: dict[str, str] | list[str] = COLUMN_NAMES) -> pd.DataFrame:
    """A table as people read it: human column names with units (a dict renames, a list replaces them in
    order) and floats rounded by tidy_number."""
    out = frame.rename(columns=names) if isinstance(names, dict) else frame.set_axis(names, axis=1)
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]) or out[column].dtype == object:
            out[column] = out[column].map(tidy_number)
    return out


def table3_view(table: pd.DataFrame) -> pd.DataFrame:
    """evaluate.Table3.frame() with human row labels and column names, rounded."""
    labels = [TABLE3_NAMES[column] for _, column, _ in evaluate.TABLE3_METRICS]
    return tidy(table.assign(metric=labels), TABLE3_COLUMNS)


def run_charts(race):
    """Figures and the Table-3-like summary of the race on the Explore tab."""
    with user_errors():
        if race is None:
            raise ValueError("no run yet: run a prompt on the Explore tab (or load one from the Gallery) first")
    left, right = side_labels(race)  # Base / CLLM, or the two decoders when one model raced with both
    runs = {left: race.base, right: race.cllm}
    frame = pd.concat([evaluate.prompt_frame([t], role) for role, t in (("base", race.base), ("cllm", race.cllm))],
                      ignore_index=True)
    table = table3_view(evaluate.table3(frame).frame()).rename(columns={
        "base": left, "CLLM": right, TABLE3_COLUMNS[3]: f"ratio ({right} ÷ {left})"})
    return (table, figures.make_convergence_figure(runs),
            figures.make_fast_forward_figure(runs), figures.make_block_rate_figure(runs),
            figures.make_stationary_figure(runs), figures.make_iterations_figure(runs))


def follow_run(race):
    """run_charts for the Explore race State's change: a new run is charted at once; while Explore is still
    decoding (the State is None), the charts of the last run stay."""
    if race is None:
        return (gr.skip(),) * 6
    return run_charts(race)


def load_prompts(source: str, upload, limit) -> list[str]:
    limit = whole_number(limit, "number of prompts", 1, MAX_PROMPTS)
    if source == UPLOAD:
        if not upload:
            raise ValueError("choose a prompt file to upload (JSONL with a \"prompt\" field, or text, one per line)")
        return read_prompt_file(upload, limit)
    return read_prompts(HELDOUT_PROMPTS, limit)


@one_at_a_time
@on_gpu(duration=300)  # ZeroGPU's longest call; a 200-prompt set of 7B models may need a dedicated GPU
def run_dataset(base, cllm, source, upload, limit, n, max_new_tokens, exclude="token_run", hide_loops=False,
                decoder=DEFAULT_DECODER, progress=gr.Progress()):
    """Both models over a prompt set with one decoder (cllm.decoders): per-prompt table, aggregates with and
    without flagged runs, Table 3, distribution chart, CSV, collocations, the paper rate's breakdowns, and the
    bench table (the decoder's row named by it) with the HF peers."""
    with user_errors():
        config = decoder_config(read_config(n, max_new_tokens, 0, "prompt"), decoder)
        if exclude not in evaluate.EXCLUDE:
            raise ValueError(f"exclude must be one of {', '.join(evaluate.EXCLUDE)}")
        prompts = load_prompts(source, upload, limit)
        pair = dict(zip(("base", "cllm"), load_models([model_name(base, "base"), model_name(cllm, "CLLM")], progress)))
        trajs, frame = evaluate.compare_pair(*pair.values(), prompts, config, _progress(progress, 2 * len(prompts)))
        progress(1.0, desc="HF generate and prompt lookup on the same prompts")
        bench = pd.DataFrame(dataset_rows(pair, trajs, PeerConfig(max_new_tokens=config.max_new_tokens)),
                             columns=DATASET_COLUMNS)
    csv = Path(tempfile.mkdtemp(prefix="cllm-stats-")) / "stats.csv"
    frame.assign(decoder=decoder).to_csv(csv, index=False)
    ff, st = (collocation_table(trajs["cllm"], trajs["base"], kind, hide_loops=bool(hide_loops))
              for kind in ("fast_forwarded", "stationary"))
    by_block, by_pass = (_rate_view(t, by) for t, by in zip(evaluate.rate_breakdown(trajs, frame, exclude), RATE_COLUMNS))
    return (tidy(frame.assign(prompt=frame["prompt"] + 1), PROMPT_COLUMNS), tidy(_with_and_without(frame, exclude)),
            table3_view(evaluate.table3(frame, exclude).frame()),
            figures.make_distribution_figure(frame, "tpf"), str(csv), display_table(ff, trajs["cllm"]),
            display_table(st, trajs["cllm"]), by_block, by_pass,
            tidy(bench, BENCH_COLUMNS), trajs)


def _rate_view(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """A rate_breakdown pivot (index block from 0, or pass from 1; a column per model) as the tab shows it:
    blocks counted from 1 as in the player, both models' columns even where one has no rows."""
    out = table.reindex(columns=["base", "cllm"]).reset_index()
    if by == "block":
        out["block"] = out["block"] + 1
    return tidy(out, RATE_COLUMNS[by])


def _with_and_without(frame: pd.DataFrame, exclude: str) -> pd.DataFrame:
    """Per-model aggregates over all runs, then over the runs left once the flagged ones are dropped."""
    every = evaluate.aggregate(frame)
    every.insert(0, "runs", "all")
    if exclude == "none":
        return every[AGG_COLUMNS]
    kept = evaluate.aggregate(evaluate.kept(frame, exclude))
    kept.insert(0, "runs", f"without {exclude}")
    return pd.concat([every, kept], ignore_index=True)[AGG_COLUMNS]


def open_collocation(trajs, evt: gr.SelectData):
    """A click on a collocation row opens its example in the Explore player, paused at that pass with the
    span ringed, and switches to Explore (the race becomes the visitor's current run there, its prompt fills
    the prompt box so Run decodes it)."""
    with user_errors():
        if not trajs or evt.row_value is None:
            raise ValueError("no dataset run to open: run both models over a prompt set first")
        row = row_place(evt.row_value)
        run, block, iteration, start, tokens = (whole_number(row.get(k), k, 0, MAX_ROW_INDEX)
                                                for k in ("run", "block", "iteration", "position", "tokens"))
        if run >= len(trajs["cllm"]):
            raise ValueError("that row belongs to an earlier dataset run; run the set again")
        base, cllm = trajs["base"][run], trajs["cllm"][run]
        span = str(row.get("text", ""))[:40]
        race = Race(base, cllm, title=f"{default_title(cllm.prompt)} ({span!r} at block {block + 1}, pass {iteration})")
        html = race_html(race, uuid.uuid4().hex[:12], focus=Moment("cllm", block, iteration, start, start + tokens))
    return html, race_summary(race), race_file(race), race, gr.Tabs(selected="explore"), cllm.prompt


@one_at_a_time
@on_gpu(duration=300)
def run_sweep(base, cllm, source, upload, limit, ns, max_new_tokens, progress=gr.Progress()):
    with user_errors():
        if not ns:
            raise ValueError("pick at least one block size n")
        config = read_config(DECODING.n, max_new_tokens, DECODING.seed, DECODING.init)  # n: swept below
        prompts = load_prompts(source, upload, limit)
        models = dict(zip(("base", "cllm"), load_models([model_name(base, "base"), model_name(cllm, "CLLM")], progress)))
        sizes = sorted(int(n) for n in ns)
        sweep = evaluate.n_sweep(models, prompts, config, sizes, _progress(progress, 2 * len(sizes) * len(prompts)))
    return (tidy(sweep[SWEEP_COLUMNS]), figures.make_sweep_figure(sweep, "tpf"),
            figures.make_sweep_figure(sweep, "speedup"))


def _progress(progress, total: int):
    done = [0]

    def report(i, n, what):
        done[0] += 1
        progress(done[0] / total, desc=f"{what}: prompt {i}/{n}")
    return report


def build(explore, tabs: gr.Tabs) -> None:
    """Adds the tab; `explore` (explore_tab.ExploreView) is charted and shows clicked collocations, `tabs`
    switches to it."""
    race = explore.race
    with gr.Tab("Stats", id="stats"):
        gr.Markdown(EXPLAIN)
        with gr.Accordion("This run (from the Explore tab)", open=True):
            chart = gr.Button("Chart the current run", elem_id="stats-chart")
            gr.Markdown("The charts follow each new run of the Explore tab; the button charts the current one again.")
            table = gr.Dataframe(label="Table 3 view, base vs CLLM (ratio = CLLM ÷ base; only rows with a paper "
                                 "range compare with the paper)", headers=TABLE3_COLUMNS, interactive=False)
            with gr.Row():
                convergence, fast, rate = gr.Plot(), gr.Plot(), gr.Plot()
            with gr.Row():
                stationary, iterations = gr.Plot(), gr.Plot()
        charts = [table, convergence, fast, rate, stationary, iterations]
        chart.click(run_charts, race, charts, api_name="stats_run", show_progress_on=table)
        race.change(follow_run, race, charts, api_visibility="private", show_progress_on=table)
        with gr.Accordion("A prompt set", open=True):
            with gr.Row():
                first_base, first_cllm = app_pair()
                base = gr.Textbox(first_base, label="Base model", elem_id="stats-base")
                cllm = gr.Textbox(first_cllm, label="CLLM", elem_id="stats-cllm")
                source = gr.Radio([HELDOUT, UPLOAD], value=HELDOUT, label="Prompts", elem_id="stats-source")
                upload = gr.File(label="Prompt file (.jsonl or .txt)", file_types=[".jsonl", ".json", ".txt"],
                                 type="filepath", elem_id="stats-upload")
            with gr.Row():
                limit = gr.Number(64, label=f"Number of prompts (1 to {MAX_PROMPTS})", precision=None,
                                  elem_id="stats-limit")
                n = gr.Number(DECODING.n, label="Block size n", precision=None, elem_id="stats-n")
                max_new = gr.Number(DECODING.max_new_tokens, label="Max new tokens", precision=None, elem_id="stats-tokens")
                exclude = gr.Dropdown([(v, k) for k, v in EXCLUDE_LABELS.items()], value="token_run",
                                      label="Leave out runs flagged by", elem_id="stats-exclude")
                hide_loops = gr.Checkbox(False, label="Hide collocations inside a loop", elem_id="stats-hide-loops")
                decoder = gr.Dropdown(list(DECODERS), value=DEFAULT_DECODER, label="Decoder", elem_id="stats-decoder")
                go = gr.Button("Run both models over the set", variant="primary", elem_id="stats-dataset")
            ratios = gr.Dataframe(label="Table 3 view: the paper's fast-forward rate and stationary count per run, "
                                  "base vs CLLM, beside the paper's range (flagged runs left out)",
                                  headers=TABLE3_COLUMNS, interactive=False)
            bench = gr.Dataframe(label="Bench on the same prompts: our greedy AR and Jacobi beside HF generate "
                                 f"(greedy) and HF prompt lookup (draft {PeerConfig.draft})", headers=BENCH_COLUMNS,
                                 interactive=False)
            agg = gr.Dataframe(label="Per model: all runs, then without the flagged ones",
                               headers=[COLUMN_NAMES[c] for c in AGG_COLUMNS], interactive=False)
            with gr.Row():
                by_block = gr.Dataframe(label="Fast-forward rate (paper, tokens/pass) by block", interactive=False,
                                        headers=RATE_COLUMNS["block"], max_height=300)
                by_pass = gr.Dataframe(label="Tokens each pass adds (paper count) by pass", interactive=False,
                                       headers=RATE_COLUMNS["pass"], max_height=300)
            dist = gr.Plot()
            per_prompt = gr.Dataframe(label="Per prompt", headers=PROMPT_COLUMNS, interactive=False, max_height=300)
            csv = gr.File(label="Per-prompt table (CSV, raw column names)")
            gr.Markdown("**Collocations**: the spans the CLLM most often fast-forwards or holds stationary "
                        "(click a column header to sort; **click a row** to open its first example in Explore, "
                        "paused at that pass with the span ringed).")
            with gr.Row():
                ff = gr.Dataframe(label="Fast-forwarded spans", headers=DISPLAY_COLUMNS, interactive=False,
                                  max_height=400, elem_id="stats-ff")
                st = gr.Dataframe(label="Stationary spans", headers=DISPLAY_COLUMNS, interactive=False, max_height=400,
                                  elem_id="stats-st")
            dataset = gr.State(None)  # this visitor's last dataset run: {"base": [...], "cllm": [...]}
            go.click(run_dataset, [base, cllm, source, upload, limit, n, max_new, exclude, hide_loops, decoder],
                     [per_prompt, agg, ratios, dist, csv, ff, st, by_block, by_pass, bench, dataset],
                     api_name="stats_dataset", show_progress_on=ratios,  # one bar, not one per table
                     concurrency_id="models", concurrency_limit=1)
            for spans in (ff, st):
                spans.select(open_collocation, dataset,
                             [explore.player, explore.status, explore.download, race, tabs, explore.prompt],
                             api_visibility="private")
        with gr.Accordion("Block-size sweep (the paper's Fig. 3)", open=False):
            with gr.Row():
                ns = gr.CheckboxGroup(SWEEP_CHOICES, value=SWEEP_CHOICES, label="n")
                sweep_go = gr.Button("Sweep", elem_id="stats-sweep")
            sweep_table = gr.Dataframe(headers=[COLUMN_NAMES[c] for c in SWEEP_COLUMNS], interactive=False)
            with gr.Row():
                tpf_plot, speed_plot = gr.Plot(), gr.Plot()
            sweep_go.click(run_sweep, [base, cllm, source, upload, limit, ns, max_new],
                           [sweep_table, tpf_plot, speed_plot], api_name="stats_sweep", show_progress_on=sweep_table,
                           concurrency_id="models", concurrency_limit=1)
