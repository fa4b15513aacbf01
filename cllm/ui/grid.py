"""HTML of a race (base vs CLLM): per block a grid (row = iteration, cell = position), counters, texts.

Pure functions of the records. The markup shows the race's last frame as it is; assets/player.js then
animates it in the browser from the data-* attributes (per block: commit curve, iteration seconds),
so playback needs no server round trip. Every piece of text from a model or a file is escaped here.
"""
from __future__ import annotations

from html import escape

from cllm import stats
from cllm.moments import Moment, clock
from cllm.race import Race
from cllm.render import visible
from cllm.trajectory import Trajectory

# CSS class of each cell status (assets/player.css draws them) and the words its tooltip uses.
STATUS_CLASS = {stats.COMMITTED: "s-c", stats.FAST_FORWARDED: "s-f", stats.STATIONARY: "s-s",
                stats.CORRECT: "s-k", stats.WRONG: "s-w"}
STATUS_WORDS = {stats.COMMITTED: "committed", stats.FAST_FORWARDED: "fast-forwarded", stats.STATIONARY: "stationary",
                stats.CORRECT: "right for now (changes later)", stats.WRONG: "not yet final"}  # the legend explains
MAX_CELL_CHARS = 5  # longer tokens are cut in the cell; the tooltip has them whole
ROLES = (("base", "Base model", "trained the usual way"),
         ("cllm", "Consistency LLM", "the base model fine-tuned to reach the final row in fewer passes"))
SPEEDS = (1, 2, 4, 8, 16)  # forward passes per second the player offers
DEFAULT_SPEED = 4
EMPTY_HTML = ('<div class="cr-empty">Pick a prompt and press <b>Run</b>: both models decode it, then the '
              'race replays here, one forward pass at a time.</div>')
LEGEND_HTML = (
    '<div class="cr-legend">Each row is one forward pass that rewrites the whole block. '
    '<span class="cr-chip s-k">tok</span> blue: already the final token · '
    '<span class="cr-chip s-w">tok</span> red, dashed: not yet · '
    '<span class="cr-chip s-c">tok</span> solid, underlined: committed (it and all before it are final) · '
    '<span class="cr-chip s-f">tok</span> fast-forwarded (committed in the same pass as the token before it) · '
    '<span class="cr-chip s-s">tok</span> stationary (right early, behind a wrong token, and never changes) · '
    'hover a cell for details.</div>'
)


def cell_html(text: str, token: int, position: int, iteration: int, status: str, focus: bool = False) -> str:
    """One token of one state; the tooltip names token id, position, iteration and status; `focus` rings
    the cell (a moment a lesson or a collocation row points at)."""
    shown = visible(text)
    cut = shown if len(shown) <= MAX_CELL_CHARS else shown[: MAX_CELL_CHARS - 1] + "…"
    when = "guess" if iteration == 0 else f"pass {iteration}"
    title = f"“{shown}” id {token} · position {position} · {when} · {STATUS_WORDS[status]}"
    classes = STATUS_CLASS[status] + " cr-focus" * focus
    return f'<td class="{classes}" title="{escape(title)}">{escape(cut)}</td>'


