"""The app's one model worker: model work (a live race, a Stats run) runs one request at a time, first come
first served, while answers that need no model (a shipped race) are given at once. A live race's first block
(seconds of work) goes before the whole races waiting (a minute each with the real pair on a CPU), so a
visitor's race is on screen after the request at work now, not after every one in line.

Gradio's per-event queue (`concurrency_id`, `concurrency_limit=1`) cannot tell a shipped race from a live
one before the function runs, so a visitor who pressed Run on a shipped prompt waited behind every live race
queued before theirs (minutes with the real pair on a CPU). The Run event is therefore not limited by
Gradio; its model part waits here instead, and says how many requests are ahead while it waits.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

POLL_SECONDS = 1.0  # how often a waiting request re-reads its place (it is also woken when the line moves)
# Each request in line holds one of Gradio's worker threads (40 for the whole app, shipped races included),
# so the line is bounded well below that; 16 races of the real pair are ~9 minutes of a 2-core CPU.
MAX_LINE = 16


class LineFull(RuntimeError):
    """The line is as long as it may get: the request is refused rather than queued."""


class ModelWorker:
    """A first-come-first-served line for the models. A request that leaves the line (its visitor closed the
    page, so Gradio closed the generator; or the work raised) hands the models to the next at once."""

    def __init__(self) -> None:
        self._line: deque[object] = deque()  # the first holds the models; the rest wait in order
        self._first: set[object] = set()  # tickets that joined ahead of the plain ones (turn(ahead=True))
        self._moved = threading.Condition()

    def waiting(self) -> int:
        """Requests in line, the one at work included."""
        with self._moved:
            return len(self._line)

    @contextmanager
    def turn(self, poll_seconds: float = POLL_SECONDS, max_line: int | None = None,
             ahead: bool = False) -> Iterator[Iterator[int]]:
        """Joins the line (LineFull when `max_line` requests are in it already): at its end, or with `ahead`
        (short work) behind the request at work and the others that joined ahead only. The body must exhaust
        the iterator it gets (each item: requests ahead, yielded when that number changes) before any model
        work, and holds the models until it leaves the block."""
        ticket = object()
        with self._moved:
            if max_line is not None and len(self._line) >= max_line:
                raise LineFull(f"{len(self._line)} requests are waiting for the models already")
            if ahead:
                waiting_ahead = sum(t in self._first for t in list(self._line)[1:])
                self._line.insert(min(len(self._line), 1 + waiting_ahead), ticket)
                self._first.add(ticket)
            else:
                self._line.append(ticket)
        try:
            yield self._wait(ticket, poll_seconds)
        finally:
            with self._moved:
                self._line.remove(ticket)
                self._first.discard(ticket)
                self._moved.notify_all()

    def _wait(self, ticket: object, poll_seconds: float) -> Iterator[int]:
        said = None
        while True:
            with self._moved:
                ahead = self._line.index(ticket)
                if ahead and ahead == said:
                    self._moved.wait(poll_seconds)
                    ahead = self._line.index(ticket)
            if not ahead:
                return
            if ahead != said:
                said = ahead
                yield ahead

    @contextmanager
    def hold(self) -> Iterator[None]:
        """The models for a plain (non-generator) function: waits silently for its turn."""
        with self.turn() as waits:
            for _ in waits:
                pass
            yield


MODELS = ModelWorker()  # the one line every model-using event of the app joins


def waiting_note(ahead: int, served_at_once: str) -> str:
    """What a waiting visitor reads: their place, and what they may have at once instead."""
    requests = "request is" if ahead == 1 else "requests are"
    return f"**Waiting for the models**: {ahead} {requests} ahead of yours (one decodes at a time). {served_at_once}"
