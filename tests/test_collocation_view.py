"""The collocation tables as shown: whitespace visible, look-alike spans told apart, counts first, places
counted as the player counts, and a shown row read back to the raw places."""
import pandas as pd

from cllm.collocations import COLUMNS
from cllm.trajectory import Block, RunMeta, Trajectory
from cllm.ui.collocation_view import DISPLAY_COLUMNS, display_table, row_place

TEXT = {1: "self", 2: ".", 3: "self.", 4: " ", 5: "\n"}


def traj(*states):
    meta = RunMeta(model="m", n=4, max_new_tokens=8, vocab_size=10)
    return Trajectory(meta=meta, prompt_ids=[1], prompt="p", token_text=TEXT,
                      blocks=[Block(states=[list(s) for s in states], iteration_seconds=[0.1] * (len(states) - 1))])


def raw_row(text, tokens, position):
    return {"text": text, "tokens": tokens, "cllm_count": 3, "cllm_share": 0.123456, "base_count": 1,
            "base_share": 0.5, "in_loop": 1, "run": 0, "block": 0, "iteration": 1, "position": position}


def test_whitespace_and_look_alikes_are_told_apart():
    runs = [traj([9, 9, 9, 9], [1, 2, 3, 4]), traj([9, 9, 9, 9], [4, 5, 3, 3])]
    frame = pd.DataFrame([raw_row("self.", 2, 0), raw_row("self.", 1, 2), raw_row(" \n", 2, 0) | {"run": 1}],
                         columns=COLUMNS)
    shown = display_table(frame, runs)
    assert list(shown.columns) == DISPLAY_COLUMNS and DISPLAY_COLUMNS[:2] == ["CLLM count", "base count"]
    assert shown["span"].tolist() == ["self.", "self.", "␣↵"]  # no blank row
    assert shown["tokens (pieces)"].tolist() == ["self | .", "self.", "␣ | ↵"]  # the two "self." differ
    assert shown["in a loop"].tolist() == [1, 1, 1] and shown["CLLM share"][0] == 0.123 and shown["prompt #"].tolist() == [1, 1, 2] and shown["block"][0] == 1


def test_a_shown_row_reads_back_to_the_raw_places():
    frame = pd.DataFrame([raw_row("self.", 2, 0) | {"iteration": 1}], columns=COLUMNS)
    row = display_table(frame, [traj([9, 9, 9, 9], [1, 2, 3, 4])]).iloc[0].tolist()
    assert row_place(row) == {"text": "self.", "run": 0, "block": 0, "iteration": 1, "position": 0, "tokens": 2}
    assert row_place([1, 1, 0, "x", "two"])["tokens"] == "two"  # left for the caller's check


def test_a_long_span_is_cut_and_whole_in_its_pieces():
    frame = pd.DataFrame([raw_row("x" * 40, 1, 0)], columns=COLUMNS)
    text = {1: "x" * 40}
    run = Trajectory(meta=RunMeta(model="m", n=1, max_new_tokens=1, vocab_size=2), prompt_ids=[1], prompt="p",
                     token_text=text, blocks=[Block(states=[[0], [1]], iteration_seconds=[0.1])])
    shown = display_table(frame, [run]).iloc[0]
    assert len(shown["span"]) == 32 and shown["span"].endswith("…") and shown["tokens (pieces)"] == "x" * 40
