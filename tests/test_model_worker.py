"""The one model worker (cllm.ui.model_worker): model work one request at a time, first come first served, a
request that leaves (closed page, error) hands the models on, and a shipped race never waits behind it."""
from __future__ import annotations

import inspect
import threading
import time

import pytest
import torch

from cllm.jacobi import JacobiConfig
from cllm.models import DEFAULT_BASE, DEFAULT_CLLM
from cllm.race import GALLERY_DIR, load_race
from cllm.ui import explore_tab, stats_sweep, stats_tab
from cllm.ui.model_worker import MODELS, ModelWorker

WAIT = 30  # seconds a test waits for a thread before failing (never reached when the worker is right)


def wait_until(condition, what: str) -> None:
    deadline = time.time() + WAIT
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Holder:
    """A request that holds the worker's models until told to leave."""

    def __init__(self, worker: ModelWorker):
        self.holding, self.leave = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
        self.thread.start()
        assert self.holding.wait(WAIT)

    def _run(self, worker: ModelWorker) -> None:
        with worker.hold():
            self.holding.set()
            self.leave.wait(WAIT)

    def release(self) -> None:
        self.leave.set()
        self.thread.join(WAIT)


def while_held(call):
    """call()'s result, called while another request holds MODELS: an answer served without the models must
    not wait behind it."""
    holder = Holder(MODELS)
    try:
        return call()
    finally:
        holder.release()


def no_model_work(*args, **kwargs):
    """Stands in for a handler's model work where a served answer must not reach it."""
    raise ValueError("a recorded request must not load or decode a model")


def answers_behind_a_holder(answers) -> tuple[tuple, list]:
    """A handler's answers (a generator not started yet) consumed while another request holds MODELS:
    (its first answer, given while it waited; all of them, once the holder left and it finished)."""
    holder, said = Holder(MODELS), []
    thread = threading.Thread(target=lambda: said.extend(answers), daemon=True)
    thread.start()
    try:
        wait_until(lambda: said, "the waiting note")
        first = said[0]
    finally:
        holder.release()
    thread.join(WAIT)
    assert not thread.is_alive()
    return first, said


def test_requests_get_the_models_in_the_order_they_came_one_at_a_time():
    worker, log = ModelWorker(), []
    holder = Holder(worker)

    def request(k: int) -> None:
        with worker.hold():
            log.append(("start", k))
            time.sleep(0.01)
            log.append(("end", k))

    threads = []
    for k in range(5):
        threads.append(threading.Thread(target=request, args=(k,)))
        threads[-1].start()
        wait_until(lambda: worker.waiting() == k + 2, f"request {k} in line")
    holder.release()
    for t in threads:
        t.join(WAIT)
    assert log == [(word, k) for k in range(5) for word in ("start", "end")]  # in order, never two at once
    assert worker.waiting() == 0


def test_a_waiting_request_is_told_how_many_are_ahead_as_the_line_moves():
    worker = ModelWorker()
    first = Holder(worker)
    second_in, second_go = threading.Event(), threading.Event()

    def second() -> None:
        with worker.hold():
            second_in.set()
            second_go.wait(WAIT)

    threading.Thread(target=second, daemon=True).start()
    wait_until(lambda: worker.waiting() == 2, "the second request in line")
    with worker.turn(poll_seconds=0.01) as waits:
        assert next(waits) == 2
        first.release()
        assert second_in.wait(WAIT) and next(waits) == 1
        second_go.set()
        assert list(waits) == []  # its turn: the iterator ends
        assert worker.waiting() == 1  # this request alone, at work
    assert worker.waiting() == 0


def test_a_request_closed_while_waiting_leaves_the_line():
    worker = ModelWorker()
    holder = Holder(worker)

    def request():  # as run_race: Gradio closes the generator when its visitor leaves
        with worker.turn() as waits:
            yield from waits
            yield "at work"

    leaving, staying = request(), request()
    assert next(leaving) == 1 and next(staying) == 2
    leaving.close()
    assert worker.waiting() == 2
    holder.release()
    assert next(staying) == "at work"  # moved up past the one that left, then got the models
    staying.close()
    assert worker.waiting() == 0


def test_work_that_raises_hands_the_models_on():
    worker = ModelWorker()
    with pytest.raises(RuntimeError, match="boom"):
        with worker.hold():
            raise RuntimeError("boom")
    assert worker.waiting() == 0
    with worker.hold():  # not left locked
        assert worker.waiting() == 1


