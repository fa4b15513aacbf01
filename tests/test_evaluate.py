"""Exclusion flags, aggregates with and without flagged runs, and the Table 3 view, on hand-made data."""
import math

import pandas as pd
import pytest

from cllm import evaluate as E
from cllm.trajectory import Block, RunMeta, Trajectory

TEXT = {0: "<eos>", 1: "x", 2: "\n", 3: "y", 5: "z"}


def run(*fixed_points, eos=None):
    """A run whose blocks go guess -> first token -> whole fixed point (so each fast-forwards the rest)."""
    blocks = [Block([[9] * len(fp), fp[:1] + [9] * (len(fp) - 1), fp], [0.1, 0.1]) for fp in fixed_points]
    t = Trajectory(RunMeta(n=4, max_new_tokens=64, vocab_size=10, eos_token_id=eos), [1], blocks)
    t.token_text = TEXT
    return t


def test_token_run_is_the_authors_rule():
    assert E.token_run([5] * 10, None)
    assert not E.token_run([5] * 9 + [3], None)
    assert not E.token_run([5] * 9 + [0] + [5], 0)  # the output ends at EOS: a run must lie before it
    assert E.token_run([3] + [5] * 10 + [0], 0)


def test_loop_flags_mark_lines_seen_three_times_and_token_runs():
    # lines "x\n" "x\n" "y\n" "x\n": "x" occurs 3 times, "y" once
    assert E.loop_flags(run([1, 2, 1, 2], [3, 2, 1, 2])) == [True] * 4 + [False, False, True, True]
    assert E.loop_flags(run([1, 2, 3, 2], [1, 2])) == [False] * 6  # twice is not a loop
    assert E.loop_flags(run([3, 5, 5, 5, 5, 5], [5, 5, 5, 5, 5, 3])) == [False] + [True] * 10 + [False]


def test_prompt_frame_flags_runs_and_aggregates_with_and_without_them():
    frame = E.prompt_frame([run([1, 2, 1, 2], [1, 2, 3, 2]), run([3, 2, 5, 2])], "cllm")
    assert frame["looping"].tolist() == [True, False] and frame["token_run"].tolist() == [False, False]
    assert E.aggregate(frame).loc[0, "looping"] == 1 and E.aggregate(frame).loc[0, "prompts"] == 2
    assert E.kept(frame, "looping")["prompt"].tolist() == [1] and len(E.kept(frame, "none")) == 2
    with pytest.raises(ValueError, match="exclude must be one of"):
        E.kept(frame, "all")


def frame_of(rows):
    columns = ["model", "ff_rate", "stationary", "tpf", "fast_forwarded", "token_run", "looping"]
    return pd.DataFrame(rows, columns=columns)


def test_table3_means_per_run_ratio_and_paper_range():
    frame = frame_of([
        ("base", 1.0, 2, 1.0, 0, False, False), ("base", 1.2, 4, 1.1, 1, False, False),
        ("cllm", 3.0, 9, 2.0, 8, False, False), ("cllm", 3.6, 15, 2.4, 12, False, False),
        ("cllm", 16.0, 60, 15.0, 60, True, False),  # a 10-token run: the authors leave it out
    ])
    every = E.table3(frame)
    assert every.runs == {"base": 2, "cllm": 3}
    assert every.rows[0].metric.startswith("ff_rate") and every.rows[0].paper == "2.0-6.8x"
    assert math.isclose(every.rows[0].cllm, (3.0 + 3.6 + 16.0) / 3)
    paper = E.table3(frame, "token_run")
    ff, st, tpf, surplus = paper.rows
    assert math.isclose(ff.ratio, 3.3 / 1.1) and math.isclose(st.ratio, 12 / 3)
    assert tpf.paper == "-" and surplus.paper == "-" and math.isclose(surplus.ratio, 10 / 0.5)
    assert paper.runs == {"base": 2, "cllm": 2}
    assert paper.frame().columns.tolist() == ["metric", "base", "cllm", "ratio", "paper"]
