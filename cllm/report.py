"""The text report of `python -m cllm stats`: pure formatting of a pair's dataset run, no model calls."""
from __future__ import annotations

import pandas as pd

from cllm.bench import DATASET_COLUMNS, format_table
from cllm.collocations import KINDS, collocation_table
from cllm.evaluate import Table3, aggregate, kept, rate_breakdown, ratio_shown, table3
from cllm.trajectory import Trajectory


def pair_report(trajs: dict[str, list[Trajectory]], frame: pd.DataFrame, bench_rows: list[dict], exclude: str,
                top: int = 10, hide_loops: bool = False) -> str:
    """Aggregates with and without flagged runs, the Table 3 view, the bench table, the paper rate's
    breakdowns and the collocations, as one printable text."""
    with pd.option_context("display.width", 200, "display.max_columns", 24):  # wide tables stay on one line
        return "\n\n".join(_parts(trajs, frame, bench_rows, exclude, top, hide_loops)) + "\n"


def _parts(trajs, frame, bench_rows, exclude, top, hide_loops) -> list[str]:
    parts = ["all runs:\n" + aggregate(frame).to_string(index=False)]
    if exclude != "none":
        parts.append(f"without runs flagged {exclude}:\n" + aggregate(kept(frame, exclude)).to_string(index=False))
    parts.append(table3_text(table3(frame, exclude)))
    parts.append("bench (same runs; HF peers beside them):\n" + format_table(bench_rows, DATASET_COLUMNS))
    by_block, by_pass = rate_breakdown(trajs, frame, exclude)
    parts.append("paper ff rate by block:\n" + by_block.round(3).to_string())
    parts.append("tokens each pass adds (paper count) by pass:\n" + by_pass.round(3).to_string())
    for kind in KINDS:
        table = collocation_table(trajs["cllm"], trajs["base"], kind, top, hide_loops)
        parts.append(f"most {kind} spans (CLLM):\n"
                     + table.drop(columns=["run", "block", "iteration", "position"]).to_string())
    return parts


def table3_text(table: Table3) -> str:
    return (f"Table 3 view (runs kept: base {table.runs['base']}, cllm {table.runs['cllm']}; excluded: "
            f"{table.exclude}); compare only the rows with a paper range with the paper:\n"
            + table.frame().assign(ratio=lambda f: ratio_shown(f["ratio"]).map(_three_decimals))
            .to_string(index=False, float_format="{:.3f}".format))


def _three_decimals(x):
    return f"{x:.3f}" if isinstance(x, float) else x
