"""The Train tab's HTML: the slot line, collection and training status, the trained result, the live grid."""
from __future__ import annotations

from dataclasses import replace
from html import escape

from cllm.race import Race
from cllm.training.report import FitReport
from cllm.training.slot import SlotView
from cllm.ui.grid import race_html

EMPTY_GRID = ('<div class="cr-empty">While training runs, a held-out prompt is decoded with the current weights '
              'every few steps and races the base model here: watch red turn blue in fewer passes.</div>')


def status_html(view: SlotView) -> str:
    """The slot line: free, yours (and what to do next), or busy with a live countdown and a place in line."""
    if view.busy:
        parts = [escape(view.busy)]
        if view.free_in is not None:
            left = max(0, int(view.free_in))
            parts.append(f'Free in <b class="tr-count" data-left="{left}">{left // 60}:{left % 60:02d}</b>.')
        if view.place:
            parts.append(f"You are <b>{_ordinal(view.place)}</b> in line (the first to press Collect once it is "
                         "free gets it).")
        return f'<div class="tr-status tr-busy">{" ".join(parts)}</div>'
    if view.mine:
        nexts = {"collected": "press Train, or Discard", "trained": "Save it, or Discard",
                 "collecting": "Stop or Discard it", "training": "Stop or Discard it"}
        hint = f": {nexts[view.phase]}" if view.phase in nexts else ""
        return f'<div class="tr-status">The training slot is yours, in this browser ({view.phase}){hint}.</div>'
    return '<div class="tr-status">The training slot is free: nobody is training.</div>'


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def collect_html(view: SlotView) -> str:
    c = view.counts
    if not c:
        return f'<div class="tr-status">{escape(view.note or view.phase)}…</div>'
    done, total = c["prompts_done"], c["prompts_total"]
    head = ("Collected" if view.phase != "collecting" else "Collecting") + (" (stopped early)" if c.get("stopped") else "")
    tail = " Now press <b>Train</b>." if view.phase == "collected" else ""
    return (f'<div class="tr-status"><progress value="{done}" max="{total}"></progress> '
            f'<b>{head}</b>: {done} / {total} prompts · <b data-k="states">{c["states"]:,}</b> states in '
            f'{c["blocks"]:,} blocks (+ {c["augmented_states"]:,} augmented).{tail}</div>')


def train_html(view: SlotView) -> str:
    if view.result is not None:
        return result_html(view.result)
    if not view.history:
        return f'<div class="tr-status">{escape(view.note)}…</div>'
    m, tpf = view.history[-1], next((h for h in reversed(view.history) if "tpf" in h), None)
    seen = f" · held-out TPF <b>{tpf['tpf']:.2f}</b> at step {tpf['step']}" if tpf else ""
    return (f'<div class="tr-status"><b>Training</b> ({escape(view.note)}): step <b data-k="step">{m["step"]}</b> · '
            f'{m["seconds"] / 60:.1f} min · consistency loss {m["consistency"]:.3f} · AR loss {m["ar"]:.3f}{seen}</div>')


def result_html(r: FitReport) -> str:
    b, a = r.before, r.after
    rounds = f" ({len(r.rounds)} rounds)" if len(r.rounds) > 1 else ""
    return (f'<div class="tr-status"><b>Trained</b>: {r.steps} steps{rounds} in {r.seconds / 60:.1f} min '
            f'(stopped by {escape(r.stopped_by)}). Held-out tokens per pass <b>{b["tpf"]:.2f} → {a["tpf"]:.2f}</b> '
            f'({r.eval_prompt_count} prompts, n = {r.data_meta["n"]}); perplexity {b["perplexity"]:.1f} → '
            f'{a["perplexity"]:.1f}; Jacobi output = its own greedy output on {a["matches_ar"]:.0%} of them. '
            'Name it and press <b>Save</b>.</div>')


def probe_html(view: SlotView) -> str:
    if view.probe is None:
        return EMPTY_GRID
    roles = (("base", "Before training", "the base model"),
             ("cllm", f"After step {view.probe_step}", "the weights being trained"))
    name = f"CLLM in training from {view.before.meta.model}, step {view.probe_step}"  # not the base's name
    probe = replace(view.probe, meta=replace(view.probe.meta, model=name))
    race = Race(view.before, probe, title=f"held-out prompt, step {view.probe_step}")
    return race_html(race, f"probe-{view.probe_id}", roles=roles)  # the same probe again keeps its place


def busy_html(message: str) -> str:
    return f'<div class="tr-status tr-busy">{escape(message)}</div>'
