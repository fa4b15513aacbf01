"""Stats: why a CLLM is faster. Charts of the current Explore run, a dataset run over a prompt set with
per-prompt table and CSV, an n-sweep, and the collocations the CLLM fast-forwards or holds stationary."""
from __future__ import annotations

import uuid
from typing import NamedTuple

import gradio as gr
import pandas as pd

from cllm import evaluate
from cllm.bench import dataset_rows
from cllm.dataset_run import DATASETS_DIR, MAX_RUNS, DatasetRun, find_recorded, runs_of_pair
from cllm.models import app_pair, cached_dtype
from cllm.moments import Moment
from cllm.peers import PeerConfig
from cllm.race import Race, default_title
from cllm.shipped import Request
from cllm.ui import figures
from cllm.ui.collocation_view import DISPLAY_COLUMNS, DISPLAY_WIDTHS, row_place
from cllm.decoders import DECODERS, DEFAULT_DECODER
from cllm.ui.common import (DECODING, counting_progress, decoder_config, load_models, model_name, on_gpu, race_file,
                            race_summary, read_config, side_labels, user_errors, whole_number)
from cllm.ui.grid import race_html
from cllm.ui.prompt_sets import CODE, HELDOUT, PROMPT_SETS, UPLOAD, load_prompts, prompt_file_box
from cllm.ui.stats_sweep import sweep_section
from cllm.ui.model_worker import MAX_LINE, MODELS, LineFull, waiting_note
from cllm.ui.stats_tables import (AGG_COLUMNS, BENCH_COLUMNS, COLUMN_NAMES, PROMPT_COLUMNS, RATE_COLUMNS,
                                  TABLE3_COLUMNS, dataset_outputs, table3_view)

MAX_ROW_INDEX = 10**6  # bound of the numbers a clicked collocation row may carry (run, block, pass, position)
LIVE_NOTE = "Decoded live just now."
RECORDED_AT_ONCE = "The run this section opened with was recorded: its settings serve it at once."
EXPLAIN = (
    "**Fast-forward rate** (`ff_rate`, the paper's count): tokens each forward pass adds to the correct prefix, "
    "averaged per block, then over blocks and runs, as the authors' code counts it (a plain model scores about "
    "1.0). **Stationary** tokens: predicted right while a token before them was still wrong, and never changed "
    "after (per run). The paper finds both rise 2.0-6.8x from the target model to its CLLM (its Table 3): the "
    "CLLM has learned collocations, word sequences that come together, so it can write several at once. "
    "**Fast-forwarded surplus** (`fast_forwarded`): tokens a pass commits beyond its first, summed (a plain "
    "model scores about 0); a different quantity, not to be set beside Table 3. It can exceed tokens − passes: "
    "a pass that only confirms a finished block commits none. **Tokens per pass** is a mean over runs in the "
    "Table 3 view (as the paper averages) but all tokens ÷ all passes in the bench and per-model tables, so "
    "the two can differ in the second decimal."
)
EXCLUDE_FIRST = "token_run"  # the authors' rule, which the Table 3 view follows
EXCLUDE_LABELS = {"token_run": "10 identical tokens in a row (the authors' rule)", "looping": "a line repeated 3+ times",
                  "either": "either", "none": "keep every run"}  # choice labels of the exclusion dropdown


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


def charted_note(race, which: str = "the Explore tab's last run") -> str:
    """Which race the charts show, so a visitor who ran several knows."""
    shown = f"Charted now: {which} ({race.title}). " if race is not None else ""
    return f"{shown}The charts follow each new run of the Explore tab; the button charts the current one again."


def follow_note(race):
    """charted_note for the Explore race State's change (None while Explore decodes: the note stays)."""
    return gr.skip() if race is None else charted_note(race)


