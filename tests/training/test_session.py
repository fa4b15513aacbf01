"""The app's training slot without the UI: collect -> train -> save in a background thread, live metrics and
trajectories, busy handling for a second visitor, Stop, a closed tab, and failures, on the tiny model."""
from __future__ import annotations

import time

import pytest

from cllm.training.collect import CollectConfig
from cllm.training.session import TrainSlot
from cllm.training.slot import CollectJob, SlotBusy
from cllm.training.trained import list_trained
from cllm.training.config import TrainConfig

PROMPTS = ("def add(a, b):", "for i in range(", "class Point:", "def f(x):\n    return", "print(", "import os",
           "while True:", "if x > 0:")
HELDOUT = ("def sub(a, b):", "for j in range(")
QUICK = dict(lr=3e-3, ar_weight=1.0, batch_size=4, eval_prompts=2, eval_max_new_tokens=8, device="cpu")


def job(model, prompts=PROMPTS) -> CollectJob:
    return CollectJob(str(model), prompts, HELDOUT, CollectConfig(n=4, max_new_tokens=8, batch_size=4), "test prompts")


def wait_for(slot, owner, phases, timeout=120.0):
    view, deadline = slot.view(owner), time.monotonic() + timeout
    while view.phase not in phases:
        assert time.monotonic() < deadline, f"still {view.phase} ({view.note})"
        view = slot.wait(owner, view.version, 1.0)
    return view


@pytest.fixture()
def slot(tmp_path):
    s = TrainSlot(work_root=tmp_path, probe_tokens=8)
    yield s
    s.reset()


def test_collect_train_save(slot, tiny_model_dir, tmp_path):
    slot.start_collect("a", "Ada", job(tiny_model_dir))
    view = wait_for(slot, "a", ("collected", "failed"))
    assert view.phase == "collected" and not view.error and view.mine and view.owner == "Ada"
    c = view.counts
    assert c["prompts_done"] == c["prompts_total"] == len(PROMPTS) and c["states"] > c["blocks"] > 0
    assert not c["stopped"]
    slot.start_train("a", TrainConfig(max_steps=6, eval_every=2, **QUICK))
    view = wait_for(slot, "a", ("trained", "failed"))
    assert view.phase == "trained" and not view.error, view.error
    assert [m["step"] for m in view.history] == list(range(1, 7))
    assert [m["step"] for m in view.history if "tpf" in m] == [2, 4, 6]
    assert all(m["consistency"] >= 0 and m["ar"] > 0 for m in view.history)
    assert view.before.meta.n == 4 and view.before.prompt == HELDOUT[0] and view.before.matches_ar
    assert view.before_tpf == view.result.before["tpf"] >= 1.0
    assert view.probe_step == 6 and view.probe.matches_ar and view.probe is not view.before
    assert view.result.after["matches_ar"] == 1.0 and view.result.stopped_by == "max steps (6)"

    folder = tmp_path / "trained"
    path = slot.save("a", "my-cllm", folder)
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    card = (path / "README.md").read_text()
    assert "Train tab" in card and "test prompts" in card and "Jacobi tokens per forward pass" in card
    [model] = list_trained(folder)
    assert (model.name, model.base_model, model.n) == ("my-cllm", str(tiny_model_dir), 4)
    assert model.tpf_after == pytest.approx(view.result.after["tpf"])
    assert slot.view("a").phase == "saved" and slot.view("a").saved == ["my-cllm"]
    with pytest.raises(ValueError, match="already exists"):
        slot.save("a", "my-cllm", folder)
    with pytest.raises(ValueError, match="not a valid name"):
        slot.save("a", "../escape", folder)
    assert sorted(p.name for p in folder.iterdir()) == ["my-cllm"]  # nothing half-written, nothing outside


def test_second_visitor_is_told_who_is_busy(slot, tiny_model_dir, tmp_path):
    slot.start_collect("a", "Ada", job(tiny_model_dir))
    for attempt in (lambda: slot.start_collect("b", "Bob", job(tiny_model_dir)),
                    lambda: slot.start_train("b", TrainConfig(max_steps=1, **QUICK))):
        with pytest.raises(SlotBusy, match="Busy: Ada is (collecting|holding collected data)"):
            attempt()
    assert slot.view("b").busy.startswith("Busy: Ada") and not slot.view("b").mine
    wait_for(slot, "a", ("collected",))
    with pytest.raises(SlotBusy, match="Ada is holding collected data"):  # A's data waits for A
        slot.start_collect("b", "Bob", job(tiny_model_dir))
    with pytest.raises(SlotBusy, match="Busy: Ada"):
        slot.save("b", "x", tmp_path)
    assert slot.stop("b") == "Nothing is running."
    slot.hold_seconds = 0  # A went away: the hold expires and B may start
    slot.start_collect("b", "Bob", job(tiny_model_dir))
    assert slot.view("b").mine and slot.view("a").busy.startswith("Busy: Bob")
    with pytest.raises(SlotBusy, match="Busy: Bob is collecting"):
        slot.start_train("a", TrainConfig(max_steps=1, **QUICK))
    wait_for(slot, "b", ("collected",))
    with pytest.raises(ValueError, match="collect training data first"):
        slot.start_train("a", TrainConfig(max_steps=1, **QUICK))  # A's data went when B took the slot


def test_stop_ends_training_after_the_current_step(slot, tiny_model_dir):
    slot.start_collect("a", "Ada", job(tiny_model_dir))
    wait_for(slot, "a", ("collected",))
    slot.start_train("a", TrainConfig(max_steps=10_000, **QUICK))
    view = slot.view("a")
    while not view.history:
        view = slot.wait("a", view.version, 1.0)
    with pytest.raises(SlotBusy, match="Busy: Ada is training"):
        slot.stop("b")
    with pytest.raises(SlotBusy, match="Your training is still running"):
        slot.start_collect("a", "Ada", job(tiny_model_dir))
    assert slot.stop("a").startswith("Stopping")
    view = wait_for(slot, "a", ("trained", "failed"))
    assert view.result.stopped_by == "stop request" and view.result.steps < 50
    assert view.result.after["matches_ar"] == 1.0


def test_a_job_nobody_watches_stops(tiny_model_dir, tmp_path):
    slot = TrainSlot(work_root=tmp_path, orphan_seconds=0.0, probe_tokens=8)  # every poll is already too late
    try:
        slot.start_collect("a", "Ada", job(tiny_model_dir))
        view = wait_for(slot, "a", ("collected", "failed"))
        assert view.counts["stopped"] and view.counts["prompts_done"] == 4  # one batch of 4, then it stopped
        slot.start_train("a", TrainConfig(max_steps=10_000, **QUICK))
        view = wait_for(slot, "a", ("trained", "failed"))
        assert view.result.steps == 1 and view.result.stopped_by == "stop request"
    finally:
        slot.reset()


def test_a_failed_job_says_why_and_frees_the_slot(slot, tiny_model_dir):
    slot.start_collect("a", "Ada", job("/no/such/model"))
    view = wait_for(slot, "a", ("failed",))
    assert "no model folder" in view.error and view.busy == ""
    slot.start_collect("b", "Bob", job(tiny_model_dir, ("x" * 3000,) * 2))  # too long for the context: nothing to train
    view = wait_for(slot, "b", ("failed", "collected"))
    assert view.phase == "failed" and "collected no training blocks" in view.error
    with pytest.raises(ValueError, match="collect training data first"):
        slot.start_train("b", TrainConfig(max_steps=1, **QUICK))
    with pytest.raises(ValueError, match="nothing to save"):
        slot.save("b", "x")
