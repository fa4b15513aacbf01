"""Moments of a race worth pointing at: where a lesson or a collocation row opens the player.

A `Moment` names one row of one block of one side of a race (base or CLLM) and a span of positions in
it. `clock` turns it into the race player's shared clock (forward passes since the start), so the player
can open paused exactly there. The finders are pure functions of the records; each returns None when
the race shows no such moment, so a caller can try another race.
"""
from __future__ import annotations

from dataclasses import dataclass

from cllm import stats
from cllm.collocations import fast_forward_events, stationary_events
from cllm.race import Race
from cllm.trajectory import Trajectory

ROLES = ("base", "cllm")


@dataclass(frozen=True)
class Moment:
    role: str  # "base" or "cllm": whose grid the moment is in
    block: int
    iteration: int  # row of the block's grid: 0 = the initial guess, the last = the fixed point
    start: int  # first position of the span to point at
    end: int  # one past its last position

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if not 0 <= self.start <= self.end or self.block < 0 or self.iteration < 0:
            raise ValueError(f"not a place in a race: {self}")


def check_moment(race: Race, moment: Moment) -> None:
    """Raise ValueError unless the moment lies inside the race (a row of a block, a span of its width)."""
    traj: Trajectory = getattr(race, moment.role)
    if moment.block >= len(traj.blocks):
        raise ValueError(f"the {moment.role} run has {len(traj.blocks)} blocks; there is no block {moment.block}")
    block = traj.blocks[moment.block]
    if moment.iteration > block.iterations or moment.end > block.width:
        raise ValueError(f"block {moment.block} of the {moment.role} run has {block.iterations} passes and "
                         f"{block.width} positions; {moment} is outside it")
    if moment.iteration == 0 and moment.block > 0:  # on the shared clock that is the previous block's last pass
        raise ValueError(f"the guess row of block {moment.block} is never on screen by itself; point at a pass")


def clock(race: Race, moment: Moment) -> int:
    """The shared clock (passes since the start) at which the player shows this row: the passes of the
    blocks before it plus the row's own (assets/player.js `locate` maps it back)."""
    check_moment(race, moment)
    traj: Trajectory = getattr(race, moment.role)
    return sum(b.iterations for b in traj.blocks[:moment.block]) + moment.iteration


def first_guess(race: Race) -> Moment:
    """The CLLM's first initial guess: where every trajectory starts."""
    return Moment("cllm", 0, 0, 0, race.cllm.blocks[0].width)


def first_pass(race: Race, role: str = "base") -> Moment:
    """Row 1 of the first block: the tokens its first pass made final (at least position 0)."""
    return Moment(role, 0, 1, 0, stats.committed_curve(getattr(race, role).blocks[0])[1])


def fixed_point(race: Race, role: str = "base") -> Moment:
    """The last row of the first block: the fixed point, which is what greedy decoding writes."""
    block = getattr(race, role).blocks[0]
    return Moment(role, 0, block.iterations, 0, block.width)


def slowest_block(race: Race, role: str = "base", first: int = 0) -> Moment:
    """The end of the block that needed the most passes per token (vanilla Jacobi at its plainest), among
    blocks `first` on (or the last block, if there are fewer)."""
    blocks = getattr(race, role).blocks
    candidates = range(min(first, len(blocks) - 1), len(blocks))
    k = max(candidates, key=lambda i: (blocks[i].iterations / blocks[i].width, -i))
    return Moment(role, k, blocks[k].iterations, 0, blocks[k].width)


def race_end(race: Race, role: str = "cllm") -> Moment:
    """The row where this side of the race finishes (the other side may still be working)."""
    blocks = getattr(race, role).blocks
    return Moment(role, len(blocks) - 1, blocks[-1].iterations, 0, blocks[-1].width)


def biggest_fast_forward(race: Race, role: str = "cllm") -> Moment | None:
    """The pass that committed the most tokens at once (at least two), the earliest on ties."""
    return _largest(role, [(k, *event) for k, b in enumerate(getattr(race, role).blocks)
                           for event in fast_forward_events(b)])


def longest_stationary(race: Race, role: str = "cllm") -> Moment | None:
    """The longest run of adjacent tokens made stationary in one pass, the earliest on ties."""
    return _largest(role, [(k, *event) for k, b in enumerate(getattr(race, role).blocks)
                           for event in stationary_events(b)])


def _largest(role: str, events: list[tuple[int, int, int, int]]) -> Moment | None:
    """The widest of (block, iteration, start, end) events as a Moment; ties go to the earliest."""
    if not events:
        return None
    k, j, start, end = max(events, key=lambda e: (e[3] - e[2], -e[0], -e[1], -e[2]))
    return Moment(role, k, j, start, end)


def biggest_recycled_win(race: Race, roles: tuple[str, ...] = ROLES) -> Moment | None:
    """The pass where a verified draft (a pool n-gram or a lookup draft, not the block's own state) gave the
    most tokens, over the sides of `roles` in order, the earliest on ties: the row after that pass, the
    tokens it committed ringed. None when no pass of the race was won by a draft (plain Jacobi records none)."""
    events = []
    for role in roles:
        for k, b in enumerate(getattr(race, role).blocks):
            for j, (winner, gain) in enumerate(zip(b.winners or [], b.gains or [])):
                done = sum(b.gains[:j])
                if winner >= 0 and done + gain <= b.width:  # a gain past an EOS cut is not on screen
                    events.append((gain, -ROLES.index(role), -k, -j, Moment(role, k, j + 1, done, done + gain)))
    return max(events, key=lambda e: e[:4])[-1] if events else None


def summary_numbers(race: Race) -> dict[str, float]:
    """The race's headline figures the lessons quote: TPF, passes and event totals of both sides."""
    out = {}
    for role in ROLES:
        s = stats.run_summary(getattr(race, role))
        out |= {f"{role}_{key}": s[key] for key in ("tpf", "forward_passes", "tokens", "fast_forwarded",
                                                                 "ff_rate", "stationary")}
    return out
