"""The app's one training slot, with no UI: at most one collection or training per server, run in a
background thread, with its progress, metric history and live trajectory for whoever polls.

Life of a run, all by one visitor (the owner, known by an id such as Gradio's session hash):
    start_collect -> "collecting" -> "collected" -> start_train -> "training" -> "trained" -> save -> "saved"
A job (collect or train) runs in a thread that owns a stop Event. Stop, the end of its budget, a hard time
cap (`max_job_seconds`) or the owner no longer watching (no poll for `orphan_seconds`: the tab was closed)
ends it cleanly after the current step or batch. Another visitor's start is refused with `SlotBusy`, whose
message says who holds the slot and what it is doing, while a job runs and while the owner's collected data
or unsaved model waits for them (until `hold_seconds` after their last poll). A saved model holds nothing.

The owner can discard (discard): data and unsaved model go, the slot is free. Visitors refused while it is
busy see their place in line (by when they first asked; gone after `wait_seconds` unheard) and, for a hold,
the seconds until it expires (SlotView.free_in). The run's state is one SlotState dataclass, replaced
whole by a new claim.

Decoding elsewhere in the app is not blocked: the job runs in its own thread, not in a request.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from cllm.decode import decode_prompt
from cllm.jacobi import JacobiConfig
from cllm.models import LoadedModel, load_model
from cllm.prompts import write_prompts
from cllm.training.collect import collect
from cllm.training.config import TrainConfig
from cllm.training.report import JobHooks
from cllm.training.rounds import fit_rounds
from cllm.training.slot import CollectJob, SlotBusy, SlotState, SlotView, cpu_threads, job_threads
from cllm.training.trained import save_trained, trained_path
from cllm.trajectory import Trajectory

RUNNING = ("collecting", "training")
HOLDING = ("collected", "trained")  # the owner's work waits for them; others are refused until it expires
MADE_BY = "the Train tab of CLLM Explorer (`python app.py`)"


class TrainSlot:
    def __init__(self, work_root: Path | None = None, orphan_seconds: float = 120.0, hold_seconds: float = 900.0,
                 max_job_seconds: float = 3600.0, probe_tokens: int = 32):
        self.work_root, self.orphan_seconds, self.hold_seconds = work_root, orphan_seconds, hold_seconds
        self.max_job_seconds, self.probe_tokens = max_job_seconds, probe_tokens
        self.wait_seconds = 60.0  # a waiting visitor not heard from for this long leaves the line
        self._cond = threading.Condition()
        self._probe_id = 0  # never reset: a new run's grids are new to the player too
        self._version = 0  # never reset: a poller waiting on a version must see any change
        self._waiting: dict[str, float] = {}  # visitors refused while busy -> last time seen (their place in line)
        self._thread: threading.Thread | None = None
        self._work: Path | None = None
        self._clear()

    # --- what visitors call ------------------------------------------------------------------------

    def start_collect(self, owner: str, label: str, job: CollectJob) -> None:
        with self._cond:
            self._claim(owner)
            self._discard()
            self._clear()
            self._s.owner, self._s.label, self._s.job = owner, label.strip() or "a visitor", job
            self._work = Path(tempfile.mkdtemp(prefix="cllm-train-tab-", dir=self.work_root))
            write_prompts(self._work / "prompts.jsonl", job.prompts)
            write_prompts(self._work / "heldout.jsonl", job.heldout)
            self._start("collecting", "loading the base model", self._run_collect)

    def start_train(self, owner: str, config: TrainConfig) -> None:
        with self._cond:
            if self._s.phase in RUNNING or owner != self._s.owner:
                self._claim(owner)  # raises while the slot is busy, or this visitor's own job still runs
            if owner != self._s.owner or not self._s.data_ready:
                raise ValueError("collect training data first (press Collect)")
            self._s.fit, self._s.result, self._s.rounds = None, None, config.rounds
            self._s.history, self._s.saved, self._s.before, self._s.before_tpf = [], [], None, None
            self._s.probe, self._s.pending, self._s.probe_step = None, None, 0
            self._start("training", "loading the model and measuring it on held-out prompts",
                        lambda: self._run_train(config))

    def stop(self, owner: str) -> str:
        with self._cond:
            if self._s.phase not in RUNNING:
                return "Nothing is running."
            if owner != self._s.owner:
                raise SlotBusy(self._busy_message())
            self._s.stop.set()
            self._s.note = "stopping after the current step or batch"
            self._changed()
            unit = "step (or collection batch)" if self._s.phase == "training" else "batch"
            return f"Stopping: {self._s.phase} ends after the current {unit}."

    def save(self, owner: str, name: str, folder: Path | None = None) -> Path:
        """Save the owner's trained model under a new name (written outside the lock: a big model takes a while)."""
        trained_path(name, folder)  # a bad name is refused before anything else
        with self._cond:
            if owner != self._s.owner and self._s.phase in (*RUNNING, *HOLDING):
                raise SlotBusy(self._busy_message())
            fit = self._s.fit if owner == self._s.owner else None
            if fit is None:
                raise ValueError("nothing to save yet: collect, train, then save")
        path = save_trained(fit.model, fit.tokenizer, name, fit.report, folder)
        with self._cond:
            if self._s.fit is fit:
                self._s.saved.append(path.name)
                self._s.phase = "saved"  # safe on disk: the slot no longer holds anyone up
                self._changed()
        return path

    def view(self, owner: str) -> SlotView:
        """The slot as `owner` sees it; a poll by the owner also says they are still watching, and one by a
        visitor kept waiting keeps their place in line."""
        with self._cond:
            now = time.monotonic()
            if owner == self._s.owner:
                self._s.last_seen = now
            self._waiting = {who: t for who, t in self._waiting.items() if now - t < self.wait_seconds}
            if self._busy_for(owner):
                self._waiting[owner] = now  # a dict keeps insertion order: the first to ask stays first
            else:
                self._waiting.pop(owner, None)
            return self._view(owner)

    def wait(self, owner: str, version: int, timeout: float) -> SlotView:
        """Block until something changes after `version` (or `timeout` seconds pass); then view()."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)
        return self.view(owner)

    def discard(self, owner: str) -> str:
        """The owner gives the slot up: data and unsaved model are dropped (a running job first stops after
        its step or batch)."""
        with self._cond:
            if self._s.phase in ("idle", "saved", "failed") or owner != self._s.owner:
                if self._s.phase in (*RUNNING, *HOLDING) and owner != self._s.owner:
                    raise SlotBusy(self._busy_message())
                return "Nothing to discard: the slot holds nothing of yours."
            if self._s.phase in RUNNING:
                self._s.stop.set()
                self._s.discard, self._s.note = True, "discarding: stopping after the current step or batch"
                self._changed()
                return "Discarding: the job stops after its current step or batch, then the slot is free."
            self._discard()
            self._clear()
            self._changed()
            return "Discarded: the slot is free."

    def reset(self) -> None:
        """Stop any job, wait for it, and forget everything (for tests and server restarts)."""
        with self._cond:
            self._s.stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            self._discard()
            self._clear()
            self._waiting.clear()
            self._changed()

    # --- the slot's state ----------------------------------------------------------------------------

    def _clear(self) -> None:
        self._s = SlotState()

    def _claim(self, owner: str) -> None:
        if self._s.phase in RUNNING:
            if owner == self._s.owner:
                job = "collection" if self._s.phase == "collecting" else "training"
                raise SlotBusy(f"Your {job} is still running: wait for it or press Stop.")
            raise SlotBusy(self._busy_message())
        if self._s.phase in HOLDING and owner != self._s.owner and not self._expired():
            raise SlotBusy(self._busy_message())

    def _expired(self) -> bool:
        return time.monotonic() - self._s.last_seen > self.hold_seconds

    def _busy_message(self, timed: bool = True) -> str:
        minutes = (time.monotonic() - self._s.started) / 60
        if self._s.phase == "collecting":
            c = self._s.counts
            done = f"{c['prompts_done']}/{c['prompts_total']} prompts" if c else "starting"
            what = f"collecting training data ({done})"
        elif self._s.phase == "training":
            step = self._s.history[-1]["step"] if self._s.history else 0
            what = f"training a CLLM of {self._s.job.model} (step {step}, {minutes:.1f} min in)"
        else:
            left = max(0.0, (self.hold_seconds - (time.monotonic() - self._s.last_seen)) / 60)
            when = f"free in {left:.0f} min unless they come back" if timed else "free when the countdown ends, unless they come back"
            what = f"holding {'collected data' if self._s.phase == 'collected' else 'an unsaved model'} ({when})"
        return f"Busy: {self._s.label} is {what}. One training at a time per server; the other tabs still work."

    def _busy_for(self, owner: str) -> bool:
        """The slot is someone else's now (a start by `owner` would be refused)."""
        mine = bool(self._s.owner) and owner == self._s.owner
        return not mine and (self._s.phase in RUNNING or self._s.phase in HOLDING and not self._expired())

    def _view(self, owner: str) -> SlotView:
        mine = bool(self._s.owner) and owner == self._s.owner
        busy = self._busy_for(owner)
        free_in = self.hold_seconds - (time.monotonic() - self._s.last_seen) if busy and self._s.phase in HOLDING else None
        place = list(self._waiting).index(owner) + 1 if busy and owner in self._waiting else 0
        return SlotView(self._s.phase, self._s.label, mine, self._s.note, self._version, dict(self._s.counts),
                        list(self._s.history), self._s.before_tpf, self._s.before, self._s.probe, self._s.probe_step,
                        self._probe_id, self._s.result, list(self._s.saved), self._s.error,
                        self._busy_message(timed=False) if busy else "", free_in, place)

    def _changed(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def _discard(self) -> None:
        """Drop the last run's data folder and model (the slot was claimed anew)."""
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
        self._s.fit = None

    def _start(self, phase: str, note: str, target) -> None:
        self._s.phase, self._s.note, self._s.error = phase, note, ""
        self._s.stop = threading.Event()
        self._s.started = self._s.last_seen = time.monotonic()
        self._thread = threading.Thread(target=self._guarded, args=(target,), daemon=True, name=f"cllm-{phase}")
        self._changed()
        self._thread.start()

    # --- the jobs (in their thread) ------------------------------------------------------------------

    def _guarded(self, target) -> None:
        try:
            with job_threads(cpu_threads()):
                phase = target()
            with self._cond:
                self._s.phase, self._s.note = phase, ""
                self._changed()
        except Exception as e:  # the job's thread has no caller: its error is shown to the owner instead
            with self._cond:
                self._s.phase, self._s.note, self._s.error = "failed", "", str(e) or type(e).__name__
                self._changed()
        with self._cond:
            if self._s.discard:  # the owner discarded it while it ran
                self._discard()
                self._clear()
                self._changed()

    def _run_collect(self) -> str:
        loaded = load_model(self._s.job.model)
        self._set(note="collecting Jacobi trajectories")
        meta = collect(loaded, self._work / "prompts.jsonl", self._work / "data", self._s.job.config,
                       JobHooks(progress=False, on_collect=self._on_collect, stop=self._s.stop))
        self._set(counts=self._s.counts | {"stopped": meta["stopped"], "seconds": meta["this_run"]["seconds"]},
                  data_ready=True)
        return "collected"

    def _run_train(self, config: TrainConfig) -> str:
        hooks = JobHooks(on_metrics=self._on_metrics, stop=self._s.stop, progress=False, probe=self._on_probe,
                         on_collect=self._on_round_collect, scratch_dir=self._work)
        config = replace(config, eval_file=str(self._work / "heldout.jsonl"))  # the job's held-out prompts
        fit = fit_rounds(self._s.job.model, self._work / "data", config, hooks)
        fit.trainer = None  # its optimizer state is not needed to save the weights
        fit.report.made_by = MADE_BY
        fit.report.data_dir = f"collected in the app from {self._s.job.source} (not kept)"
        with self._cond:
            if self._s.pending is not None:  # the measurement after training
                self._show_probe(fit.report.steps)
            self._s.fit, self._s.result = fit, fit.report
            self._changed()
        return "trained"

    def _set(self, **fields) -> None:
        with self._cond:
            for name, value in fields.items():
                setattr(self._s, name, value)
            self._changed()

    def _on_collect(self, counts: dict) -> None:
        self._set(counts=counts)
        self._check_watchers()

    def _on_round_collect(self, counts: dict) -> None:
        """Progress of a later round's collection from the weights trained so far."""
        if self._s.stop.is_set():
            return  # the note says it is stopping
        with self._cond:
            if self._s.pending is not None:  # the last round's final measurement: no step follows it to show it
                self._show_probe(self._s.history[-1]["step"] if self._s.history else 0)
        self._set(note=f"round {counts['round']} of {counts['rounds']}: collecting trajectories from the current "
                       f"weights, {counts['prompts_done']} / {counts['prompts_total']} prompts")
        self._check_watchers()

    def _on_metrics(self, metrics: dict) -> None:
        with self._cond:
            self._s.history.append(metrics)
            if not self._s.stop.is_set():  # else the note says it is stopping
                self._s.note = f"round {metrics['round']} of {self._s.rounds}" if self._s.rounds > 1 else "training"
            if self._s.pending is not None:
                self._show_probe(metrics["step"])
            self._changed()
        self._check_watchers()

    def _on_probe(self, loaded: LoadedModel, measured: dict) -> None:
        """After a held-out measurement: keep its TPF if it is the base model's, and decode the first held-out
        prompt that fits with the current weights (the live grid)."""
        with self._cond:
            first = self._s.before_tpf is None  # the measurement before training
            if first:
                self._s.before_tpf = measured["tpf"]
                self._changed()
        traj = self._decode_probe(loaded)
        if traj is None:
            return
        with self._cond:
            if first:
                self._s.before, self._s.pending = traj, traj
                self._show_probe(0)
            else:
                self._s.pending = traj  # shown with the step that _on_metrics reports next
            self._changed()

    def _show_probe(self, step: int) -> None:
        """The pending probe becomes the one on screen, as of `step` (caller holds the lock)."""
        self._s.probe, self._s.probe_step, self._s.pending = self._s.pending, step, None
        self._probe_id += 1

    def _decode_probe(self, loaded: LoadedModel) -> Trajectory | None:
        config = JacobiConfig(n=self._s.job.config.n, max_new_tokens=self.probe_tokens)
        for prompt in self._s.job.heldout:
            try:
                return decode_prompt(loaded, prompt, config, check_ar=True)
            except ValueError:  # too long for the model's context with these tokens
                continue
        return None

    def _check_watchers(self) -> None:
        """Stop a job nobody watches any more, or one past the hard time cap."""
        with self._cond:
            now = time.monotonic()
            if now - self._s.last_seen > self.orphan_seconds:
                self._s.note = "stopping: nobody is watching (the tab was closed)"
            elif now - self._s.started > self.max_job_seconds:
                self._s.note = f"stopping: past the {self.max_job_seconds / 60:.0f}-minute cap"
            else:
                return
            self._s.stop.set()
            self._changed()