def run_dataset(base, cllm, source, upload, limit, n, max_new_tokens, exclude="token_run", hide_loops=False,
                decoder=DEFAULT_DECODER, progress=gr.Progress()):
    """Both models over a prompt set with one decoder (cllm.decoders): per-prompt table, aggregates with and
    without flagged runs, Table 3, distribution chart, CSV, collocations, the paper rate's breakdowns, the
    bench table (the decoder's row named by it) with the HF peers, the runs, and a note saying where they come
    from. A recorded run of exactly this request is served at once (cllm.dataset_run); otherwise the request
    waits its turn for the models, the note saying how many requests are ahead, and decodes live."""
    with user_errors():
        config = form_config(n, max_new_tokens, decoder)
        if exclude not in evaluate.EXCLUDE:
            raise ValueError(f"exclude must be one of {', '.join(evaluate.EXCLUDE)}")
        prompts = load_prompts(source, upload, limit)
        names = [model_name(base, "base"), model_name(cllm, "CLLM")]
        recorded = find_recorded(DATASETS_DIR, prompts, *(Request.asked(m, config, False, cached_dtype()) for m in names))
    if recorded is not None:
        yield dataset_outputs(recorded.trajs, recorded.bench, exclude, hide_loops, decoder) + (
            recorded.trajs, recorded_note(recorded))
        return
    try:
        with MODELS.turn(max_line=MAX_LINE) as waits:
            hint = RECORDED_AT_ONCE if opening_run(*names) is not None else ""
            for ahead in waits:
                yield (gr.skip(),) * 11 + (waiting_note(ahead, hint),)
            yield (gr.skip(),) * 11 + ("Decoding live…",)  # a visitor who left is noticed here, before model work
            try:
                with user_errors():
                    trajs, bench = live_dataset(names, prompts, config, progress)
            except gr.Error:
                yield (gr.skip(),) * 11 + ("The live run stopped: the message above says why.",)
                raise
    except LineFull as e:  # raised on joining, before anything was yielded
        raise gr.Error(f"{e}: try again in a few minutes", print_exception=False) from None
    yield dataset_outputs(trajs, bench, exclude, hide_loops, decoder) + (trajs, LIVE_NOTE)


@on_gpu(duration=300)  # ZeroGPU's longest call; a 200-prompt set of 7B models may need a dedicated GPU
def live_dataset(names: list[str], prompts: list[str], config, progress) -> tuple[dict, list[dict]]:
    """run_dataset's model work, once the models are this request's: the runs and the bench rows."""
    pair = dict(zip(("base", "cllm"), load_models(names, progress)))
    trajs, _ = evaluate.compare_pair(*pair.values(), prompts, config, counting_progress(progress, 2 * len(prompts)))
    progress(1.0, desc="HF generate and prompt lookup on the same prompts")
    return trajs, dataset_rows(pair, trajs, PeerConfig(max_new_tokens=config.max_new_tokens))


def form_config(n, max_new_tokens, decoder: str):
    """The decoding a dataset run asks for: the form's n, tokens and decoder; seed 0, guesses from the prompt,
    raw prompts (the form has no field for them)."""
    return decoder_config(read_config(n, max_new_tokens, 0, "prompt"), decoder)


def recorded_note(run: DatasetRun) -> str:
    return (f"**Recorded run** of {len(run.prompts)} prompts of `{run.prompt_set}`, decoded on {run.recorded} "
            f"({run.machine}): the tokens are what a live run decodes; the times are that machine's. "
            "Change the models, prompts, n, tokens or decoder to decode a set live.")


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


def opening_run(base: str, cllm: str) -> tuple[DatasetRun, str] | None:
    """The pair's recorded run that this section's form asks for again (a shipped set's first prompts, seed 0,
    init prompt, raw prompts, as recorded, in the app's dtype), with its set's choice; None where none ships."""
    for run in runs_of_pair(DATASETS_DIR, base, cllm):
        choice = next((c for c, path in PROMPT_SETS.items() if path.name == run.prompt_set), None)
        if choice is None:  # its set is not one the form offers
            continue
        meta = run.trajs["cllm"][0].meta
        try:  # a run the form cannot ask for (n or tokens beyond its range) is skipped, never fatal to the app
            config = form_config(meta.n, meta.max_new_tokens, meta.decoder)
            prompts = load_prompts(choice, None, len(run.prompts))
        except ValueError:
            continue
        asked = (Request.asked(m, config, False, cached_dtype()) for m in (base, cllm))
        if find_recorded(DATASETS_DIR, prompts, *asked) is run:
            return run, choice
    return None