def block_grid_html(traj: Trajectory, k: int, focus: Moment | None = None) -> str:
    """Block k's grid: a header of positions, then one row per state from the guess to the fixed point;
    the cells of `focus` (a moment in this block) are ringed."""
    block = traj.blocks[k]
    curve = ",".join(map(str, stats.committed_curve(block)))
    secs = ",".join(f"{s:.6f}" for s in block.iteration_seconds)
    head = "".join(f"<th>{i}</th>" for i in range(block.width))
    rows = []
    for j, (state, statuses) in enumerate(zip(block.states, stats.cell_statuses(block))):
        label = "guess" if j == 0 else f"{j} ✓" if j == block.iterations else f"{j}"  # ✓: the fixed point
        ringed = range(focus.start, focus.end) if focus and focus.iteration == j else range(0)
        cells = "".join(cell_html(traj.token_text.get(t, f"<{t}>"), t, i, j, s, i in ringed)
                        for i, (t, s) in enumerate(zip(state, statuses)))
        rows.append(f'<tr data-it="{j}"><th>{label}</th>{cells}</tr>')
    corner = '<th title="rows: forward passes; columns: positions in the block">pass</th>'
    return (f'<table class="cr-grid" data-block="{k}" data-width="{block.width}" data-commit="{curve}" '
            f'data-secs="{secs}"><thead><tr>{corner}{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def text_html(traj: Trajectory) -> str:
    """The generated text, one span per block (delimited by the CSS), one span per token inside."""
    blocks = []
    for k, block in enumerate(traj.blocks):
        tokens = "".join(f"<span>{escape(traj.token_text.get(t, ''))}</span>" for t in block.fixed_point)
        blocks.append(f'<span class="cr-tb" data-block="{k}" title="block {k + 1}">{tokens}</span>')
    return f'<pre class="cr-text">{"".join(blocks)}</pre>'


def verdict_html(traj: Trajectory) -> str:
    if traj.matches_ar is None:
        return '<span class="cr-verdict cr-pending">… comparing with greedy decoding</span>'
    if traj.matches_ar:
        return '<span class="cr-verdict cr-ok">✓ identical to greedy (one token per pass) decoding</span>'
    first = stats.committed_prefix(traj.tokens, traj.ar_tokens)
    return (f'<span class="cr-verdict cr-bad">✗ differs from greedy decoding from token {first} on '
            '(a floating-point near-tie)</span>')


def panel_html(traj: Trajectory, role: str, label: str, caption: str, focus: Moment | None = None) -> str:
    """One model's side: name, live counters, the blocks' grids, its text and the AR check."""
    s = stats.run_summary(traj)
    counters = (f'<span>passes <b data-k="it">{s["forward_passes"]}</b></span>'
                f'<span>tokens <b data-k="tok">{s["tokens"]}</b></span>'
                f'<span>tokens/pass <b data-k="tpf">{s["tpf"]:.2f}</b></span>'
                f'<span>time <b data-k="time">{_ms(s["decode_seconds"])}</b></span>'
                f'<span class="cr-where" data-k="where">done</span>')
    grids = "".join(block_grid_html(traj, k, focus if focus and focus.role == role and focus.block == k else None)
                    for k in range(len(traj.blocks)))
    foot = (f'{len(traj.blocks)} blocks · {s["fast_forwarded"]} fast-forwarded · {s["stationary"]} stationary · '
            f'{verdict_html(traj)}')
    return (f'<section class="cr-panel" data-role="{role}"><header><span class="cr-role">{label}</span> '
            f'<span class="cr-caption">{caption}</span>'
            f'<code title="{escape(traj.meta.model)}">{escape(_short(traj.meta.model))}</code></header>'
            f'<div class="cr-counters">{counters}</div><div class="cr-progress" title="tokens committed">'
            f'<i style="width: 100%"></i></div><div class="cr-grids">{grids}</div>'
            f'{text_html(traj)}<div class="cr-foot">{foot}</div></section>')


def controls_html(ticks: int) -> str:
    speeds = "".join(f'<option value="{v}"{" selected" * (v == DEFAULT_SPEED)}>{v}/s</option>' for v in SPEEDS)
    return (
        '<div class="cr-bar">'
        '<button type="button" data-act="play" class="cr-play">▶ Play</button>'
        '<button type="button" data-act="back" title="step back one pass">◀</button>'
        '<button type="button" data-act="fwd" title="step forward one pass">▶</button>'
        f'<input type="range" class="cr-scrub" min="0" max="{ticks}" value="{ticks}" step="1" aria-label="forward pass">'
        f'<span class="cr-clock">pass <b>{ticks}</b> / {ticks}</span>'
        f'<label class="cr-speed">speed <select>{speeds}</select></label></div>'
    )


def race_html(race: Race, run_id: str, partial: bool = False, roles=ROLES, focus: Moment | None = None) -> str:
    """The whole player: controls, legend, prompt and settings, and the two panels side by side.
    `run_id` tells the player a new race from an update of the same one (e.g. the AR check arriving);
    `partial` marks runs still being decoded: the player waits at their end instead of finishing;
    `roles` names the two panels ((role, label, caption) for base and cllm, as in ROLES);
    `focus` opens the player paused at that moment (instead of playing from pass 0) with its cells ringed."""
    ticks = max(race.base.forward_passes, race.cllm.forward_passes)  # the shared clock's last pass
    meta = race.cllm.meta
    settings = (f"n = {meta.n} · up to {meta.max_new_tokens} new tokens · seed {meta.seed} · init {meta.init} · "
                f"{meta.device}")
    prompt = (f'<details class="cr-prompt"><summary>{escape(race.title)} <small>({escape(settings)})</small></summary>'
              f'<pre>{escape(race.prompt)}</pre></details>')
    panels = "".join(panel_html(getattr(race, role), role, label, caption, focus) for role, label, caption in roles)
    opening = f' data-open="{clock(race, focus)}"' if focus else ""
    return (f'<div class="cr" tabindex="0" data-run="{escape(run_id)}" data-ticks="{ticks}" '
            f'data-partial="{int(partial)}"{opening}>{prompt}'
            f'{controls_html(ticks)}{LEGEND_HTML}<div class="cr-panels">{panels}</div></div>')


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _short(name: str, limit: int = 40) -> str:
    """A long path shows its end, which names the model."""
    return name if len(name) <= limit else "…" + name[-(limit - 1):]
