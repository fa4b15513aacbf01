"""What a fine-tuning run reports (typed), and the hooks it reports through.

A FitReport is built by fit_cllm (one round), merged over rounds by fit_rounds, and read by the model card,
the training record, the CLI and the Train tab. `as_json` is what `train --json` prints."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict


class Measured(TypedDict, total=False):
    """Held-out figures of one measurement (a dict: they join the streamed metrics and the JSON record)."""

    tpf: float  # Jacobi tokens per forward pass
    perplexity: float  # on the held-out prompts' text
    distinct_4grams: float  # mean share of distinct 4-grams per output (falls as outputs loop)
    matches_ar: float  # share of outputs equal to the model's own greedy AR (after training only)


@dataclass
class JobHooks:
    """How a caller follows and steers a collection or a fit; every hook is optional."""

    on_metrics: Callable[[dict], None] | None = None  # losses as they are logged; held-out figures every eval_every
    stop: threading.Event | None = None  # set it to end training cleanly after the current step
    progress: bool = True  # the Trainer's and collect's progress bars on stderr
    probe: Callable | None = None  # probe(loaded, measured) after every held-out measurement (a live view)
    on_collect: Callable[[dict], None] | None = None  # collection progress (a later round's: + round, rounds)
    scratch_dir: Path | None = None  # where later rounds collect their data (a temporary folder inside it)


@dataclass
class RoundReport:
    round: int
    steps: int
    seconds: float
    after: Measured | None
    prompts: int  # prompts the round's data was collected on
    blocks: int
    states: int
    stopped_by: str
    collect_seconds: float | None = None  # rounds after the first: their collection's time


@dataclass
class FitReport:
    base_model: str  # as the user named it
    data_dir: str
    data_meta: dict  # the dataset's meta.json (cllm.training.dataset)
    config: dict  # the TrainConfig as a dict
    steps: int
    seconds: float  # training (and later rounds' collection) time
    device: str
    before: Measured
    after: Measured | None  # None in a multi-process run: measured with `bench` afterwards
    history: list[dict]  # every metrics dict streamed to on_metrics
    eval_prompt_count: int
    eval_max_new_tokens: int
    perplexity_text: str  # what held-out perplexity is measured on
    stopped_by: str
    rounds: list[RoundReport] = field(default_factory=list)
    out: str | None = None  # where the model was saved
    made_by: str | None = None  # who trained it, for the card (None: `python -m cllm train`)

    def as_json(self) -> dict:
        """Everything but the data's meta (it is in the data folder), without unset optional fields."""
        out = {k: v for k, v in asdict(self).items() if k != "data_meta" and not (k == "made_by" and v is None)}
        out["rounds"] = [{k: v for k, v in r.items() if v is not None or k == "after"} for r in out["rounds"]]
        return out
