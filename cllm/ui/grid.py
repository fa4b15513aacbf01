"""HTML of a race (base vs CLLM): per block a grid (row = iteration, cell = position), counters, texts.

Pure functions of the records. The markup shows the race's last frame as it is; assets/player.js then
animates it in the browser from the data-* attributes (per block: commit curve, iteration seconds),
so playback needs no server round trip. Every piece of text from a model or a file is escaped here.
"""
from __future__ import annotations

from html import escape

from cllm import stats
from cllm.evaluate import repeated_line
from cllm.models import model_note
from cllm.moments import Moment, clock
from cllm.race import Race
from cllm.render import visible
from cllm.shifted import shift_marks
from cllm.training.trained import trained_note
from cllm.trajectory import Trajectory

# CSS class of each cell status (assets/player.css draws them) and the words the legend and the tooltip share.
STATUS_CLASS = {stats.COMMITTED: "s-c", stats.FAST_FORWARDED: "s-f", stats.STATIONARY: "s-s",
                stats.CORRECT: "s-k", stats.WRONG: "s-w"}
STATUS_WORDS = {stats.COMMITTED: "committed: it and every token before it are final",
                stats.FAST_FORWARDED: "fast-forwarded: committed in the same pass as the token before it",
                stats.STATIONARY: "stationary: final already, behind a wrong token, and never changes again",
                stats.CORRECT: "equals the final token for now, but will still change before the block settles",
                stats.WRONG: "not the final token yet"}
ROLES = (("base", "Base model", "trained the usual way"),
         ("cllm", "Consistency LLM", "the base model fine-tuned to reach the final row in fewer passes"))
SPEEDS = (1, 2, 4, 8, 16)  # forward passes per second the player offers
DEFAULT_SPEED = 4
COMPACT_N = 32  # from this block size on the grid is compact (smaller cells; 64: colour only, text in the tooltip)
EMPTY_HTML = ('<div class="cr-empty">Pick a prompt and press <b>Run</b>: both models decode it, then the '
              'race replays here, one forward pass at a time.</div>')
_CHIPS = (  # (status, its look, its meaning in a few words: the key fits one line; STATUS_WORDS has the rest)
    (stats.WRONG, "red, dashed", "not final yet"), (stats.CORRECT, "light blue", "right for now, will change"),
    (stats.COMMITTED, "dark blue, underlined", "committed: final"),
    (stats.FAST_FORWARDED, "»", "fast-forwarded: committed with the one before"),
    (stats.STATIONARY, "⚓", "stationary: final behind a wrong token"))
LEGEND_HTML = (  # the colour key on one line; the rest folded, so the grids start near the top of the page
    '<div class="cr-legend">Each row is one forward pass over the whole block. '
    + " · ".join(f'<span class="cr-chip {STATUS_CLASS[s]}" title="{escape(STATUS_WORDS[s])}">tok</span> '
                 f'{escape(short)}' for s, _, short in _CHIPS)
    + '<details><summary>More: the colours in full, marks, tooltips, the drafts column, shifted runs</summary>'
    + " · ".join(f'<span class="cr-chip {STATUS_CLASS[s]}">tok</span> {how}: {escape(STATUS_WORDS[s])}'
                 for s, how, _ in _CHIPS)
    + '. Marks in tokens: '
    '<code>·</code> space, <code>↵</code> new line, <code>⇥</code> tab. '
    'Hover or tap a cell for the whole token, its id, position and pass. Decoders that verify drafts (recycle, '
    'multiblock, lookup) add a column: per pass the tokens it committed (<b>+k</b>) and the draft that won '
    '(<i>own</i>: the block\'s own state). The <span class="cr-chip s-w sh">tok</span> toggle "right token, '
    'wrong position" outlines runs of 3+ tokens that are final tokens at a shifted place (what recycling '
    'reuses).</details></div>'
)


def cell_html(text: str, token: int, place: tuple[int, int], status: str, focus: bool = False,
              shift: int | None = None) -> str:
    """One token of one state, whole (the CSS clips it with … where the cell is too narrow); its tooltip
    (data-tip, drawn by player.js) names the token, id, place (position, pass) and status; `focus` rings the cell
    (a moment a lesson or a collocation row points at); `shift` marks it as part of a run of right tokens at
    the wrong position (cllm.shifted; drawn when the player's toggle is on)."""
    shown, (position, iteration) = visible(text), place
    when = "guess" if iteration == 0 else f"pass {iteration}"
    tip = f"“{shown}” id {token} · position {position} · {when} · {STATUS_WORDS[status]}"
    if shift is not None:
        tip += f" · {shift_words(shift)}"
    classes = STATUS_CLASS[status] + " cr-focus" * focus + " sh" * (shift is not None)
    return f'<td class="{classes}" data-tip="{escape(tip)}">{escape(shown)}</td>'