def test_stats_handlers_keep_their_signature_for_gradio():
    for handler in (stats_tab.run_dataset, stats_sweep.run_sweep):
        assert "progress" in inspect.signature(handler).parameters  # Gradio passes gr.Progress by it


def no_progress(*args, **kwargs):
    return None


def test_a_shipped_race_is_served_while_a_live_race_holds_the_models(monkeypatch):
    monkeypatch.setattr(explore_tab, "cached_dtype", lambda: torch.float32)  # a CPU app, whatever runs the test
    prompt = load_race(GALLERY_DIR / "heldout-03.json").prompt
    defaults = JacobiConfig()
    ask = (prompt, DEFAULT_BASE, DEFAULT_CLLM, defaults.n, defaults.max_new_tokens)
    holder = Holder(MODELS)
    try:
        served = []
        thread = threading.Thread(target=lambda: served.extend(
            explore_tab.run_race(*ask, 0, defaults.init, progress=no_progress)), daemon=True)
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive() and "shipped gallery" in served[0][1]
        live = explore_tab.run_race(*ask, 1, defaults.init, progress=no_progress)  # seed 1: never recorded
        player, note, download, state = next(live)
        assert "Waiting for the models" in note and "1 request is ahead" in note
    finally:
        holder.release()
    rest = list(live)
    assert "shipped gallery" not in rest[-1][1] and rest[-1][-1].base.tokens == served[0][-1].base.tokens


def test_a_full_line_refuses_a_request_instead_of_queueing_it():
    from cllm.ui.model_worker import LineFull
    worker = ModelWorker()
    holder = Holder(worker)
    with worker.turn(max_line=2) as waits:
        assert next(waits) == 1
        with pytest.raises(LineFull, match="2 requests are waiting"):
            with worker.turn(max_line=2):
                pass
        assert worker.waiting() == 2  # the refused one never joined
        holder.release()
        assert list(waits) == []


def test_a_live_run_over_the_line_limit_is_one_clear_message(monkeypatch):
    import gradio as gr
    monkeypatch.setattr(explore_tab, "MAX_LINE", 1)
    holder = Holder(MODELS)
    try:
        with pytest.raises(gr.Error, match="waiting for the models already.*click an example"):
            list(explore_tab.run_race("def f(x):", DEFAULT_BASE, DEFAULT_CLLM, 4, 8, 7, "prompt", progress=no_progress))
    finally:
        holder.release()


def test_a_visitor_who_left_while_waiting_costs_no_model_work(monkeypatch):
    started = []
    monkeypatch.setattr(explore_tab, "live_race", lambda *args, **kw: started.append(args) or iter(()))
    holder = Holder(MODELS)
    request = explore_tab.run_race("def f(x):", DEFAULT_BASE, DEFAULT_CLLM, 4, 8, 7, "prompt", progress=no_progress)
    assert "1 request is ahead" in next(request)[1]
    holder.release()
    assert "Your turn" in next(request)[1] and started == []  # Gradio closes a gone visitor's generator here
    request.close()
    assert started == [] and MODELS.waiting() == 0


def test_a_request_decoded_before_plays_again_at_once_and_any_other_decodes():
    ask = ("def f(x):", DEFAULT_BASE, DEFAULT_CLLM, 4, 12)
    first = list(explore_tab.run_race(*ask, 7, "prompt", progress=no_progress))
    assert len(first) == 3 and "Decoded earlier" not in first[-1][1]
    again = list(explore_tab.run_race(*ask, 7, "prompt", progress=no_progress))
    assert len(again) == 1 and "Decoded earlier on this server" in again[0][1]
    assert again[0][-1] is first[-1][-1] and "identical to greedy" in again[0][0]
    other = list(explore_tab.run_race(*ask, 8, "prompt", progress=no_progress))  # another seed: decoded
    assert len(other) == 3 and other[-1][-1].base.tokens == first[-1][-1].base.tokens


