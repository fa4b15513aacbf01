"""The Stats tab's block-size sweep (the paper's Fig. 3): TPF and wall-clock speed-up against n for both models
over the prompt set the tab's form names. A sweep of the real pair holds a 2-core CPU for about half an hour, so
a recorded sweep of exactly the request (kept beside the pair's recorded run, cllm.dataset_run) is served at
once, and the section opens on it; any other sweep waits its turn for the models (model_worker) and runs live."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from cllm import evaluate
from cllm.dataset_run import DATASETS_DIR, ROLES, DatasetRun, find_sweep, runs_of_pair
from cllm.models import cached_dtype
from cllm.shipped import Request
from cllm.ui import figures
from cllm.ui.common import DECODING, counting_progress, load_models, model_name, on_gpu, read_config, user_errors
from cllm.ui.model_worker import MAX_LINE, MODELS, LineFull, waiting_note
from cllm.ui.prompt_sets import load_prompts
from cllm.ui.stats_tables import COLUMN_NAMES, SWEEP_COLUMNS, tidy

SWEEP_CHOICES = [str(n) for n in evaluate.SWEEP_NS]
LIVE_NOTE = "Swept live just now."
RECORDED_AT_ONCE = "The sweep this section opened with was recorded: its settings serve it at once."


def run_sweep(base, cllm, source, upload, limit, ns, max_new_tokens, progress=gr.Progress()):
    """Yields (table, TPF chart, speed-up chart, note): a recorded sweep of exactly this request at once, else
    waiting notes while other model work runs, then the live sweep."""
    with user_errors():
        if not ns:
            raise ValueError("pick at least one block size n")
        sizes = sorted({int(n) for n in ns})
        config = read_config(DECODING.n, max_new_tokens, DECODING.seed, DECODING.init)  # n: swept below
        prompts = load_prompts(source, upload, limit)
        names = [model_name(base, "base"), model_name(cllm, "CLLM")]
        recorded = find_sweep(DATASETS_DIR, prompts, *(Request.asked(m, config, False, cached_dtype()) for m in names),
                              sizes)
    if recorded is not None:
        yield sweep_outputs(recorded[1], recorded_note(recorded[0]))
        return
    try:
        with MODELS.turn(max_line=MAX_LINE) as waits:
            hint = RECORDED_AT_ONCE if any(run.sweep for run in runs_of_pair(DATASETS_DIR, *names)) else ""
            for ahead in waits:
                yield gr.skip(), gr.skip(), gr.skip(), waiting_note(ahead, hint)
            yield gr.skip(), gr.skip(), gr.skip(), "Sweeping live…"  # a visitor who left is noticed here
            with user_errors():
                sweep = live_sweep(names, prompts, config, sizes, progress)
    except LineFull as e:  # raised on joining, before anything was yielded
        raise gr.Error(f"{e}: try again in a few minutes", print_exception=False) from None
    yield sweep_outputs(sweep.to_dict("records"), LIVE_NOTE)


@on_gpu(duration=300)
def live_sweep(names: list[str], prompts: list[str], config, sizes: list[int], progress) -> pd.DataFrame:
    """run_sweep's model work, once the models are this request's."""
    models = dict(zip(ROLES, load_models(names, progress)))
    return evaluate.n_sweep(models, prompts, config, sizes, counting_progress(progress, 2 * len(sizes) * len(prompts)))


def sweep_outputs(rows: list[dict], note: str) -> tuple:
    """The table and both charts of a sweep's rows (n ascending, base before CLLM), and the note."""
    sweep = pd.DataFrame(sorted(rows, key=lambda r: (r["n"], ROLES.index(r["model"]))))[SWEEP_COLUMNS]
    return (tidy(sweep), figures.make_sweep_figure(sweep, "tpf"), figures.make_sweep_figure(sweep, "speedup"), note)


def recorded_note(run: DatasetRun) -> str:
    return (f"**Recorded sweep** of {len(run.prompts)} prompts of `{run.prompt_set}`, decoded on {run.recorded} "
            f"({run.machine}): the TPF is what a live sweep gives; the speed-ups are that machine's. Change the "
            "models, prompts, tokens or the n to sweep live.")


def first_sweep(opening: DatasetRun | None) -> tuple:
    """The section's first outputs: the opening run's recorded sweep at every n the form ticks (the form's
    prompts and tokens are that run's, so Sweep asks for it again), else empty ones."""
    covers = opening is not None and opening.sweep is not None and \
        {row["n"] for row in opening.sweep} >= set(evaluate.SWEEP_NS)
    if not covers:
        return None, None, None, ""
    return sweep_outputs([r for r in opening.sweep if r["n"] in evaluate.SWEEP_NS], recorded_note(opening))


def sweep_section(inputs: tuple, opening: DatasetRun | None) -> None:
    """The sweep accordion; `inputs` are the prompt-set section's (base, cllm, source, upload, limit, max_new),
    `opening` the recorded run that section opened on (or None)."""
    table_first, tpf_first, speed_first, note_first = first_sweep(opening)
    with gr.Accordion("Block-size sweep (the paper's Fig. 3)", open=False):
        with gr.Row():
            ns = gr.CheckboxGroup(SWEEP_CHOICES, value=SWEEP_CHOICES, label="n", elem_id="stats-sweep-ns")
            go = gr.Button("Sweep", elem_id="stats-sweep")
        note = gr.Markdown(note_first, elem_id="stats-sweep-note")
        table = gr.Dataframe(table_first, headers=[COLUMN_NAMES[c] for c in SWEEP_COLUMNS], interactive=False)
        with gr.Row():
            tpf_plot, speed_plot = gr.Plot(tpf_first), gr.Plot(speed_first)
        base, cllm, source, upload, limit, max_new = inputs
        # No Gradio limit: a recorded sweep is served at once; live model work waits in model_worker's line.
        go.click(run_sweep, [base, cllm, source, upload, limit, ns, max_new], [table, tpf_plot, speed_plot, note],
                 api_name="stats_sweep", show_progress_on=table, concurrency_limit=None)
