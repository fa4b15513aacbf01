"""Moments of a race on hand-made trajectories: where each finder points, and the player clock of it."""
import pytest

from cllm import moments
from cllm.moments import Moment
from cllm.race import Race
from cllm.trajectory import Block, RunMeta, Trajectory

# fixed point [1,2,3,4,5]; c = [0, 1, 5]: pass 1 commits 1 token and makes positions 2 and 4 stationary,
# pass 2 commits the other 4 (fast-forwards 3)
JUMP = Block(states=[[9, 9, 3, 9, 5], [1, 9, 3, 9, 5], [1, 2, 3, 4, 5]], iteration_seconds=[0.1, 0.2])
STAIRS = Block(states=[[9, 9, 9], [1, 9, 9], [1, 2, 9], [1, 2, 3]], iteration_seconds=[0.1] * 3)  # one per pass
TWO = Block(states=[[6, 6], [7, 8]], iteration_seconds=[0.05])  # both right after one pass


def traj(*blocks, model: str = "m"):
    return Trajectory(meta=RunMeta(model=model, n=5, max_new_tokens=20, vocab_size=10), prompt_ids=[1],
                      blocks=list(blocks), prompt="p", token_text={})


RACE = Race(base=traj(STAIRS, STAIRS, model="base"), cllm=traj(TWO, JUMP, model="cllm"))


def test_clock_counts_the_passes_before_the_row():
    assert moments.clock(RACE, Moment("cllm", 0, 0, 0, 2)) == 0
    assert moments.clock(RACE, Moment("cllm", 1, 2, 1, 5)) == 1 + 2
    assert moments.clock(RACE, Moment("base", 1, 3, 0, 3)) == 3 + 3


@pytest.mark.parametrize("moment", [Moment("cllm", 2, 1, 0, 1), Moment("cllm", 1, 3, 0, 1),
                                    Moment("cllm", 0, 1, 0, 3), Moment("base", 5, 0, 0, 0),
                                    Moment("cllm", 1, 0, 0, 5)])  # a later guess row: never on screen alone
def test_moments_outside_the_race_are_refused(moment):
    with pytest.raises(ValueError, match="block"):
        moments.clock(RACE, moment)


@pytest.mark.parametrize("args", [("judge", 0, 0, 0, 1), ("cllm", -1, 0, 0, 1), ("cllm", 0, 0, 3, 2)])
def test_malformed_moments_are_refused(args):
    with pytest.raises(ValueError):
        Moment(*args)


def test_finders_point_at_the_known_places():
    assert moments.first_guess(RACE) == Moment("cllm", 0, 0, 0, 2)
    assert moments.first_pass(RACE) == Moment("base", 0, 1, 0, 1)
    assert moments.fixed_point(RACE) == Moment("base", 0, 3, 0, 3)
    assert moments.race_end(RACE) == Moment("cllm", 1, 2, 0, 5)
    assert moments.slowest_block(RACE) == Moment("base", 0, 3, 0, 3)  # both 1 pass/token: the first
    assert moments.slowest_block(RACE, "cllm") == Moment("cllm", 0, 1, 0, 2)  # 1 pass / 2 tokens > 2 / 5
    assert moments.slowest_block(RACE, "cllm", first=1) == Moment("cllm", 1, 2, 0, 5)
    assert moments.slowest_block(RACE, "cllm", first=9) == Moment("cllm", 1, 2, 0, 5)  # past the end: the last
    assert moments.biggest_fast_forward(RACE) == Moment("cllm", 1, 2, 1, 5)
    assert moments.biggest_fast_forward(RACE, "base") is None  # a staircase never fast-forwards
    assert moments.longest_stationary(RACE) == Moment("cllm", 1, 1, 2, 3)  # two runs of one: the earliest
    assert moments.longest_stationary(RACE, "base") is None


def test_summary_numbers_of_both_sides():
    numbers = moments.summary_numbers(RACE)
    assert numbers["base_forward_passes"] == 6 and numbers["base_tokens"] == 6 and numbers["base_tpf"] == 1.0
    assert numbers["cllm_forward_passes"] == 3 and numbers["cllm_tokens"] == 7
    assert numbers["cllm_fast_forwarded"] == 3 + 1 and numbers["cllm_stationary"] == 2


def test_biggest_recycled_win_rings_what_the_draft_gave():
    from cllm import moments
    from cllm.race import Race
    from cllm.trajectory import Block, RunMeta, Trajectory

    # pass 1: own state wins (+1); pass 2: draft 0 wins (+3 after 1 final); on the CLLM side a draft wins +2
    base = Block([[0] * 5, [1, 0, 0, 0, 0], [1, 2, 3, 4, 0], [1, 2, 3, 4, 5]], [0.1] * 3,
                 drafts=[[[9]], [[2, 3]], []], winners=[-1, 0, -1], gains=[1, 3, 1])
    cllm = Block([[0] * 5, [1, 2, 0, 0, 0], [1, 2, 3, 4, 5]], [0.1] * 2, drafts=[[[2]], [[3]]], winners=[0, -1],
                 gains=[2, 3])
    run = lambda b: Trajectory(RunMeta(n=5, max_new_tokens=5, vocab_size=10), [1], [b])  # noqa: E731
    race = Race(run(base), run(cllm))
    assert moments.biggest_recycled_win(race) == moments.Moment("base", 0, 2, 1, 4)
    assert moments.biggest_recycled_win(race, ("cllm",)) == moments.Moment("cllm", 0, 1, 0, 2)
    assert moments.biggest_recycled_win(Race(run(Block(base.states, [0.1] * 3)), run(Block(cllm.states, [0.1] * 2)))) is None