class DatasetForm(NamedTuple):
    """The prompt-set section's first values: its form's settings and its twelve outputs."""
    source: str
    limit: int
    n: int
    max_new: int
    decoder: str
    outputs: tuple
    run: DatasetRun | None  # the recorded run it opens on


def first_dataset(base: str, cllm: str) -> DatasetForm:
    """The settings and outputs of the pair's opening run where one ships (so a first visit shows figures and
    collocations, and Run serves it at once), else the defaults with empty outputs."""
    opening = opening_run(base, cllm)
    if opening is None:
        return DatasetForm(HELDOUT, 64, DECODING.n, DECODING.max_new_tokens, DEFAULT_DECODER, (None,) * 11 + ("",), None)
    run, choice = opening
    meta = run.trajs["cllm"][0].meta
    outputs = dataset_outputs(run.trajs, run.bench, EXCLUDE_FIRST, False, meta.decoder) + (run.trajs, recorded_note(run))
    return DatasetForm(choice, len(run.prompts), meta.n, meta.max_new_tokens, meta.decoder, outputs, run)


def dataset_section(explore, tabs: gr.Tabs, race: gr.State) -> tuple[tuple, DatasetRun | None]:
    """The prompt-set accordion: both models over a set, its tables, charts and clickable collocations. Returns
    the inputs the sweep shares (base, cllm, source, upload, limit, max_new) and the recorded run it opened on."""
    first_base, first_cllm = app_pair()
    first = first_dataset(first_base, first_cllm)
    (per_prompt_first, agg_first, ratios_first, dist_first, csv_first, ff_first, st_first, by_block_first,
     by_pass_first, bench_first, dataset_first, note_first) = first.outputs
    with gr.Accordion("A prompt set", open=True):
        with gr.Row():
            base = gr.Textbox(first_base, label="Base model", elem_id="stats-base")
            cllm = gr.Textbox(first_cllm, label="CLLM", elem_id="stats-cllm")
            source = gr.Radio([HELDOUT, CODE, UPLOAD], value=first.source, label="Prompts", elem_id="stats-source")
            upload = prompt_file_box("stats-upload")
        with gr.Row():
            limit = gr.Number(first.limit, label=f"Number of prompts (1 to {MAX_RUNS})", precision=None,
                              elem_id="stats-limit")
            n = gr.Number(first.n, label="Block size n", precision=None, elem_id="stats-n")
            max_new = gr.Number(first.max_new, label="Max new tokens", precision=None, elem_id="stats-tokens")
            exclude = gr.Dropdown([(v, k) for k, v in EXCLUDE_LABELS.items()], value=EXCLUDE_FIRST,
                                  label="Leave out runs flagged by", elem_id="stats-exclude",
                                  scale=2)  # its labels are long; at scale 1 the arrow covered the value
            hide_loops = gr.Checkbox(False, label="Hide collocations inside a loop", elem_id="stats-hide-loops")
            decoder = gr.Dropdown(list(DECODERS), value=first.decoder, label="Decoder", elem_id="stats-decoder")
            go = gr.Button("Run both models over the set", variant="primary", elem_id="stats-dataset")
        note = gr.Markdown(note_first, elem_id="stats-dataset-note")
        ratios = gr.Dataframe(ratios_first, label="Table 3 view: the paper's fast-forward rate and stationary count "
                              "per run, base vs CLLM, beside the paper's range (flagged runs left out)",
                              headers=TABLE3_COLUMNS, interactive=False)
        bench = gr.Dataframe(bench_first, label="Bench on the same prompts: our greedy AR and Jacobi beside HF "
                             f"generate (greedy) and HF prompt lookup (draft {PeerConfig.draft}). HF's passes leave "
                             "out its prefill, which also yields the first token: one pass fewer per prompt than ours",
                             headers=BENCH_COLUMNS, interactive=False, wrap=True)
        agg = gr.Dataframe(agg_first, label="Per model: all runs, then without the flagged ones",
                           headers=[COLUMN_NAMES[c] for c in AGG_COLUMNS], interactive=False, wrap=True)
        with gr.Row():
            by_block = gr.Dataframe(by_block_first, label="Fast-forward rate (paper, tokens/pass) by block",
                                    interactive=False, headers=RATE_COLUMNS["block"], max_height=300)
            by_pass = gr.Dataframe(by_pass_first, label="Tokens each pass adds (paper count) by pass", interactive=False,
                                   headers=RATE_COLUMNS["pass"], max_height=300)
        dist = gr.Plot(dist_first)
        per_prompt = gr.Dataframe(per_prompt_first, label="Per prompt", headers=PROMPT_COLUMNS, interactive=False,
                                  max_height=300, wrap=True)  # wrapped headers: every column fits at 1400 px
        csv = gr.File(csv_first, label="Per-prompt table (CSV, raw column names)")
        gr.Markdown("**Collocations**: the spans the CLLM most often fast-forwards or holds stationary "
                    "(click a column header to sort; **click a row** to open its first example in Explore, "
                    "paused at that pass with the span ringed).")
        # one above the other: side by side, their seven columns ran past half the page
        ff = gr.Dataframe(ff_first, label="Fast-forwarded spans", headers=DISPLAY_COLUMNS, interactive=False,
                          max_height=400, elem_id="stats-ff", wrap=True, column_widths=DISPLAY_WIDTHS)
        st = gr.Dataframe(st_first, label="Stationary spans", headers=DISPLAY_COLUMNS, interactive=False,
                          max_height=400, elem_id="stats-st", wrap=True, column_widths=DISPLAY_WIDTHS)
        dataset = gr.State(dataset_first)  # this visitor's last dataset run: {"base": [...], "cllm": [...]}
        # No Gradio limit: a recorded run is served at once; live model work waits in model_worker's line.
        go.click(run_dataset, [base, cllm, source, upload, limit, n, max_new, exclude, hide_loops, decoder],
                 [per_prompt, agg, ratios, dist, csv, ff, st, by_block, by_pass, bench, dataset, note],
                 api_name="stats_dataset", show_progress_on=ratios,  # one bar, not one per table
                 concurrency_limit=None)
        for spans in (ff, st):
            spans.select(open_collocation, dataset,
                         [explore.player, explore.status, explore.download, race, tabs, explore.prompt],
                         api_visibility="private")
    return (base, cllm, source, upload, limit, max_new), first.run


