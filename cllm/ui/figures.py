"""Plotly figure builders: pure functions from records/frames to go.Figure, explicit heights, one colour
per model role everywhere (base grey-blue, CLLM orange: distinguishable in common colour blindness)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cllm import stats
from cllm.trajectory import Trajectory

COLORS = {"base": "#4C78A8", "cllm": "#F58518"}
SIDE_COLORS = (COLORS["base"], COLORS["cllm"])  # runs dicts are (left, right) = (base, CLLM) or two decoders
HEIGHT = 320
REFERENCE = dict(color="#888", dash="dot", width=1)  # the 1x line: what greedy AR (one token per pass) scores
SPEEDUP_AXIS = "speed-up vs own greedy AR (wall clock)"  # evaluate.aggregate: ar_seconds / decode_seconds per model
AXES = {"tpf": "tokens per forward pass", "speedup": SPEEDUP_AXIS}  # sweep/distribution columns as axes say them
N_BINS = 20  # histogram bins, shared by both models


def _reference(fig: go.Figure, text: str, y: float = 1.0) -> go.Figure:
    """A dotted horizontal line at y (1x: greedy AR's one token per pass, or no speed-up)."""
    fig.add_hline(y=y, line=REFERENCE, annotation_text=text, annotation_position="bottom right")
    return fig


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=50, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def make_convergence_figure(runs: dict[str, Trajectory]) -> go.Figure:
    """Committed tokens vs iteration, one line per block, per side: steeper = more fast-forwarding.
    `runs` (here and below) maps each side's legend name to its run, left side first."""
    fig = go.Figure()
    for color, (role, traj) in zip(SIDE_COLORS, runs.items()):
        for k, block in enumerate(traj.blocks):
            curve = stats.committed_curve(block)
            fig.add_trace(go.Scatter(x=list(range(len(curve))), y=curve, mode="lines+markers",
                                     line=dict(color=color, width=1.5), marker=dict(size=4),
                                     name=role, legendgroup=role, showlegend=k == 0,
                                     hovertemplate=f"{role} block {k + 1}<br>pass %{{x}}: %{{y}} committed<extra></extra>"))
    return _layout(fig, "Convergence (one line per block)", "pass (0 = the initial guess)", "committed tokens")


def make_fast_forward_figure(runs: dict[str, Trajectory]) -> go.Figure:
    """Tokens each pass adds to the correct prefix, as the paper counts them (cllm.stats.paper_passes), at
    each pass of the whole run; a confirming pass, which the paper does not count, is left out."""
    fig = go.Figure()
    for color, (role, traj) in zip(SIDE_COLORS, runs.items()):
        gains = stats.iterations_frame(traj)["paper_gain"].dropna()
        fig.add_trace(go.Bar(x=list(range(1, len(gains) + 1)), y=gains.tolist(), name=role, marker_color=color))
    fig.update_layout(barmode="group")
    _reference(fig, "1x: greedy AR")
    return _layout(fig, "Tokens each pass adds (paper's count)", "pass (whole run)", "tokens (1 = no fast-forward)")


def _per_block_bars(runs: dict[str, Trajectory], column: str, title: str, y: str) -> go.Figure:
    """One bar per block and model; blocks counted from 1, as the player counts them."""
    fig = go.Figure()
    for color, (role, traj) in zip(SIDE_COLORS, runs.items()):
        frame = stats.blocks_frame(traj)
        fig.add_trace(go.Bar(x=frame["block"] + 1, y=frame[column], name=role, marker_color=color))
    fig.update_layout(barmode="group")
    fig.update_xaxes(dtick=1)
    return _layout(fig, title, "block (from 1)", y)


def make_stationary_figure(runs: dict[str, Trajectory]) -> go.Figure:
    return _per_block_bars(runs, "stationary", "Stationary tokens per block", "tokens")


def make_block_rate_figure(runs: dict[str, Trajectory]) -> go.Figure:
    fig = _per_block_bars(runs, "ff_rate", "Fast-forward rate per block (paper's)", "mean tokens per pass")
    return _reference(fig, "1x: greedy AR")


def make_iterations_figure(runs: dict[str, Trajectory]) -> go.Figure:
    return _per_block_bars(runs, "iterations", "Iterations (forward passes) per block", "iterations")


def shared_bins(values: pd.Series, n_bins: int = N_BINS) -> dict:
    """One set of histogram bins over all values (both models), so base and CLLM bars line up."""
    low, high = float(values.min()), float(values.max())
    size = (high - low) / n_bins if high > low else 0.1
    return dict(start=low, end=high + size, size=size)


def make_distribution_figure(frame: pd.DataFrame, column: str = "tpf") -> go.Figure:
    """Distribution over prompts of one per-prompt column, base vs CLLM, in the same bins; a dotted line at
    1 (greedy AR's tokens per pass, or no speed-up) where the column is a rate against it."""
    fig = go.Figure()
    bins = shared_bins(frame[column]) if len(frame) else None
    for role in frame["model"].unique():
        values = frame.loc[frame["model"] == role, column]
        fig.add_trace(go.Histogram(x=values, name=role, marker_color=COLORS.get(role), opacity=0.75, xbins=bins,
                                   autobinx=False))
    fig.update_layout(barmode="overlay")
    if column in AXES:
        fig.add_vline(x=1.0, line=REFERENCE, annotation_text="1x: greedy AR", annotation_position="top right")
    label = AXES.get(column, column)
    return _layout(fig, f"{label[0].upper()}{label[1:]} over prompts", label, "prompts")


def make_sweep_figure(sweep: pd.DataFrame, column: str = "tpf") -> go.Figure:
    """TPF (or speed-up) against block size n, one line per model, with the 1x line of greedy AR."""
    fig = go.Figure()
    for role in sweep["model"].unique():
        part = sweep[sweep["model"] == role]
        fig.add_trace(go.Scatter(x=part["n"], y=part[column], mode="lines+markers", name=role,
                                 line=dict(color=COLORS.get(role))))
    fig.update_xaxes(type="log", tickvals=sorted(sweep["n"].unique()))
    _reference(fig, "1x: greedy AR")
    label = AXES.get(column, column)
    return _layout(fig, f"{label[0].upper()}{label[1:]} vs block size n", "n (block size, log scale)", label)


def make_loss_figure(history: list[dict]) -> go.Figure:
    """Training losses per optimizer step (log scale: they fall over orders of magnitude)."""
    fig = go.Figure()
    steps = [m["step"] for m in history]
    for key, label, color in (("consistency", "consistency loss", COLORS["cllm"]), ("ar", "AR loss", COLORS["base"])):
        fig.add_trace(go.Scatter(x=steps, y=[m.get(key) for m in history], mode="lines", name=label,
                                 line=dict(color=color, width=1.5)))
    fig.update_yaxes(type="log")
    return _layout(fig, "Training losses", "step", "loss (log scale)")


def make_tpf_curve_figure(history: list[dict], before: float | None) -> go.Figure:
    """Held-out tokens per forward pass at step 0 (the base model) and every K steps; greedy AR is 1.0."""
    points = ([(0, before)] if before is not None else []) + [(m["step"], m["tpf"]) for m in history if "tpf" in m]
    fig = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                               name="Jacobi TPF", line=dict(color=COLORS["cllm"], width=2)))
    fig.add_hline(y=1.0, line=dict(color=COLORS["base"], dash="dot"), annotation_text="greedy AR: 1 token per pass",
                  annotation_position="bottom right")
    for step, number in round_starts(history):
        fig.add_vline(x=step, line=dict(color="#888", dash="dash", width=1), annotation_text=f"round {number}",
                      annotation_position="top left")
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Tokens per forward pass on held-out prompts", "step", "tokens per pass")


def round_starts(history: list[dict]) -> list[tuple[int, int]]:
    """(last step before it, round) for every training round after the first: where its new trajectories came in."""
    return [(before["step"], m["round"]) for before, m in zip(history, history[1:])
            if m.get("round", 1) != before.get("round", 1)]
