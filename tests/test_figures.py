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


def test_frame_figures():
    frame = pd.DataFrame({"model": ["base", "cllm"], "tpf": [1.0, 2.5]})
    assert [d.name for d in F.make_distribution_figure(frame).data] == ["base", "cllm"]
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