def build(explore, tabs: gr.Tabs) -> None:
    """Adds the tab; `explore` (explore_tab.ExploreView) is charted and shows clicked collocations, `tabs`
    switches to it."""
    race = explore.race
    with gr.Tab("Stats", id="stats"):
        gr.Markdown(EXPLAIN)
        with gr.Accordion("This run (from the Explore tab)", open=True):
            chart = gr.Button("Chart the current run", elem_id="stats-chart")
            opening = explore.opening  # charted until the visitor's first run: the tab opens with charts
            first = run_charts(opening) if opening is not None else (None,) * 6
            charted = gr.Markdown(charted_note(opening, "the race Explore opened on"), elem_id="stats-charted")
            table = gr.Dataframe(first[0], label="Table 3 view, base vs CLLM (ratio = CLLM ÷ base; only rows with a "
                                 "paper range compare with the paper)", headers=TABLE3_COLUMNS, interactive=False)
            with gr.Row():
                convergence, fast, rate = (gr.Plot(figure) for figure in first[1:4])
            with gr.Row():
                stationary, iterations = (gr.Plot(figure) for figure in first[4:])
        charts = [table, convergence, fast, rate, stationary, iterations]
        chart.click(run_charts, race, charts, api_name="stats_run", show_progress_on=table)
        race.change(follow_run, race, charts, api_visibility="private", show_progress_on=table)
        race.change(follow_note, race, charted, api_visibility="private", show_progress=False)
        sweep_section(*dataset_section(explore, tabs, race))
