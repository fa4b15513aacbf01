"""Trainer helpers shared by pretraining and consistency training: a time budget, and resuming safely."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback

CHECKPOINT = re.compile(r"checkpoint-(\d+)")  # the Trainer's folder names


class TimeBudget(TrainerCallback):
    """Stop training cleanly (after the current step) once `minutes` of wall clock have passed."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start >= self.seconds:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"  # a resumable run keeps the step it stopped at
        return control


def resume_checkpoint(work_dir: str | Path) -> str | None:
    """The newest whole Trainer checkpoint in `work_dir` to resume from, or None.

    The Trainer writes a checkpoint's files in place and trainer_state.json last, so a run killed while
    saving leaves a folder without a readable trainer_state.json; resuming from it would fail (or load half
    the weights). Such folders are skipped and removed (the Trainer would also count them when rotating)."""
    work = Path(work_dir)
    if not work.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in work.iterdir() if (m := CHECKPOINT.fullmatch(p.name)) and p.is_dir()),
                   reverse=True)
    for _, folder in found:
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
            return str(folder)
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
    return None
