"""Terminal view of a trajectory: one row per iteration, blue tokens equal the fixed point, red not yet."""
from __future__ import annotations

from cllm import stats
from cllm.trajectory import Trajectory

VISIBLE = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "␍"}
BLUE, RED, BOLD, RESET = "\x1b[34m", "\x1b[31m", "\x1b[1m", "\x1b[0m"


def visible(text: str) -> str:
    """Whitespace made visible, so a token that is only a space still shows."""
    return "".join(VISIBLE.get(c, c) for c in text) or "∅"


def terminal_lines(traj: Trajectory, color: bool = True) -> list[str]:
    """Colour marks status when `color`; without it, tokens not yet at the fixed point are [bracketed]."""
    lines = []
    for k, block in enumerate(traj.blocks):
        lines.append(f"block {k}: {block.width} tokens, {block.iterations} iterations, "
                     f"{stats.fast_forwarded(block)} fast-forwarded beyond each pass's first, "
                     f"{stats.stationary(block)} stationary{_rate(stats.paper_ff_rate(block))}")
        for j, (state, row) in enumerate(zip(block.states, stats.cell_statuses(block))):
            cells = [_cell(visible(traj.token_text.get(t, f"<{t}>")), status, color) for t, status in zip(state, row)]
            lines.append(f"  {'guess' if j == 0 else f'it {j:>3}'} | " + " ".join(cells))
    lines.append(summary_line(traj))
    return lines


def _cell(text: str, status: str, color: bool) -> str:
    wrong = status == stats.WRONG
    if color:
        return (RED if wrong else BLUE) + text + RESET
    return f"[{text}]" if wrong else text


def summary_line(traj: Trajectory) -> str:
    s = stats.run_summary(traj)
    match = {None: "not checked", True: "yes", False: "NO"}[s["matches_ar"]]
    return (f"{s['tokens']} tokens in {s['forward_passes']} forward passes (TPF {s['tpf']:.2f}), "
            f"{s['fast_forwarded']} fast-forwarded beyond each pass's first, {s['stationary']} stationary"
            f"{_rate(s['ff_rate'])}, "
            f"{s['decode_seconds']:.3f}s; equals greedy AR: {match}")


def _rate(rate: float | None) -> str:
    """The paper's fast-forward rate, when the run or block has a counted pass (NaN / None: none)."""
    return "" if rate is None or rate != rate else f", paper ff rate {rate:.2f} tokens/pass"
