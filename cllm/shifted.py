"""Right token, wrong position: runs of a Jacobi state that equal the run's output at a shifted place.

Jacobi Forcing's trajectory figure (arXiv 2512.14681) marks them: a state often holds a correct stretch of
text one or more positions off, because a token before it is missing or extra. Rejection recycling
(cllm.decoders.recycle) exploits exactly this: such a run, pooled as an n-gram, is verified where it fits.

`shifted_runs(state, target)` finds them: maximal runs of >= MIN_RUN consecutive positions i .. i+L-1 of the
state whose tokens equal target[i+s .. i+s+L-1] for one shift s != 0, where every token of the run is wrong
at its own position (state[i] != target[i], or i is past the target's end). `target` is what the block's
positions turn into: the block's fixed point followed by the run's later tokens (so a run that belongs to the
next block counts too). Pure functions of token ids; the grid draws them as a toggled layer.
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_RUN = 3  # shorter runs are mostly chance (a repeated space or bracket)


@dataclass(frozen=True)
class ShiftedRun:
    start: int  # first position of the run in the state
    length: int
    shift: int  # the run's tokens are the target's at start + shift ...; > 0: they belong later


def shifted_runs(state: list[int], target: list[int], min_run: int = MIN_RUN) -> list[ShiftedRun]:
    """Maximal runs of the state that equal the target at a shifted position (module docstring), longest
    first where two overlap (each position in at most one run)."""
    wrong = [i >= len(target) or t != target[i] for i, t in enumerate(state)]
    where: dict[int, list[int]] = {}
    for p, t in enumerate(target):
        where.setdefault(t, []).append(p)
    found = []
    length: dict[int, int] = {}  # shift -> length of the run of matches ending at the previous position
    for i, t in enumerate(state):
        now = {p - i: length.get(p - i, 0) + 1 for p in where.get(t, []) if p != i} if wrong[i] else {}
        found += [ShiftedRun(i - n, n, s) for s, n in length.items() if n >= min_run and now.get(s, 0) != n + 1]
        length = now
    found += [ShiftedRun(len(state) - n, n, s) for s, n in length.items() if n >= min_run]
    return _disjoint(found)


def _disjoint(runs: list[ShiftedRun]) -> list[ShiftedRun]:
    """Longest first (then leftmost, then nearest shift), dropping runs that overlap one already kept."""
    kept, taken = [], set()
    for r in sorted(runs, key=lambda r: (-r.length, r.start, abs(r.shift), r.shift)):
        span = set(range(r.start, r.start + r.length))
        if not span & taken:
            kept.append(r)
            taken |= span
    return sorted(kept, key=lambda r: r.start)


def block_targets(tokens: list[int], widths: list[int]) -> list[list[int]]:
    """Per block, what its positions turn into: its fixed point and every later token of the run."""
    out, start = [], 0
    for w in widths:
        out.append(tokens[start:])
        start += w
    return out


def shift_marks(states: list[list[int]], target: list[int], min_run: int = MIN_RUN) -> list[dict[int, int]]:
    """Per state, position -> shift of every position inside a shifted run (the grid's layer)."""
    return [{r.start + k: r.shift for r in shifted_runs(s, target, min_run) for k in range(r.length)} for s in states]