def shift_words(shift: int) -> str:
    where = f"{shift} position{'s' * (shift != 1)} later" if shift > 0 else f"{-shift} position{'s' * (shift != -1)} earlier"
    return f"right token, wrong position: part of a run of final tokens that belongs {where}"


def pass_html(traj: Trajectory, k: int, j: int) -> str:
    """The strip beside a block whose decoder records its drafts: for the row after pass j, the tokens that
    pass committed and which draft won (the block's own state, or draft d of those it verified)."""
    block = traj.blocks[k]
    if j == 0:
        return '<td class="cr-pass" data-tip="the initial guess: nothing verified yet"></td>'
    drafts, winner, gain = block.drafts[j - 1], block.winners[j - 1], block.gains[j - 1]
    won = "its own state" if winner < 0 else f"draft {winner + 1} of {len(drafts)}"
    listed = " · ".join(f"{'✓ ' if d == winner else ''}draft {d + 1}: “{visible(traj.text_of(x))}”"
                        for d, x in enumerate(drafts))
    tip = (f"pass {j}: {gain} token{'s' * (gain != 1)} committed; won: {won}; verified besides the block's own "
           f"state: {len(drafts)} draft{'s' * (len(drafts) != 1)}" + (f" · {listed}" if listed else ""))
    shown = "own" if winner < 0 else f"⇐ {visible(traj.text_of(drafts[winner]))}"
    return (f'<td class="cr-pass{" cr-won" * (winner >= 0)}" data-tip="{escape(tip)}"><b>+{gain}</b> '
            f'{escape(shown)}</td>')


def block_grid_html(traj: Trajectory, k: int, focus: Moment | None = None) -> str:
    """Block k's grid: a header of positions, then one row per state from the guess to the fixed point;
    the cells of `focus` (a moment in this block) are ringed."""
    block = traj.blocks[k]
    curve = ",".join(map(str, stats.committed_curve(block)))
    secs = ",".join(f"{s:.6f}" for s in block.iteration_seconds)
    strip = block.drafts is not None
    head = "".join(f"<th>{i}</th>" for i in range(block.width))
    head += '<th class="cr-pass" data-tip="per pass: tokens committed and the draft that won">drafts</th>' * strip
    shifts = shift_marks(block.states, traj.tokens[sum(b.width for b in traj.blocks[:k]):])
    rows = []
    for j, (state, statuses) in enumerate(zip(block.states, stats.cell_statuses(block))):
        label = "guess" if j == 0 else f"{j} ✓" if j == block.iterations else f"{j}"  # ✓: the fixed point
        ringed = range(focus.start, focus.end) if focus and focus.iteration == j else range(0)
        cells = "".join(cell_html(traj.token_text.get(t, f"<{t}>"), t, (i, j), s, i in ringed, shifts[j].get(i))
                        for i, (t, s) in enumerate(zip(state, statuses)))
        cells += pass_html(traj, k, j) if strip else ""
        rows.append(f'<tr data-it="{j}"><th>{label}</th>{cells}</tr>')
    corner = '<th data-tip="rows: forward passes; columns: positions in the block">pass</th>'
    size = " cr-n32" if block.width >= COMPACT_N else ""
    size += " cr-n64" if block.width >= 2 * COMPACT_N else ""
    return (f'<table class="cr-grid{size}" data-block="{k}" data-width="{block.width}" data-commit="{curve}" '
            f'data-secs="{secs}"><thead><tr>{corner}{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def text_html(traj: Trajectory) -> str:
    """The generated text, one span per block (delimited by the CSS), one span per token inside."""
    blocks = []
    for k, block in enumerate(traj.blocks):
        tokens = "".join(f"<span>{escape(traj.token_text.get(t, ''))}</span>" for t in block.fixed_point)
        blocks.append(f'<span class="cr-tb" data-block="{k}" data-tip="block {k + 1}">{tokens}</span>')
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
    """One model's side: name and what it is, live counters, a map of its blocks, the blocks' grids, its text,
    a flag if the text loops, and the AR check."""
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
            f'<span class="cr-caption">{caption}</span>{decoder_html(traj)}'
            f'<code data-tip="{escape(traj.meta.model)}">{escape(_short(traj.meta.model))}</code></header>'
            f'{about_html(traj.meta.model)}'
            f'<div class="cr-counters">{counters}</div><div class="cr-progress" data-tip="tokens committed">'
            f'<i style="width: 100%"></i></div>{map_html(traj)}<div class="cr-grids">{grids}</div>'
            f'{text_html(traj)}{loop_html(traj)}<div class="cr-foot">{foot}</div></section>')


