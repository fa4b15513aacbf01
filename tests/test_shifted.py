"""Right token, wrong position (cllm.shifted) on hand-made states, and its layer in the grid."""
import pytest

from cllm.shifted import ShiftedRun, block_targets, shift_marks, shifted_runs


@pytest.mark.parametrize("state, target, runs", [
    ([9, 1, 2, 3, 8], [1, 2, 3, 4, 5], [ShiftedRun(1, 3, -1)]),  # one step late: belongs one place earlier
    ([1, 2, 3], [1, 2, 3], []),  # right where it is: not shifted
    ([7, 7, 1, 2, 3], [1, 2, 3, 4, 5, 6], [ShiftedRun(2, 3, -2)]),
    ([4, 5, 6, 9], [1, 2, 3, 4, 5, 6, 7], [ShiftedRun(0, 3, 3)]),  # early: belongs in the next block's part
    ([9, 1, 2, 8], [1, 2, 3, 4], []),  # a run of two is chance
    ([2, 3, 4, 5, 1, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8], [ShiftedRun(0, 4, 1), ShiftedRun(4, 3, -4)]),
    ([5, 2, 3, 4, 0], [1, 2, 3, 4, 5], []),  # 2, 3, 4 are right in place; no wrong run of 3
    ([1, 1, 1, 1], [0, 1, 1, 1, 1], []),  # only position 0 is wrong; 1..3 are right in place
])
def test_shifted_runs(state, target, runs):
    assert shifted_runs(state, target) == runs


def test_overlapping_runs_keep_the_longest_and_every_position_once():
    state, target = [3, 4, 5, 6, 7], [9, 9, 9, 3, 4, 5, 6, 7, 3, 4, 5]
    assert shifted_runs(state, target) == [ShiftedRun(0, 5, 3)]
    assert shifted_runs(state, target, min_run=6) == []
    marks = shift_marks([[0] * 5, state], target)
    assert marks == [{}, {0: 3, 1: 3, 2: 3, 3: 3, 4: 3}]


def test_block_targets_run_to_the_end_of_the_output():
    assert block_targets([1, 2, 3, 4, 5], [2, 2, 1]) == [[1, 2, 3, 4, 5], [3, 4, 5], [5]]


def test_the_grid_marks_the_layer_and_offers_the_toggle():
    from cllm.trajectory import Block, RunMeta, Trajectory
    from cllm.race import Race
    from cllm.ui.grid import race_html

    block = Block([[9, 1, 2, 3], [1, 2, 3, 4]], [0.01])
    traj = Trajectory(RunMeta(n=4, max_new_tokens=4, vocab_size=10), [5], [block])
    html = race_html(Race(traj, traj), "x")
    assert 'data-act="shift"' in html and "right token, wrong position" in html
    assert html.count('<td class="s-w sh"') == 2 * 3  # both panels: positions 1..3 of the guess, one place late
    assert "belongs 1 position earlier" in html