def test_a_request_that_waited_behind_the_same_one_plays_its_race():
    from cllm.ui.common import decoder_config, read_config
    ask = ("def g(y):", DEFAULT_BASE, DEFAULT_CLLM, 4, 12, 9, "prompt")
    holder = Holder(MODELS)  # the first visitor's request, at work
    second = explore_tab.run_race(*ask, progress=no_progress)
    assert "1 request is ahead" in next(second)[1]
    config = decoder_config(read_config(4, 12, 9, "prompt"), "jacobi")
    asked = [explore_tab.Request.asked(m, config, False, torch.float32) for m in (DEFAULT_BASE, DEFAULT_CLLM)]
    live = explore_tab.LiveAsk(ask[0], [DEFAULT_BASE, DEFAULT_CLLM], [config, config], False, asked)
    first = list(explore_tab.live_race(live, no_progress))
    holder.release()  # the first visitor's race is done and remembered
    (answer,) = list(second)
    assert "Decoded earlier on this server" in answer[1] and answer[-1] is first[-1][-1]


class Waiter:
    """A request in line that holds the models, once its turn comes, until told to leave."""

    def __init__(self, worker: ModelWorker, order: list, name: str, ahead: bool = False):
        self.leave = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(worker, order, name, ahead), daemon=True)
        self.thread.start()

    def _run(self, worker: ModelWorker, order: list, name: str, ahead: bool) -> None:
        with worker.turn(poll_seconds=0.01, ahead=ahead) as waits:
            for _ in waits:
                pass
            order.append(name)
            self.leave.wait(WAIT)

    def release(self) -> None:
        self.leave.set()
        self.thread.join(WAIT)


def test_short_work_goes_before_the_plain_requests_waiting_but_after_the_short_ones():
    worker, order = ModelWorker(), []
    holder = Holder(worker)
    waiters = []
    for name, ahead in (("plain 1", False), ("first 1", True), ("first 2", True), ("plain 2", False)):
        waiters.append(Waiter(worker, order, name, ahead))
        wait_until(lambda: worker.waiting() == len(waiters) + 1, f"{name} in line")
    by_name = {name: w for name, w in zip(("plain 1", "first 1", "first 2", "plain 2"), waiters)}
    holder.release()
    for turn in range(1, len(waiters) + 1):  # each leaves once it holds the models
        wait_until(lambda: len(order) == turn, "the next turn")
        by_name[order[-1]].release()
    assert order == ["first 1", "first 2", "plain 1", "plain 2"] and worker.waiting() == 0


def test_a_live_race_shows_its_first_block_before_a_whole_race_waiting_then_waits_behind_it():
    """On a CPU: a request that arrives while a whole race decodes and another waits has its first block on
    screen after the one at work; the rest of its race waits behind the one that was waiting."""
    holder = Holder(MODELS)  # a whole race at work
    request = explore_tab.run_race("def h(z):", DEFAULT_BASE, DEFAULT_CLLM, 4, 12, 5, "prompt", progress=no_progress)
    assert "1 request is ahead" in next(request)[1]
    order = []
    plain = Waiter(MODELS, order, "a whole race")  # joins after the request above, at the end of the line
    wait_until(lambda: MODELS.waiting() == 3, "the whole race in line")
    holder.release()
    assert "Your turn" in next(request)[1]
    html, status, _, _ = next(request)
    assert "Decoding: the first block" in status and html.count('class="cr-panel"') == 2 and order == []
    status = next(request)[1]  # back in line, behind the whole race that waited
    assert status.startswith(explore_tab.REST_WAITS) and "1 request is ahead" in status
    wait_until(lambda: order == ["a whole race"], "the whole race's turn")
    plain.release()
    *_, (html, status, path, race) = list(request)
    assert race.base.matches_ar and race.cllm.matches_ar and "identical to greedy" in html and MODELS.waiting() == 0


def test_on_cuda_a_live_race_takes_one_turn(monkeypatch):
    turns = []
    real_turn = MODELS.turn
    monkeypatch.setattr(MODELS, "turn", lambda **kw: turns.append(kw) or real_turn(**kw))
    ask = ("def k(w):", DEFAULT_BASE, DEFAULT_CLLM, 4, 12, 5, "prompt")
    list(explore_tab.run_race(*ask, progress=no_progress))
    assert [t.get("ahead") for t in turns] == [True, None]  # a CPU: the first block, then the rest
    turns.clear()
    monkeypatch.setattr(explore_tab, "pick_device", lambda: torch.device("cuda"))
    list(explore_tab.run_race(*ask[:-2], 6, "prompt", progress=no_progress))  # another seed: decoded
    assert [t.get("ahead") for t in turns] == [False]
