"""Figure builders return figures with the expected traces and explicit heights."""
import pandas as pd

from cllm.ui import figures as F
from test_collocations import JUMP, SLOW, traj


def runs():
    return {"base": traj(SLOW, SLOW), "cllm": traj(JUMP)}


def test_convergence_one_line_per_block():
    fig = F.make_convergence_figure(runs())
    assert len(fig.data) == 3 and fig.layout.height == F.HEIGHT
    assert list(fig.data[2].y) == [0, 1, 5]
    assert {d.line.color for d in fig.data} == {F.COLORS["base"], F.COLORS["cllm"]}


def test_bar_figures():
    ff = F.make_fast_forward_figure(runs())
    assert [list(d.y) for d in ff.data] == [[1, 1, 1, 1], [1, 4]]  # the paper's count: tokens each pass adds
    rate = F.make_block_rate_figure(runs())
    assert [list(d.y) for d in rate.data] == [[1.0, 1.0], [2.5]]
    st = F.make_stationary_figure(runs())
    assert [list(d.y) for d in st.data] == [[0, 0], [2]]
    it = F.make_iterations_figure(runs())
    assert [list(d.y) for d in it.data] == [[2, 2], [2]]
    assert [list(d.x) for d in it.data] == [[1, 2], [1]]  # blocks counted from 1, as the player counts them


def _reference_ys(fig):
    return [s.y0 for s in fig.layout.shapes if s.type == "line" and s.yref == "y"]


def test_reference_lines_at_one():
    """Where a rate against greedy AR is plotted, a dotted 1x line; counts get none."""
    assert _reference_ys(F.make_fast_forward_figure(runs())) == [1.0]
    assert _reference_ys(F.make_block_rate_figure(runs())) == [1.0]
    assert _reference_ys(F.make_stationary_figure(runs())) == []
    sweep = pd.DataFrame({"model": ["base", "cllm"], "n": [4, 4], "tpf": [1, 2], "speedup": [0.9, 1.6]})
    speed = F.make_sweep_figure(sweep, "speedup")
    assert _reference_ys(speed) == [1.0] and speed.layout.yaxis.title.text == F.SPEEDUP_AXIS
    assert "greedy AR" in F.SPEEDUP_AXIS and "wall clock" in F.SPEEDUP_AXIS


def test_convergence_hover_counts_blocks_from_one():
    fig = F.make_convergence_figure(runs())
    assert "block 1<" in fig.data[0].hovertemplate and "block 2<" in fig.data[1].hovertemplate


def test_frame_figures():
    frame = pd.DataFrame({"model": ["base", "base", "cllm", "cllm"], "tpf": [1.0, 1.1, 1.9, 2.5]})
    dist = F.make_distribution_figure(frame)
    assert [d.name for d in dist.data] == ["base", "cllm"] and dist.layout.xaxis.title.text == "tokens per forward pass"
    base_bins, cllm_bins = (d.xbins for d in dist.data)
    assert base_bins == cllm_bins and base_bins.start <= 1.0 and base_bins.end > 2.5  # one set of bins for both
    assert [s.x0 for s in dist.layout.shapes] == [1.0]  # greedy AR's 1 token per pass
    sweep = pd.DataFrame({"model": ["base", "base", "cllm", "cllm"], "n": [4, 8, 4, 8], "tpf": [1, 1.1, 2, 3]})
    fig = F.make_sweep_figure(sweep)
    assert [list(d.y) for d in fig.data] == [[1, 1.1], [2, 3]]


def test_training_figures():
    history = [{"step": 1, "consistency": 2.0, "ar": 3.0}, {"step": 2, "consistency": 1.0, "ar": 2.5, "tpf": 1.4}]
    loss = F.make_loss_figure(history)
    assert [list(d.y) for d in loss.data] == [[2.0, 1.0], [3.0, 2.5]] and loss.layout.yaxis.type == "log"
    tpf = F.make_tpf_curve_figure(history, before=1.05)
    assert list(tpf.data[0].x) == [0, 2] and list(tpf.data[0].y) == [1.05, 1.4] and tpf.layout.height == F.HEIGHT
    assert list(F.make_tpf_curve_figure([], None).data[0].x) == []  # nothing measured yet: an empty chart
