"""The Stats tab's tables as people read them: column names with units, rounded numbers, the paper's Table 3
view, and every table of a dataset run (live or recorded, cllm.dataset_run) from both models' runs."""
from __future__ import annotations

import pandas as pd

from cllm import evaluate
from cllm.bench import DATASET_COLUMNS
from cllm.collocations import collocation_table
from cllm.ui import figures
from cllm.ui.common import download_file
from cllm.ui.collocation_view import display_table

# Raw column (cllm.evaluate, cllm.bench; the CSV keeps these) -> the name a table shows, with its unit.
SPEEDUP = "speed-up vs own greedy AR (wall clock)"
COLUMN_NAMES = {
    "model": "model", "prompt": "prompt #", "runs": "runs", "decoder": "decoder", "prompts": "prompts", "n": "block size n",
    "tokens": "tokens", "forward_passes": "forward passes", "tpf": "tokens per pass",
    "fast_forwarded": "fast-forwarded tokens (beyond each pass's first)", "ff_rate": "fast-forward rate (paper, tokens/pass)",
    "stationary": "stationary tokens", "stationary_per_run": "stationary tokens per run (paper)",
    "decode_seconds": "decode time (s)", "ar_seconds": "greedy AR time (s)", "speedup": SPEEDUP,
    "tokens_per_s": "tokens/s", "vs_hf_greedy": "tokens/s ÷ HF greedy's",
    "matches_ar": "same text as greedy AR (share of runs)",
    "token_run": "10 identical tokens in a row", "token_runs": "runs with 10 identical tokens in a row",
    "looping": "repeats a line 3+ times", "block": "block", "pass": "pass",
}
TABLE3_NAMES = {  # cllm.evaluate.TABLE3_METRICS' per-prompt column -> the row label shown
    "ff_rate": "fast-forward rate (paper, tokens/pass)", "stationary": "stationary tokens (paper, per run)",
    "tpf": "tokens per pass (per run)", "fast_forwarded": "fast-forwarded tokens beyond each pass's first (per run)"}
TABLE3_COLUMNS = ["metric", "base", "CLLM", "ratio (CLLM ÷ base)", "paper's ratio"]
RATE_COLUMNS = {"block": ["block", "base (tokens/pass)", "CLLM (tokens/pass)"],
                "pass": ["pass", "base (tokens added)", "CLLM (tokens added)"]}
BENCH_COLUMNS = [COLUMN_NAMES[c] for c in DATASET_COLUMNS]
BENCH_COLUMNS[BENCH_COLUMNS.index(SPEEDUP)] = "speed-up vs own greedy AR (tokens/s)"  # bench's is a rate ratio
PROMPT_COLUMNS = [COLUMN_NAMES[c] if c != "matches_ar" else "same text as greedy AR" for c in evaluate.PROMPT_COLUMNS]
# evaluate.aggregate's order, "runs" first; not its two sums of seconds (tokens/s and the speed-up say it, and the
# table then fits 1400 px)
AGG_COLUMNS = ["runs", "model", "prompts", "tokens", "tpf", "forward_passes", "fast_forwarded", "stationary", "ff_rate",
               "stationary_per_run", "matches_ar", "token_runs", "looping", "tokens_per_s", "speedup"]
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
    # one short run often has no stationary token: its ratio is evaluate.NO_RATIO
    return tidy(table.assign(metric=labels, ratio=evaluate.ratio_shown(table["ratio"])), TABLE3_COLUMNS)


def rate_view(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """A rate_breakdown pivot (index block from 0, or pass from 1; a column per model) as the tab shows it:
    blocks counted from 1 as in the player, both models' columns even where one has no rows."""
    out = table.reindex(columns=["base", "cllm"]).reset_index()
    if by == "block":
        out["block"] = out["block"] + 1
    return tidy(out, RATE_COLUMNS[by])


def with_and_without(frame: pd.DataFrame, exclude: str) -> pd.DataFrame:
    """Per-model aggregates over all runs, then over the runs left once the flagged ones are dropped."""
    every = evaluate.aggregate(frame)
    every.insert(0, "runs", "all")
    if exclude == "none":
        return every[AGG_COLUMNS]
    kept = evaluate.aggregate(evaluate.kept(frame, exclude))
    kept.insert(0, "runs", f"without {exclude}")
    return pd.concat([every, kept], ignore_index=True)[AGG_COLUMNS]


def dataset_outputs(trajs: dict, bench: list[dict], exclude: str, hide_loops: bool, decoder: str) -> tuple:
    """The dataset section's outputs for both models' runs over a set ({"base": [...], "cllm": [...]}) and
    their bench rows: per prompt, aggregates, Table 3, distribution chart, CSV path, fast-forwarded and
    stationary collocations, the paper rate by block and by pass, bench."""
    frame = evaluate.pair_frame(trajs)
    csv = download_file("stats.csv", frame.assign(decoder=decoder).to_csv(index=False))
    ff, st = (collocation_table(trajs["cllm"], trajs["base"], kind, hide_loops=bool(hide_loops))
              for kind in ("fast_forwarded", "stationary"))
    by_block, by_pass = (rate_view(t, by) for t, by in zip(evaluate.rate_breakdown(trajs, frame, exclude), RATE_COLUMNS))
    return (tidy(frame.assign(prompt=frame["prompt"] + 1), PROMPT_COLUMNS), tidy(with_and_without(frame, exclude)),
            table3_view(evaluate.table3(frame, exclude).frame()),
            figures.make_distribution_figure(frame, "tpf"), csv, display_table(ff, trajs["cllm"]),
            display_table(st, trajs["cllm"]), by_block, by_pass,
            tidy(pd.DataFrame(bench, columns=DATASET_COLUMNS), BENCH_COLUMNS))
