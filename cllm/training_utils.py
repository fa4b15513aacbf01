"""Trainer callbacks shared by pretraining and consistency training."""
from __future__ import annotations

import time

from transformers import TrainerCallback


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
            control.should_save = True
        return control
