"""Statistics on hand-made trajectories whose answers are worked out by hand in the comments."""
from cllm import stats
from cllm.stats import COMMITTED, CORRECT, FAST_FORWARDED, STATIONARY, WRONG
from cllm.trajectory import Block, RunMeta, Trajectory

# fixed point [1,2,3,4,5]; c = [0, 1, 5]; Δ = [1, 4] -> 3 fast-forwarded.
# position 2 and 4 are right from the guess on; iteration 1 "predicts" them while position 1 is
# wrong (2 > c_1 = 1, 4 > 1) and they never change: 2 stationary tokens.
JUMP = Block(states=[[9, 9, 3, 9, 5], [1, 9, 3, 9, 5], [1, 2, 3, 4, 5]], iteration_seconds=[0.1, 0.2])
# fixed point [1,2,3]; position 1 is right in the guess but changes (transient), then settles at 2;
# position 2 becomes right at iteration 1 past a wrong token and stays: 1 stationary. c = [0,1,3] -> 1 ff.
TRANSIENT = Block(states=[[7, 2, 7], [1, 8, 3], [1, 2, 3]], iteration_seconds=[0.1, 0.1])
# AR-like: one token per iteration, nothing gained.
SLOW = Block(states=[[0, 0, 0], [4, 0, 0], [4, 4, 0], [4, 4, 4]], iteration_seconds=[0.1, 0.1, 0.1])


def make_traj(*blocks, ar_tokens=None, ar_seconds=None):
    meta = RunMeta(n=5, max_new_tokens=20, vocab_size=10)
    return Trajectory(meta=meta, prompt_ids=[1], blocks=list(blocks), ar_tokens=ar_tokens, ar_seconds=ar_seconds)


def test_committed_prefix_and_curve():
    assert stats.committed_prefix([1, 2, 0, 4], [1, 2, 3, 4]) == 2
    assert stats.committed_prefix([1, 2], [1, 2]) == 2
    assert stats.committed_prefix([0, 2], [1, 2]) == 0
    assert stats.committed_curve(JUMP) == [0, 1, 5]
    assert stats.newly_committed(JUMP) == [1, 4]


def test_fast_forwarded():
    assert stats.fast_forwarded_per_iteration(JUMP) == [0, 3]
    assert stats.fast_forwarded(JUMP) == 3
    assert stats.fast_forwarded(TRANSIENT) == 1
    assert stats.fast_forwarded(SLOW) == 0


def test_stationary():
    assert stats.stationary_positions(JUMP) == {2: 1, 4: 1}
    assert stats.stationary_positions(TRANSIENT) == {2: 1}
    assert stats.stationary(SLOW) == 0


def test_cell_statuses():
    assert stats.cell_statuses(JUMP) == [
        [WRONG, WRONG, CORRECT, WRONG, CORRECT],  # the guess predicts nothing
        [COMMITTED, WRONG, STATIONARY, WRONG, STATIONARY],
        [COMMITTED, COMMITTED, FAST_FORWARDED, FAST_FORWARDED, FAST_FORWARDED],
    ]
    assert stats.cell_statuses(TRANSIENT) == [
        [WRONG, CORRECT, WRONG],  # position 1 is right but will change
        [COMMITTED, WRONG, STATIONARY],
        [COMMITTED, COMMITTED, FAST_FORWARDED],
    ]


def test_run_summary_and_frames():
    traj = make_traj(JUMP, SLOW, ar_tokens=[1, 2, 3, 4, 5, 4, 4, 4], ar_seconds=1.0)
    s = stats.run_summary(traj)
    assert s["tokens"] == 8 and s["forward_passes"] == 5 and s["tpf"] == 8 / 5
    assert s["fast_forwarded"] == 3 and s["stationary"] == 2
    assert abs(s["decode_seconds"] - 0.6) < 1e-9 and abs(s["speedup"] - 1.0 / 0.6) < 1e-9
    assert s["matches_ar"] is True
    blocks = stats.blocks_frame(traj)
    assert blocks["iterations"].tolist() == [2, 3] and blocks["fast_forwarded"].tolist() == [3, 0]
    per_it = stats.iterations_frame(traj)
    assert len(per_it) == 5
    assert per_it["committed"].tolist() == [1, 5, 1, 2, 3]
    assert per_it["correct"].tolist() == [3, 5, 1, 2, 3]


def test_summary_without_ar_and_mismatch():
    assert stats.run_summary(make_traj(SLOW))["matches_ar"] is None
    assert stats.run_summary(make_traj(SLOW, ar_tokens=[4, 4, 5]))["matches_ar"] is False
    assert stats.tokens_per_forward(0, 0) == 0.0