def decoder_html(traj: Trajectory) -> str:
    """The decoder that made the run, with its own settings in the tooltip."""
    options = ", ".join(f"{k} = {v}" for k, v in traj.meta.options.items())
    tip = f"decoder: {traj.meta.decoder}" + (f" · {options}" if options else "")
    return f'<span class="cr-dec" data-tip="{escape(tip)}">{escape(traj.meta.decoder)}</span>'


def about_html(model: str) -> str:
    """The model in one line (size, training data) from the registry, or from a Train-tab model's record."""
    note = model_note(model) or trained_note(model)
    return f'<div class="cr-about">{escape(note)}</div>' if note else ""


def loop_html(traj: Trajectory) -> str:
    """A flag when the output repeats one line three or more times (cllm.evaluate.repeated_line): a looping
    text is easy to fast-forward, so its speed-up says less."""
    if not repeated_line(traj.text_of(traj.tokens)):
        return ""
    return ('<div class="cr-loop">⟳ This output loops: one line repeats 3 or more times. Loops are easy to '
            'fast-forward, so they flatter the speed-up.</div>')


def map_html(traj: Trajectory) -> str:
    """All blocks at a glance: one bar per block, as tall as its passes (out of its width, the most a block
    can take), the pass count inside; a click jumps the player to the end of that block."""
    bars = "".join(
        f'<button type="button" data-act="block" data-k="{k}" style="--h: {min(1.0, b.iterations / b.width):.3f}" '
        f'data-tip="block {k + 1}: {b.iterations} passes for {b.width} tokens (click to show it)">'
        f'{b.iterations}</button>' for k, b in enumerate(traj.blocks))
    return f'<div class="cr-map" aria-label="passes per block">{bars}</div>'


def controls_html(ticks: int) -> str:
    speeds = "".join(f'<option value="{v}"{" selected" * (v == DEFAULT_SPEED)}>{v}/s</option>' for v in SPEEDS)
    return (
        '<div class="cr-bar">'
        '<button type="button" data-act="play" class="cr-play">▶ Play</button>'
        '<button type="button" data-act="back" title="step back one pass">◀</button>'
        '<button type="button" data-act="fwd" title="step forward one pass">▶</button>'
        f'<input type="range" class="cr-scrub" min="0" max="{ticks}" value="{ticks}" step="1" aria-label="forward pass">'
        f'<span class="cr-clock">pass <b>{ticks}</b> / {ticks}</span>'
        f'<label class="cr-speed">speed <select>{speeds}</select></label>'
        '<label class="cr-shift" title="outline runs of 3+ tokens that are final tokens at a shifted position">'
        '<input type="checkbox" data-act="shift"> right token, wrong position</label></div>'
    )


def roles_of(race: Race) -> tuple:
    """The panels' (role, label, caption): base and CLLM, or, when one model ran twice, its two decoders."""
    a, b = race.base.meta, race.cllm.meta
    if race.one_model:
        return (("base", f"Decoder {a.decoder}", "one model raced twice: left"),
                ("cllm", f"Decoder {b.decoder}", "the same model and prompt: right"))
    return ROLES


def race_html(race: Race, run_id: str, partial: bool = False, roles=None, focus: Moment | None = None) -> str:
    """The whole player: controls, legend, prompt and settings, and the two panels side by side.
    `run_id` tells the player a new race from an update of the same one (e.g. the AR check arriving);
    `partial` marks runs still being decoded: the player waits at their end instead of finishing;
    `roles` names the two panels ((role, label, caption) for base and cllm, as in ROLES; default roles_of);
    `focus` opens the player paused at that moment (instead of playing from pass 0) with its cells ringed."""
    ticks = max(race.base.forward_passes, race.cllm.forward_passes)  # the shared clock's last pass
    meta = race.cllm.meta
    settings = (f"n = {meta.n} · up to {meta.max_new_tokens} new tokens · seed {meta.seed} · init {meta.init} · "
                f"{meta.device}")
    prompt = (f'<div class="cr-prompt"><div><b>{escape(race.title)}</b> <small>({escape(settings)})</small></div>'
              f'<pre>{escape(race.prompt)}</pre></div>')
    panels = "".join(panel_html(getattr(race, role), role, label, caption, focus)
                     for role, label, caption in roles or roles_of(race))
    opening = f' data-open="{clock(race, focus)}"' if focus else ""
    return (f'<div class="cr" tabindex="0" data-run="{escape(run_id)}" data-ticks="{ticks}" '
            f'data-partial="{int(partial)}"{opening}>{prompt}'
            f'{controls_html(ticks)}{LEGEND_HTML}<div class="cr-panels">{panels}</div></div>')


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _short(name: str, limit: int = 40) -> str:
    """A long path shows its end, which names the model."""
    return name if len(name) <= limit else "…" + name[-(limit - 1):]
