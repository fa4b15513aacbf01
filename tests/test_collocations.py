"""Collocation events and table on hand-made trajectories with known answers."""
import pytest

from cllm import collocations as C
from cllm.trajectory import Block, RunMeta, Trajectory

# fixed point [1,2,3,4,5]: iteration 2 commits positions 1..4 at once (Δ = 4) -> one fast-forward
# event spanning [2,3,4,5]; positions 2 and 4 become stationary at iteration 1, not adjacent -> 2 events.
JUMP = Block(states=[[9, 9, 3, 9, 5], [1, 9, 3, 9, 5], [1, 2, 3, 4, 5]], iteration_seconds=[0.1, 0.2])
# positions 2,3 stationary at iteration 1 and adjacent -> one stationary event [3, 4]
PAIR = Block(states=[[0, 0, 0, 0], [1, 0, 3, 4], [1, 2, 3, 4]], iteration_seconds=[0.1, 0.1])
SLOW = Block(states=[[0, 0], [2, 0], [2, 3]], iteration_seconds=[0.1, 0.1])


def traj(*blocks):
    t = Trajectory(meta=RunMeta(n=5, max_new_tokens=50, vocab_size=10), prompt_ids=[1], blocks=list(blocks))
    t.token_text = {i: chr(ord("a") + i) for i in range(10)}
    return t


def test_fast_forward_events():
    assert C.fast_forward_events(JUMP) == [(2, 1, 5)]
    assert C.fast_forward_events(SLOW) == []


def test_stationary_runs_merge_adjacent_positions():
    assert C.stationary_events(JUMP) == [(1, 2, 3), (1, 4, 5)]
    assert C.stationary_events(PAIR) == [(1, 2, 4)]


def test_events_remember_where_they_happened():
    evs = C.events([traj(SLOW), traj(SLOW, JUMP)])
    ff = [e for e in evs if e.kind == "fast_forwarded"]
    assert ff == [C.Event("fast_forwarded", (2, 3, 4, 5), run=1, block=1, iteration=2, start=1)]


def test_collocation_table_counts_and_shares():
    cllm = [traj(JUMP), traj(JUMP, PAIR)]
    base = [traj(JUMP), traj(SLOW)]
    table = C.collocation_table(cllm, base, "stationary")
    # cllm stationary events: [3] x2, [5] x2, [3,4] x1 -> total 5; base: [3], [5] -> total 2
    row = table.set_index("text").loc["de"]
    assert (row["cllm_count"], row["base_count"], row["cllm_share"]) == (1, 0, 1 / 5)
    row = table.set_index("text").loc["d"]
    assert (row["cllm_count"], row["base_count"], row["base_share"]) == (2, 1, 0.5)
    assert table["cllm_count"].tolist() == sorted(table["cllm_count"], reverse=True)
    ff = C.collocation_table(cllm, base, "fast_forwarded")
    assert ff.loc[0, "text"] == "cdef" and ff.loc[0, "cllm_count"] == 2 and (ff.loc[0, "run"], ff.loc[0, "block"]) == (0, 0)


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        C.collocation_table([], [], "other")


def test_spans_inside_a_loop_are_marked_and_can_be_hidden():
    # output "x\n" "x\n" "y\n" "x\n": the line "x" occurs 3 times (a loop). Both blocks fast-forward the span
    # (2, 1, 2) = "\nx\n": in block 0 it lies inside the loop; in block 1 its first "\n" closes the "y" line.
    loop = Block(states=[[0] * 4, [1, 0, 0, 0], [1, 2, 1, 2]], iteration_seconds=[0.1, 0.1])
    out = Block(states=[[0] * 4, [3, 0, 0, 0], [3, 2, 1, 2]], iteration_seconds=[0.1, 0.1])
    t = traj(loop, out)
    t.token_text = {1: "x", 2: "\n", 3: "y"}
    assert [e.in_loop for e in C.events([t]) if e.kind == "fast_forwarded"] == [True, False]
    row = C.collocation_table([t], [], "fast_forwarded").iloc[0]
    assert (row["text"], row["cllm_count"], row["in_loop"]) == ("\nx\n", 2, 1)
    row = C.collocation_table([t], [], "fast_forwarded", hide_loops=True).iloc[0]
    assert (row["cllm_count"], row["in_loop"], row["block"]) == (1, 0, 1)
