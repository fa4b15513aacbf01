"""The paper's fast-forward rate and stationary count, as the authors' code counts them.

Hand-made blocks encode one rule each (worked out in the comments); recorded runs are held to a direct
transcription of the authors' counting loop (Consistency_LLM eval/gsm8k/speedup.py)."""
from pathlib import Path

import numpy as np
import pytest

from cllm import stats
from cllm.race import load_race
from cllm.trajectory import Block, RunMeta, Trajectory

RECORDED = sorted(Path(__file__).parent.parent.joinpath("saved_trajectories").glob("*.json"))
# Guess [1,2,9,9] already has the right prefix [1,2] (c_0 = 2). c = [2, 3, 4]. The authors' running count
# starts at 0, so pass 1 is credited 3 (not 1), pass 2 gains 1: rate (3 + 1) / 2 = 2.0. Surplus: Δ = [1, 1] -> 0.
GUESS_PREFIX = Block([[1, 2, 9, 9], [1, 2, 3, 9], [1, 2, 3, 4]], [0.1, 0.1])
# AR-like: one token per pass, rate 1.0.
SLOW = Block([[0, 0, 0], [4, 0, 0], [4, 4, 0], [4, 4, 4]], [0.1] * 3)
# Reaches the fixed point at state 2, then a confirming copy: passes [2, 1] -> 1.5 (with the copy as a
# pass it would be 3 / 3 = 1.0).
CONFIRMED = Block([[9, 9, 9], [1, 2, 9], [1, 2, 3], [1, 2, 3]], [0.1] * 3)
# A last block cut after EOS (7) at position 1, as the decoder records it: passes [1, 1] -> 1.0. Uncut, the
# second pass would also be credited the right tokens after EOS: [1, 3] -> 2.0.
EOS_CUT = Block([[9, 9], [1, 9], [1, 7]], [0.1, 0.1])
EOS_UNCUT = Block([[9, 9, 9, 9], [1, 9, 9, 9], [1, 7, 5, 6]], [0.1, 0.1])


def run(*blocks, eos=None):
    return Trajectory(RunMeta(n=4, max_new_tokens=32, vocab_size=10, eos_token_id=eos), [1], list(blocks))


def test_correct_guess_prefix_is_credited_to_pass_one():
    assert stats.paper_passes(GUESS_PREFIX) == [3, 1]
    assert stats.paper_ff_rate(GUESS_PREFIX) == 2.0
    assert stats.fast_forwarded(GUESS_PREFIX) == 0  # the surplus count does not credit the guess


def test_rate_is_a_mean_of_per_block_means():
    # blocks: 2.0 and 1.0 -> 1.5; total tokens over total passes would be (4 + 3) / (2 + 3) = 1.4
    assert stats.ff_rate(run(GUESS_PREFIX, SLOW)) == 1.5


def test_no_confirming_pass_in_the_denominator():
    assert stats.paper_states(CONFIRMED) == CONFIRMED.states[:3]
    assert stats.paper_passes(CONFIRMED) == [2, 1] and stats.paper_ff_rate(CONFIRMED) == 1.5


def test_eos_in_the_last_block():
    assert stats.paper_passes(EOS_CUT) == [1, 1]
    assert stats.ff_rate(run(SLOW, EOS_CUT, eos=7)) == 1.0
    assert stats.paper_ff_rate(EOS_UNCUT) == 2.0  # what the rule guards against


def test_a_guess_that_is_the_fixed_point_has_no_pass():
    done = Block([[3, 3], [3, 3]], [0.1])
    assert stats.paper_passes(done) == [] and stats.paper_ff_rate(done) is None
    assert stats.ff_rate(run(done, SLOW)) == 1.0 and np.isnan(stats.ff_rate(run(done)))


def test_breakdowns_carry_the_rate():
    traj = run(GUESS_PREFIX, CONFIRMED)
    assert stats.blocks_frame(traj)["ff_rate"].tolist() == [2.0, 1.5]
    gains = stats.iterations_frame(traj)["paper_gain"].tolist()
    assert gains[:4] == [3, 1, 2, 1] and np.isnan(gains[4])  # the confirming pass: not counted
    assert stats.run_summary(traj)["ff_rate"] == 1.75


