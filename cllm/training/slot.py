"""The training slot's state (one SlotState per run), what a poller sees of it (SlotView), a collection job,
and the thread count its jobs use. cllm.training.session runs the slot."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from cllm.models import usable_cores
from cllm.training.collect import CollectConfig
from cllm.training.report import FitReport
from cllm.trajectory import Trajectory


class SlotBusy(Exception):
    """Someone else holds the slot (or this visitor's own job is still running): the message says who and what."""


@dataclass(frozen=True)
class CollectJob:
    model: str  # base model: registry name, folder or hub id
    prompts: tuple[str, ...]  # the prompt pool: round 1 collects on the first config.limit, later rounds the next
    heldout: tuple[str, ...]  # held-out prompts for the TPF curve, perplexity and the live grid
    config: CollectConfig
    source: str  # where the prompts came from, in words (status lines, the model card)


@dataclass
class SlotView:
    """What a poller sees; a copy, safe to read while the job goes on."""

    phase: str  # idle, collecting, collected, training, trained, saved, failed
    owner: str  # the holder's name as they gave it ("" when idle)
    mine: bool  # the slot is the asking visitor's
    note: str  # what the job is doing right now, in words
    version: int  # changes whenever anything else does
    counts: dict = field(default_factory=dict)  # collection: prompts_done, prompts_total, blocks, states, ...
    history: list[dict] = field(default_factory=list)  # training metrics per step (TrainingMonitor's)
    before_tpf: float | None = None  # held-out TPF of the base model (the curve's step 0)
    before: Trajectory | None = None  # the held-out prompt decoded by the base model
    probe: Trajectory | None = None  # the same prompt decoded with the latest weights
    probe_step: int = 0
    probe_id: int = 0  # changes with every new probe trajectory
    result: FitReport | None = None  # once trained (before/after, steps, stopped_by, ...)
    saved: list[str] = field(default_factory=list)  # names saved so far
    error: str = ""
    busy: str = ""  # for another visitor: who holds the slot and what they do (no time: see free_in)
    free_in: float | None = None  # seconds until an unwatched hold expires (collected or trained, not the viewer's)
    place: int = 0  # for a visitor kept waiting: their place in line (1 = next), by when they first asked


@dataclass
class SlotState:
    """Everything about the current run; a new claim starts from a fresh one (the slot's lock guards it)."""

    phase: str = "idle"  # idle, collecting, collected, training, trained, saved, failed
    owner: str = ""  # the holder's id (a browser's owner token, or a session hash)
    label: str = ""  # the holder's name as they gave it
    note: str = ""
    error: str = ""
    job: CollectJob | None = None
    stop: threading.Event = field(default_factory=threading.Event)  # set: the job ends after its step or batch
    started: float = 0.0  # time.monotonic() at the job's start
    last_seen: float = 0.0  # time.monotonic() of the owner's last poll
    counts: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    before: Trajectory | None = None
    probe: Trajectory | None = None
    pending: Trajectory | None = None  # a probe decoded but not yet on screen (shown with the next step)
    before_tpf: float | None = None
    probe_step: int = 0
    fit: object | None = None  # the trained model (cllm.training.rounds' fit) until saved or discarded
    result: FitReport | None = None
    data_ready: bool = False
    rounds: int = 1
    discard: bool = False  # the owner discarded a running job: forget it once it ends


def cpu_threads() -> int:
    """Threads for training and collection: OMP_NUM_THREADS when set, else every core this process may
    use, as the CLI gets by default (the app's decoding itself keeps one thread, see ui/common.py)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else usable_cores()


@contextmanager
def job_threads(count: int):
    """torch's intra-op threads for the job's thread, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
