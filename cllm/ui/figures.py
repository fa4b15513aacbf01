"""Plotly figure builders: pure functions from records/frames to go.Figure, explicit heights, one colour
per model role everywhere (base grey-blue, CLLM orange: distinguishable in common colour blindness)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cllm import stats
from cllm.trajectory import Trajectory

COLORS = {"base": "#4C78A8", "cllm": "#F58518"}
HEIGHT = 320


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=50, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def make_convergence_figure(runs: dict[str, Trajectory]) -> go.Figure:
    """Committed tokens vs iteration, one line per block, per model: steeper = more fast-forwarding."""
    fig = go.Figure()
    for role, traj in runs.items():
        for k, block in enumerate(traj.blocks):
            curve = stats.committed_curve(block)
            fig.add_trace(go.Scatter(x=list(range(len(curve))), y=curve, mode="lines+markers",
                                     line=dict(color=COLORS[role], width=1.5), marker=dict(size=4),
                                     name=role, legendgroup=role, showlegend=k == 0,
                                     hovertemplate=f"{role} block {k}<br>iteration %{{x}}: %{{y}} committed<extra></extra>"))
    return _layout(fig, "Convergence: committed tokens per iteration (one line per block)", "iteration", "committed tokens")


def make_fast_forward_figure(runs: dict[str, Trajectory]) -> go.Figure:
    """Tokens each pass adds to the correct prefix, as the paper counts them (cllm.stats.paper_passes), at
    each pass of the whole run; a confirming pass, which the paper does not count, is left out."""
    fig = go.Figure()
    for role, traj in runs.items():
        gains = stats.iterations_frame(traj)["paper_gain"].dropna()
        fig.add_trace(go.Bar(x=list(range(1, len(gains) + 1)), y=gains.tolist(), name=role, marker_color=COLORS[role]))
    fig.update_layout(barmode="group")
    return _layout(fig, "Tokens each pass adds (the paper's count; 1 = no fast-forward)", "pass (whole run)", "tokens")


def _per_block_bars(runs: dict[str, Trajectory], column: str, title: str, y: str) -> go.Figure:
    fig = go.Figure()
    for role, traj in runs.items():
        frame = stats.blocks_frame(traj)
        fig.add_trace(go.Bar(x=frame["block"], y=frame[column], name=role, marker_color=COLORS[role]))
    fig.update_layout(barmode="group")
    return _layout(fig, title, "block", y)


def make_stationary_figure(runs: dict[str, Trajectory]) -> go.Figure:
    return _per_block_bars(runs, "stationary", "Stationary tokens per block", "tokens")


def make_block_rate_figure(runs: dict[str, Trajectory]) -> go.Figure:
    return _per_block_bars(runs, "ff_rate", "Fast-forward rate per block (the paper's: mean tokens per pass)",
                           "tokens per pass")


def make_iterations_figure(runs: dict[str, Trajectory]) -> go.Figure:
    return _per_block_bars(runs, "iterations", "Iterations (forward passes) per block", "iterations")


def make_distribution_figure(frame: pd.DataFrame, column: str = "tpf") -> go.Figure:
    """Distribution over prompts of one per-prompt column, base vs CLLM."""
    fig = go.Figure()
    for role in frame["model"].unique():
        values = frame.loc[frame["model"] == role, column]
        fig.add_trace(go.Histogram(x=values, name=role, marker_color=COLORS.get(role), opacity=0.75, nbinsx=20))
    fig.update_layout(barmode="overlay")
    return _layout(fig, f"{column} over prompts", column, "prompts")


def make_sweep_figure(sweep: pd.DataFrame, column: str = "tpf") -> go.Figure:
    """TPF (or speedup) against block size n, one line per model."""
    fig = go.Figure()
    for role in sweep["model"].unique():
        part = sweep[sweep["model"] == role]
        fig.add_trace(go.Scatter(x=part["n"], y=part[column], mode="lines+markers", name=role,
                                 line=dict(color=COLORS.get(role))))
    fig.update_xaxes(type="log", tickvals=sorted(sweep["n"].unique()))
    return _layout(fig, f"{column} vs block size n", "n (block size)", column)


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
