"""Pure statistics over Jacobi records, after the CLLM paper's definitions.

For a block with states s_0 (initial guess) .. s_J (fixed point y*):
- committed prefix c_j: the longest prefix of s_j equal to y*; newly committed Δ_j = c_j - c_{j-1}.
  c_j never shrinks, and grows by at least one per iteration until the block is done.
- fast_forwarded (the SURPLUS count): Σ_{j>=1} max(Δ_j - 1, 0), tokens a forward pass commits beyond its
  first, summed over the run; a plain AR-like model scores ≈ 0. Not the quantity of the paper's Table 3.
  It equals tokens - passes + (passes that commit nothing: a confirming pass) - c_0 (a guess's right prefix).
- ff_rate (the PAPER's per-pass RATE, Table 3 and "2 to 6 tokens per pass"): counted as the authors' code
  (Consistency_LLM eval/gsm8k/speedup.py) counts it; a plain AR-like model scores ≈ 1.0. See paper_passes.
- stationary tokens: positions i predicted correctly at some iteration j >= 1 while a token before them is
  still wrong (i > c_j, 0-based), and unchanged from then to the fixed point; each position counted once.
  (A correct token of the random initial guess only counts once an iteration has predicted it.)
- TPF: generated tokens / decode forward passes (greedy AR: exactly 1.0).
"""
from __future__ import annotations

import pandas as pd

from cllm.trajectory import Block, Trajectory, committed_prefix  # noqa: F401 (stats.committed_prefix: c_j)

# Cell statuses of the trajectory grid; every one but WRONG equals the fixed point ("blue").
COMMITTED = "committed"  # inside the committed prefix
FAST_FORWARDED = "fast_forwarded"  # committed this iteration, beyond the first new token
STATIONARY = "stationary"  # correct past a wrong token, and never changes again
CORRECT = "correct"  # correct past a wrong token, but will still change
WRONG = "wrong"


def committed_curve(block: Block) -> list[int]:
    """[c_0, c_1, ..., c_J] for one block."""
    return [committed_prefix(s, block.fixed_point) for s in block.states]


def newly_committed(block: Block) -> list[int]:
    """[Δ_1, ..., Δ_J]: tokens committed by each iteration."""
    c = committed_curve(block)
    return [c[j] - c[j - 1] for j in range(1, len(c))]


def fast_forwarded_per_iteration(block: Block) -> list[int]:
    return [max(d - 1, 0) for d in newly_committed(block)]


def fast_forwarded(block: Block) -> int:
    return sum(fast_forwarded_per_iteration(block))


def paper_states(block: Block) -> list[list[int]]:
    """The states the authors count: the initial guess up to the FIRST state equal to the fixed point (our
    decoder may record one confirming copy after it, which their trajectory drops)."""
    fp = block.fixed_point
    return block.states[:next(j for j, s in enumerate(block.states) if s == fp) + 1]


def paper_passes(block: Block) -> list[int]:
    """Tokens each pass adds to the correct prefix, as the authors count: the guess is not a pass, but a
    correct prefix of the guess is credited to pass 1 (their running count starts at 0, not at c_0); no
    confirming pass. A block cut at EOS ends with the first state whose prefix through EOS is right."""
    c = [committed_prefix(s, block.fixed_point) for s in paper_states(block)]
    c[0] = 0
    return [c[j] - c[j - 1] for j in range(1, len(c))]


def paper_ff_rate(block: Block) -> float | None:
    """The block's mean tokens per pass in the authors' count; None for a guess that already is the fixed
    point (no pass: their code would average an empty list), which the run's rate then leaves out."""
    gains = paper_passes(block)
    return sum(gains) / len(gains) if gains else None


def ff_rate(traj: Trajectory) -> float:
    """The run's paper fast-forward rate: the mean of per-block means (each block weighs the same, whatever
    its passes: the authors' averaging); NaN when no block has a pass."""
    rates = [r for r in map(paper_ff_rate, traj.blocks) if r is not None]
    return sum(rates) / len(rates) if rates else float("nan")


def settled_from(block: Block) -> list[int]:
    """Per position, the first iteration from which it equals the fixed point for good."""
    fp, last = block.fixed_point, len(block.states) - 1
    out = []
    for i in range(block.width):
        j = last
        while j > 0 and block.states[j - 1][i] == fp[i]:
            j -= 1
        out.append(j)
    return out


def stationary_positions(block: Block) -> dict[int, int]:
    """{position: iteration at which it became a stationary token}."""
    c = committed_curve(block)
    out = {}
    for i, j in enumerate(settled_from(block)):
        j = max(j, 1)  # the guess is not a prediction; the first iteration is
        if i > c[j]:
            out[i] = j
    return out


