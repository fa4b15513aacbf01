"""The collocation tables (cllm.collocations) as the Stats tab shows them, and a clicked row read back.

Shown: the span with its whitespace visible (a span that is only a space or a new line would be a blank row),
its token pieces (two spans that read alike, "self." as one token or as "self" + ".", are told apart), the
counts first (a long span must not push them out of a narrow table; spans are cut at MAX_SPAN_CHARS), shares
rounded, and where the CLLM's
first example is, counted as the player counts: prompt and block from 1, pass from 1, position from 0.
"""
from __future__ import annotations

import pandas as pd

from cllm.trajectory import Trajectory

MAX_SPAN_CHARS = 32  # a longer span (a loop fast-forwarded whole) ends in …; its pieces column has it all
WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
PIECE_SEP = " | "  # between the span's tokens; a real space inside a token shows as ␣, so this reads unambiguously
SPAN, PIECES, TOKENS = "span", "tokens (pieces)", "tokens"
CLLM_COUNT, BASE_COUNT, CLLM_SHARE, BASE_SHARE = "CLLM count", "base count", "CLLM share", "base share"
IN_LOOP = "in a loop"  # of the CLLM's events of the span, how many sit inside a loop of its output
PROMPT, BLOCK, PASS, POSITION = "prompt #", "block", "pass", "position"
DISPLAY_COLUMNS = [CLLM_COUNT, BASE_COUNT, IN_LOOP, SPAN, TOKENS, PIECES, CLLM_SHARE, BASE_SHARE, PROMPT, BLOCK, PASS, POSITION]
# the span and its pieces get the room; the rest are short numbers (without widths a long span pushed the last six
# columns out of sight)
DISPLAY_WIDTHS = ["6%", "6%", "6%", "20%", "6%", "20%", "7%", "7%", "6%", "5%", "5%", "6%"]
# column -> (raw column of cllm.collocations.COLUMNS, what the display adds to it)
PLACES = {PROMPT: ("run", 1), BLOCK: ("block", 1), PASS: ("iteration", 0), POSITION: ("position", 0),
          TOKENS: ("tokens", 0)}


def shown(text: str) -> str:
    """Whitespace made visible; an empty text as ∅."""
    return "".join(WHITESPACE.get(c, c) for c in text) or "∅"


def pieces(trajs: list[Trajectory], run: int, block: int, start: int, tokens: int) -> str:
    """The span's tokens as the CLLM's first example wrote them, each made visible, joined by PIECE_SEP."""
    traj = trajs[run]
    ids = traj.blocks[block].fixed_point[start:start + tokens]
    return PIECE_SEP.join(shown(traj.token_text.get(i, f"<{i}>")) for i in ids)


def display_table(frame: pd.DataFrame, cllm: list[Trajectory]) -> pd.DataFrame:
    """A cllm.collocations table as people read it (see the module note); `cllm` are the runs it counts."""
    rows = [{
        SPAN: _cut(shown(r.text)), CLLM_COUNT: int(r.cllm_count), BASE_COUNT: int(r.base_count),
        IN_LOOP: int(r.in_loop), TOKENS: int(r.tokens),
        PIECES: pieces(cllm, int(r.run), int(r.block), int(r.position), int(r.tokens)),
        CLLM_SHARE: round(float(r.cllm_share), 3), BASE_SHARE: round(float(r.base_share), 3),
        **{name: int(getattr(r, raw)) + add for name, (raw, add) in PLACES.items() if name != TOKENS},
    } for r in frame.itertuples()]
    return pd.DataFrame(rows, columns=DISPLAY_COLUMNS)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SPAN_CHARS else text[:MAX_SPAN_CHARS - 1] + "…"


def row_place(row_value: list) -> dict:
    """A clicked display row back to the raw places (run, block, iteration, position, tokens), counted from 0,
    and its span as "text"; values are returned as they came when they are not numbers (the caller checks)."""
    row = dict(zip(DISPLAY_COLUMNS, row_value))
    out = {"text": row.get(SPAN, "")}
    for name, (raw, add) in PLACES.items():
        value = row.get(name)
        try:
            out[raw] = float(value) - add
        except (TypeError, ValueError):
            out[raw] = value
    return out
