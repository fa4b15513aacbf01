"""The app's one training slot, with no UI: at most one collection or training per server, run in a
background thread, with its progress, metric history and live trajectory for whoever polls.

Life of a run, all by one visitor (the owner, known by an id such as Gradio's session hash):
    start_collect -> "collecting" -> "collected" -> start_train -> "training" -> "trained" -> save -> "saved"
A job (collect or train) runs in a thread that owns a stop Event. Stop, the end of its budget, a hard time
cap (`max_job_seconds`) or the owner no longer watching (no poll for `orphan_seconds`: the tab was closed)
ends it cleanly after the current step or batch. Another visitor's start is refused with `SlotBusy`, whose
message says who holds the slot and what it is doing, while a job runs and while the owner's collected data
or unsaved model waits for them (until `hold_seconds` after their last poll). A saved model holds nothing.

Decoding elsewhere in the app is not blocked: the job runs in its own thread, not in a request.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cllm.collect import CollectConfig, collect
from cllm.decode import decode_prompt
from cllm.jacobi import JacobiConfig
from cllm.models import LoadedModel, load_model
from cllm.prompts import write_prompts
from cllm.train_rounds import fit_rounds
from cllm.trained import save_trained, trained_path
from cllm.training import TrainConfig
from cllm.trajectory import Trajectory

RUNNING = ("collecting", "training")
HOLDING = ("collected", "trained")  # the owner's work waits for them; others are refused until it expires
MADE_BY = "the Train tab of CLLM Explorer (`python app.py`)"


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
    result: dict | None = None  # fit info once trained (before/after, steps, stopped_by, ...)
    saved: list[str] = field(default_factory=list)  # names saved so far
    error: str = ""
    busy: str = ""  # for another visitor: the SlotBusy message a start would get now


def cpu_threads() -> int:
    """Threads for training and collection: OMP_NUM_THREADS when set, else every core this process may
    use, as the CLI gets by default (the app's decoding itself keeps one thread, see ui/common.py)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else len(os.sched_getaffinity(0))


class TrainSlot:
    def __init__(self, work_root: Path | None = None, orphan_seconds: float = 120.0, hold_seconds: float = 900.0,
                 max_job_seconds: float = 3600.0, probe_tokens: int = 32):
        self.work_root, self.orphan_seconds, self.hold_seconds = work_root, orphan_seconds, hold_seconds
        self.max_job_seconds, self.probe_tokens = max_job_seconds, probe_tokens
        self._cond = threading.Condition()
        self._probe_id = 0  # never reset: a new run's grids are new to the player too
        self._thread: threading.Thread | None = None
        self._work: Path | None = None
        self._clear()

    # --- what visitors call ------------------------------------------------------------------------

    def start_collect(self, owner: str, label: str, job: CollectJob) -> None:
        with self._cond:
            self._claim(owner)
            self._discard()
            self._clear()
            self._owner, self._label, self._job = owner, label.strip() or "a visitor", job
            self._work = Path(tempfile.mkdtemp(prefix="cllm-train-tab-", dir=self.work_root))
            write_prompts(self._work / "prompts.jsonl", job.prompts)
            write_prompts(self._work / "heldout.jsonl", job.heldout)
            self._start("collecting", "loading the base model", self._run_collect)

    def start_train(self, owner: str, config: TrainConfig) -> None:
        with self._cond:
            if self._phase in RUNNING or owner != self._owner:
                self._claim(owner)  # raises while the slot is busy, or this visitor's own job still runs
            if owner != self._owner or not self._data_ready:
                raise ValueError("collect training data first (press Collect)")
            self._fit, self._result, self._rounds = None, None, config.rounds
            self._history, self._saved, self._before, self._before_tpf = [], [], None, None
            self._probe, self._pending, self._probe_step = None, None, 0
            self._start("training", "loading the model and measuring it on held-out prompts",
                        lambda: self._run_train(config))

    def stop(self, owner: str) -> str:
        with self._cond:
            if self._phase not in RUNNING:
                return "Nothing is running."
            if owner != self._owner:
                raise SlotBusy(self._busy_message())
            self._stop.set()
            self._note = "stopping after the current step or batch"
            self._changed()
            unit = "step (or collection batch)" if self._phase == "training" else "batch"
            return f"Stopping: {self._phase} ends after the current {unit}."

    def save(self, owner: str, name: str, folder: Path | None = None) -> Path:
        """Save the owner's trained model under a new name (written outside the lock: a big model takes a while)."""
        trained_path(name, folder)  # a bad name is refused before anything else
        with self._cond:
            if owner != self._owner and self._phase in (*RUNNING, *HOLDING):
                raise SlotBusy(self._busy_message())
            fit = self._fit if owner == self._owner else None
            if fit is None:
                raise ValueError("nothing to save yet: collect, train, then save")
        path = save_trained(fit.model, fit.tokenizer, name, fit.info, folder)
        with self._cond:
            if self._fit is fit:
                self._saved.append(path.name)
                self._phase = "saved"  # safe on disk: the slot no longer holds anyone up
                self._changed()
        return path

    def view(self, owner: str) -> SlotView:
        """The slot as `owner` sees it; a poll by the owner also says they are still watching."""
        with self._cond:
            if owner == self._owner:
                self._last_seen = time.monotonic()
            return self._view(owner)

    def wait(self, owner: str, version: int, timeout: float) -> SlotView:
        """Block until something changes after `version` (or `timeout` seconds pass); then view()."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)
        return self.view(owner)

    def reset(self) -> None:
        """Stop any job, wait for it, and forget everything (for tests and server restarts)."""
        with self._cond:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            self._discard()
            self._clear()
            self._changed()

    # --- the slot's state ----------------------------------------------------------------------------

    def _clear(self) -> None:
        self._phase, self._owner, self._label, self._note, self._error = "idle", "", "", "", ""
        self._job: CollectJob | None = None
        self._stop, self._started, self._last_seen = threading.Event(), 0.0, 0.0
        self._counts, self._history, self._saved = {}, [], []
        self._before = self._probe = self._pending = self._before_tpf = None
        self._probe_step, self._fit, self._result, self._data_ready, self._rounds = 0, None, None, False, 1
        self._version = getattr(self, "_version", 0)

    def _claim(self, owner: str) -> None:
        if self._phase in RUNNING:
            if owner == self._owner:
                job = "collection" if self._phase == "collecting" else "training"
                raise SlotBusy(f"Your {job} is still running: wait for it or press Stop.")
            raise SlotBusy(self._busy_message())
        if self._phase in HOLDING and owner != self._owner and not self._expired():
            raise SlotBusy(self._busy_message())

    def _expired(self) -> bool:
        return time.monotonic() - self._last_seen > self.hold_seconds

    def _busy_message(self) -> str:
        minutes = (time.monotonic() - self._started) / 60
        if self._phase == "collecting":
            c = self._counts
            done = f"{c['prompts_done']}/{c['prompts_total']} prompts" if c else "starting"
            what = f"collecting training data ({done})"
        elif self._phase == "training":
            step = self._history[-1]["step"] if self._history else 0
            what = f"training a CLLM of {self._job.model} (step {step}, {minutes:.1f} min in)"
        else:
            left = max(0.0, (self.hold_seconds - (time.monotonic() - self._last_seen)) / 60)
            what = (f"holding {'collected data' if self._phase == 'collected' else 'an unsaved model'} "
                    f"(free in {left:.0f} min unless they come back)")
        return f"Busy: {self._label} is {what}. One training at a time per server; the other tabs still work."

    def _view(self, owner: str) -> SlotView:
        mine = bool(self._owner) and owner == self._owner
        busy = "" if mine or self._phase not in (*RUNNING, *HOLDING) or (
            self._phase in HOLDING and self._expired()) else self._busy_message()
        return SlotView(self._phase, self._label, mine, self._note, self._version, dict(self._counts),
                        list(self._history), self._before_tpf, self._before, self._probe, self._probe_step,
                        self._probe_id, self._result, list(self._saved), self._error, busy)

    def _changed(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _discard(self) -> None:
        """Drop the last run's data folder and model (the slot was claimed anew)."""
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
        self._fit = None

    def _start(self, phase: str, note: str, target) -> None:
        self._phase, self._note, self._error = phase, note, ""
        self._stop = threading.Event()
        self._started = self._last_seen = time.monotonic()
        self._thread = threading.Thread(target=self._guarded, args=(target,), daemon=True, name=f"cllm-{phase}")
        self._changed()
        self._thread.start()

    # --- the jobs (in their thread) ------------------------------------------------------------------

    def _guarded(self, target) -> None:
        try:
            with _threads(cpu_threads()):
                phase = target()
            with self._cond:
                self._phase, self._note = phase, ""
                self._changed()
        except Exception as e:  # the job's thread has no caller: its error is shown to the owner instead
            with self._cond:
                self._phase, self._note, self._error = "failed", "", str(e) or type(e).__name__
                self._changed()

    def _run_collect(self) -> str:
        loaded = load_model(self._job.model)
        self._set(note="collecting Jacobi trajectories")
        meta = collect(loaded, self._work / "prompts.jsonl", self._work / "data", self._job.config, progress=False,
                       on_progress=self._on_collect, stop=self._stop)
        self._set(counts=self._counts | {"stopped": meta["stopped"], "seconds": meta["this_run"]["seconds"]},
                  data_ready=True)
        return "collected"

    def _run_train(self, config: TrainConfig) -> str:
        fit = fit_rounds(self._job.model, self._work / "data", config, self._work / "heldout.jsonl",
                         on_metrics=self._on_metrics, stop=self._stop, progress=False, probe=self._on_probe,
                         on_collect=self._on_round_collect, work_dir=self._work)
        fit.trainer = None  # its optimizer state is not needed to save the weights
        fit.info |= {"made_by": MADE_BY, "data_dir": f"collected in the app from {self._job.source} (not kept)"}
        with self._cond:
            if self._pending is not None:  # the measurement after training
                self._show_probe(fit.info["steps"])
            self._fit, self._result = fit, fit.info
            self._changed()
        return "trained"

    def _set(self, **fields) -> None:
        with self._cond:
            for name, value in fields.items():
                setattr(self, f"_{name}", value)
            self._changed()

    def _on_collect(self, counts: dict) -> None:
        self._set(counts=counts)
        self._check_watchers()

    def _on_round_collect(self, counts: dict) -> None:
        """Progress of a later round's collection from the weights trained so far."""
        if self._stop.is_set():
            return  # the note says it is stopping
        with self._cond:
            if self._pending is not None:  # the last round's final measurement: no step follows it to show it
                self._show_probe(self._history[-1]["step"] if self._history else 0)
        self._set(note=f"round {counts['round']} of {counts['rounds']}: collecting trajectories from the current "
                       f"weights, {counts['prompts_done']} / {counts['prompts_total']} prompts")
        self._check_watchers()

    def _on_metrics(self, metrics: dict) -> None:
        with self._cond:
            self._history.append(metrics)
            if not self._stop.is_set():  # else the note says it is stopping
                self._note = f"round {metrics['round']} of {self._rounds}" if self._rounds > 1 else "training"
            if self._pending is not None:
                self._show_probe(metrics["step"])
            self._changed()
        self._check_watchers()

    def _on_probe(self, loaded: LoadedModel, measured: dict) -> None:
        """After a held-out measurement: keep its TPF if it is the base model's, and decode the first held-out
        prompt that fits with the current weights (the live grid)."""
        with self._cond:
            first = self._before_tpf is None  # the measurement before training
            if first:
                self._before_tpf = measured["tpf"]
                self._changed()
        traj = self._decode_probe(loaded)
        if traj is None:
            return
        with self._cond:
            if first:
                self._before, self._pending = traj, traj
                self._show_probe(0)
            else:
                self._pending = traj  # shown with the step that _on_metrics reports next
            self._changed()

    def _show_probe(self, step: int) -> None:
        """The pending probe becomes the one on screen, as of `step` (caller holds the lock)."""
        self._probe, self._probe_step, self._pending = self._pending, step, None
        self._probe_id += 1

    def _decode_probe(self, loaded: LoadedModel) -> Trajectory | None:
        config = JacobiConfig(n=self._job.config.n, max_new_tokens=self.probe_tokens)
        for prompt in self._job.heldout:
            try:
                return decode_prompt(loaded, prompt, config, check_ar=True)
            except ValueError:  # too long for the model's context with these tokens
                continue
        return None

    def _check_watchers(self) -> None:
        """Stop a job nobody watches any more, or one past the hard time cap."""
        with self._cond:
            now = time.monotonic()
            if now - self._last_seen > self.orphan_seconds:
                self._note = "stopping: nobody is watching (the tab was closed)"
            elif now - self._started > self.max_job_seconds:
                self._note = f"stopping: past the {self.max_job_seconds / 60:.0f}-minute cap"
            else:
                return
            self._stop.set()
            self._changed()


@contextmanager
def _threads(count: int):
    """torch's intra-op threads for the job's thread, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