def stationary(block: Block) -> int:
    return len(stationary_positions(block))


def cell_statuses(block: Block) -> list[list[str]]:
    """Status of every (iteration, position) cell, for the grid: one row per state."""
    c, settled = committed_curve(block), settled_from(block)
    rows = []
    for j, state in enumerate(block.states):
        row = []
        for i, tok in enumerate(state):
            if i < c[j]:
                row.append(FAST_FORWARDED if j > 0 and c[j - 1] < i else COMMITTED)
            elif tok != block.fixed_point[i]:
                row.append(WRONG)
            else:
                row.append(STATIONARY if j >= max(settled[i], 1) else CORRECT)
        rows.append(row)
    return rows


def has_repeat(ids: list[int], run: int, max_period: int = 1) -> bool:
    """True if some span of `run` tokens repeats itself with a period p <= max_period (every token equals the
    one p before it); with max_period 1: some token occurs `run` times in a row."""
    for period in range(1, max_period + 1):
        count = 0  # tokens in a row equal to the one `period` before
        for k in range(period, len(ids)):
            count = count + 1 if ids[k] == ids[k - period] else 0
            if count + period >= run:
                return True
    return False


def differ_from(a: list[int], b: list[int]) -> int | None:
    """Index of the first token where two outputs differ (one ending early counts); None when equal."""
    k = committed_prefix(a, b)
    return k if k < max(len(a), len(b)) else None


def tokens_per_forward(tokens: int, forward_passes: int) -> float:
    return tokens / forward_passes if forward_passes else 0.0


def run_summary(traj: Trajectory) -> dict:
    """One run's headline numbers (speedup and AR match only when AR was run too)."""
    tokens, passes, seconds = len(traj.tokens), traj.forward_passes, traj.decode_seconds
    return {
        "tokens": tokens,
        "blocks": len(traj.blocks),
        "forward_passes": passes,
        "tpf": tokens_per_forward(tokens, passes),
        "fast_forwarded": sum(fast_forwarded(b) for b in traj.blocks),  # surplus, summed (plain model ≈ 0)
        "ff_rate": ff_rate(traj),  # the paper's per-pass rate (plain model ≈ 1.0)
        "stationary": sum(stationary(b) for b in traj.blocks),
        "decode_seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "ar_seconds": traj.ar_seconds,
        "speedup": traj.ar_seconds / seconds if traj.ar_seconds and seconds > 0 else None,
        "matches_ar": traj.matches_ar,
    }


def blocks_frame(traj: Trajectory) -> pd.DataFrame:
    """One row per block: width, iterations, surplus fast-forwarded, the paper's rate (and the passes it
    averages over), stationary, wall time."""
    return pd.DataFrame(
        [
            {"block": k, "width": b.width, "iterations": b.iterations, "fast_forwarded": fast_forwarded(b),
             "ff_rate": paper_ff_rate(b), "paper_passes": len(paper_passes(b)), "stationary": stationary(b),
             "seconds": sum(b.iteration_seconds)}
            for k, b in enumerate(traj.blocks)
        ],
        columns=["block", "width", "iterations", "fast_forwarded", "ff_rate", "paper_passes", "stationary", "seconds"],
    )


def iterations_frame(traj: Trajectory) -> pd.DataFrame:
    """One row per iteration of every block: committed prefix, new commits, surplus fast-forwards, the
    paper's per-pass count (None on a confirming pass, which the authors do not count), correct tokens."""
    rows = []
    for k, b in enumerate(traj.blocks):
        c, fp, gains = committed_curve(b), b.fixed_point, paper_passes(b)
        for j in range(1, len(b.states)):
            rows.append({
                "block": k, "iteration": j, "committed": c[j], "newly_committed": c[j] - c[j - 1],
                "fast_forwarded": max(c[j] - c[j - 1] - 1, 0), "paper_gain": gains[j - 1] if j <= len(gains) else None,
                "correct": sum(a == f for a, f in zip(b.states[j], fp)), "seconds": b.iteration_seconds[j - 1],
            })
    columns = ["block", "iteration", "committed", "newly_committed", "fast_forwarded", "paper_gain", "correct",
               "seconds"]
    return pd.DataFrame(rows, columns=columns)


def runs_frame(summaries: list[dict]) -> pd.DataFrame:
    """Several runs' summaries (e.g. one per prompt) as one table."""
    return pd.DataFrame(summaries)