def authors_counts(traj: Trajectory) -> tuple[float, int]:
    """Transcription of the authors' per-request loop (eval/gsm8k/speedup.py) over our blocks. Adapted only
    where our records differ: a block's width replaces their fixed n (our last block may be narrower), and
    each trajectory is given as their jacobi_forward returns it, up to the first state equal to the fixed point."""
    eos, per_block, fix_points = traj.meta.eos_token_id, [], 0
    for b, block in enumerate(traj.blocks):
        trajectory, width, last = stats.paper_states(block), block.width, b == len(traj.blocks) - 1
        fp, tracker, gains = trajectory[-1], [0] * width, []
        correct_cnt, eos_reached, eos_pos, steps, effective = 0, False, None, 0, width
        for k, ids in enumerate(trajectory):
            if k == 0:
                continue
            if eos_reached:
                break
            ff, contiguous = 0, True
            for i in range(width):
                if ids[i] == fp[i]:
                    tracker[i] += 1
                    if i + 1 > correct_cnt and contiguous:
                        ff += 1
                    if last and ids[i] == eos and contiguous:
                        effective, eos_reached, eos_pos = i + 1, True, i
                        correct_cnt += ff
                        break
                else:
                    tracker[i] = 0
                    if contiguous:
                        correct_cnt += ff
                        contiguous = False
            gains.append(ff)
            steps += 1
        if not gains:
            continue
        baseline, ptr, offset, take = {}, 0, None, True
        for pos in range(effective):
            if take:
                offset, take = gains[ptr], False
            baseline[pos] = steps - ptr
            offset -= 1
            if offset == 0:
                take, ptr = True, ptr + 1
        for pos in range(width):
            if tracker[pos] > baseline[pos]:
                fix_points += 1
            if last and pos == eos_pos:
                break
        per_block.append(np.average(gains))
    return float(np.average(per_block)), fix_points


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_runs_count_as_the_authors_code(path):
    race = load_race(path)
    for traj in (race.base, race.cllm):
        rate, fix_points = authors_counts(traj)
        s = stats.run_summary(traj)
        assert abs(s["ff_rate"] - rate) < 1e-6
        assert s["stationary"] == fix_points


def test_recorded_runs_are_not_trivial():
    """The comparison above would pass vacuously on AR-like runs: the recorded CLLM runs do fast-forward."""
    rates = [stats.ff_rate(load_race(p).cllm) for p in RECORDED]
    assert len(rates) == 13 and max(rates) > 1.5  # the tiny pair: 6 Jacobi races, 3 of recycle; the real pair: 4


def test_hand_made_runs_with_eos_count_as_the_authors_code():
    # EOS (7) right at pass 1 while position 1 is wrong: a stationary token, the last one counted
    eos_stationary = Block([[9, 9, 9], [1, 9, 7], [1, 2, 7]], [0.1, 0.1])
    for traj in (run(GUESS_PREFIX, CONFIRMED), run(SLOW, eos_stationary, eos=7), run(GUESS_PREFIX, EOS_CUT, eos=7)):
        rate, fix_points = authors_counts(traj)
        assert abs(stats.ff_rate(traj) - rate) < 1e-12
        assert stats.run_summary(traj)["stationary"] == fix_points
    assert authors_counts(run(SLOW, eos_stationary, eos=7)) == (1.25, 1)  # blocks 1.0 and (1 + 2) / 2


def test_the_terminal_view_names_both_counts():
    from cllm.render import summary_line, terminal_lines

    traj = run(GUESS_PREFIX, CONFIRMED)
    assert "1 fast-forwarded beyond each pass's first" in summary_line(traj)  # CONFIRMED: Δ = [2, 1, 0]
    assert "paper ff rate 1.75 tokens/pass" in summary_line(traj)
    lines = terminal_lines(traj, color=False)
    assert "paper ff rate 2.00 tokens/pass" in lines[0] and "paper ff rate 1.50 tokens/pass" in lines[4]


def surplus_from_totals(traj: Trajectory) -> int:
    """The surplus from what a reader sees (tokens, passes), corrected by passes that commit nothing and by
    right prefixes of the guesses, which no pass committed (the identity stats' docstring states)."""
    idle = sum(g == 0 for b in traj.blocks for g in stats.newly_committed(b))
    guessed = sum(stats.committed_curve(b)[0] for b in traj.blocks)
    return len(traj.tokens) - traj.forward_passes + idle - guessed


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_the_surplus_is_tokens_minus_passes_plus_idle_passes(path):
    race = load_race(path)
    for traj in (race.base, race.cllm):
        assert stats.run_summary(traj)["fast_forwarded"] == surplus_from_totals(traj)


def test_the_surplus_differs_from_tokens_minus_passes_by_the_confirming_pass():
    traj = run(GUESS_PREFIX, CONFIRMED)  # 7 tokens, 5 passes; CONFIRMED idles once, GUESS_PREFIX guessed 2
    assert stats.run_summary(traj)["fast_forwarded"] == surplus_from_totals(traj) == 1 != 7 - 5
