"""Which token sequences a model fast-forwards or holds stationary: the collocation inspector's data.

Events, per block of a trajectory:
- fast-forward: an iteration j that commits Δ_j >= 2 tokens; the event's span is the whole newly
  committed run of the fixed point (the collocation that arrived at once);
- stationary: a maximal run of adjacent positions that became stationary at the same iteration.
Each event remembers where it happened (run, block, iteration, position), so the app can open it, and
whether its span sits inside a loop of the run's output (cllm.evaluate.loop_flags): a degenerate repeat
fast-forwards trivially, so the table counts such events apart and can leave them out.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from cllm import stats
from cllm.evaluate import loop_flags
from cllm.trajectory import Block, Trajectory

KINDS = ("fast_forwarded", "stationary")
COLUMNS = ["text", "tokens", "cllm_count", "cllm_share", "base_count", "base_share", "in_loop", "run", "block",
           "iteration", "position"]  # in_loop: how many of the CLLM's events of the span sit inside a loop  # run/block/iteration/position: where the CLLM's first example of the span is


@dataclass(frozen=True)
class Event:
    kind: str  # "fast_forwarded" or "stationary"
    tokens: tuple[int, ...]  # the span, as fixed-point token ids
    run: int  # index of the trajectory in the list given
    block: int
    iteration: int
    start: int  # first position of the span in the block
    in_loop: bool = False  # every token of the span sits inside a loop of the run's output


def fast_forward_events(block: Block) -> list[tuple[int, int, int]]:
    """(iteration, start, end) of every iteration that committed two or more tokens."""
    c = stats.committed_curve(block)
    return [(j, c[j - 1], c[j]) for j in range(1, len(c)) if c[j] - c[j - 1] >= 2]


def stationary_events(block: Block) -> list[tuple[int, int, int]]:
    """(iteration, start, end) of each run of adjacent positions made stationary at the same iteration."""
    runs = []
    for pos, it in sorted(stats.stationary_positions(block).items()):
        if runs and runs[-1][0] == it and runs[-1][2] == pos:
            runs[-1] = (it, runs[-1][1], pos + 1)
        else:
            runs.append((it, pos, pos + 1))
    return runs


def events(trajs: list[Trajectory]) -> list[Event]:
    out = []
    for r, traj in enumerate(trajs):
        loops, offset = loop_flags(traj), 0  # offset: where the block starts in the run's output
        for b, block in enumerate(traj.blocks):
            for kind, found in (("fast_forwarded", fast_forward_events(block)), ("stationary", stationary_events(block))):
                for j, start, end in found:
                    in_loop = all(loops[offset + start:offset + end])
                    out.append(Event(kind, tuple(block.fixed_point[start:end]), r, b, j, start, in_loop))
            offset += len(block.fixed_point)
    return out


def collocation_table(cllm: list[Trajectory], base: list[Trajectory], kind: str, top: int = 50,
                      hide_loops: bool = False) -> pd.DataFrame:
    """Spans most often fast-forwarded (or stationary) by the CLLM, with the base's counts beside them and
    how many of the CLLM's sit inside a loop; hide_loops leaves those events out of every count."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    counts = {"cllm": defaultdict(int), "base": defaultdict(int)}
    example, looped = {}, defaultdict(int)
    for role, trajs in (("cllm", cllm), ("base", base)):
        for e in events(trajs):
            if e.kind == kind and not (hide_loops and e.in_loop):
                counts[role][e.tokens] += 1
                if role == "cllm":
                    example.setdefault(e.tokens, e)
                    looped[e.tokens] += e.in_loop
    totals = {role: max(sum(c.values()), 1) for role, c in counts.items()}
    text_of = _text_lookup(cllm + base)
    rows = [{
        "text": text_of(toks), "tokens": len(toks), "cllm_count": n, "cllm_share": n / totals["cllm"],
        "base_count": counts["base"].get(toks, 0), "base_share": counts["base"].get(toks, 0) / totals["base"],
        "in_loop": looped[toks],
        "run": example[toks].run, "block": example[toks].block, "iteration": example[toks].iteration,
        "position": example[toks].start,
    } for toks, n in counts["cllm"].items()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["cllm_count", "tokens"], ascending=False).head(top).reset_index(drop=True)


def _text_lookup(trajs: list[Trajectory]):
    table = {}
    for t in trajs:
        table.update(t.token_text)
    return lambda toks: "".join(table.get(i, f"<{i}>") for i in toks)
