"""Training in rounds: between rounds, collect the trajectories again from the model as trained so far.

Why: a CLLM learns from the states Jacobi decoding visits. Collected once from the base model, those are the
base's states (about one new token per iteration) and the base's fixed points; as the model learns to
fast-forward, the states its own decoding visits, and its own greedy output, move away from them. Collecting
again from the current weights trains on the states the model now meets (as DAgger does for imitation
learning). Measured on 2 CPU cores (README, "Making a CLLM"): the Train tab's defaults, three rounds in
about 4.5 minutes from Collect, lifted held-out TPF (8 prompts) from 1.06 to 2.37-3.58 in 356-402 steps
with the server alone on the cores; one round of 403 steps on the base's trajectories reached 1.25.

Round r >= 2 collects, with round 1's collection options, on the next `limit` prompts of the file round 1
was collected on (wrapping around when the file runs out), into a temporary folder that is deleted after the
round. The training budget (steps or minutes) is split evenly between the rounds; each round is a fresh
fine-tune (new optimizer and schedule) of the previous round's weights. The metrics of later rounds carry
on counting steps and seconds from where the previous round ended (re-collection time included), with
their round number.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cllm.training.collect import CollectConfig, collect
from cllm.training.dataset import DatasetError, read_meta
from cllm.models import LoadedModel
from cllm.prompts import HELDOUT_PROMPTS, read_prompts, write_prompts
from cllm.training.fit import Fit, InMemory, fit_cllm
from cllm.training.report import JobHooks, FitReport, RoundReport
from cllm.training.config import TrainConfig

ROUND_COLLECT_OPTIONS = ("n", "max_new_tokens", "init", "seed", "clean", "augment", "repeat_run", "repeat_period")


def round_configs(config: TrainConfig) -> list[TrainConfig]:
    """Each round's share of the budget: minutes split evenly; steps too, the first rounds taking the
    remainder. An epoch count is not split: each round trains that many epochs of its own data."""
    minutes = config.max_minutes / config.rounds if config.max_minutes else config.max_minutes
    if config.max_steps:
        shares = [config.max_steps // config.rounds + (k < config.max_steps % config.rounds) for k in range(config.rounds)]
        return [replace(config, rounds=1, max_steps=steps, max_minutes=minutes) for steps in shares]
    return [replace(config, rounds=1, max_minutes=minutes)] * config.rounds


def round_prompts(pool: list[str], per_round: int, index: int) -> list[str]:
    """Round `index`'s (0-based) prompts: the `per_round` after the earlier rounds', wrapping around the pool."""
    per_round = min(per_round, len(pool))
    return [pool[(index * per_round + k) % len(pool)] for k in range(per_round)]


@dataclass(frozen=True)
class RoundPlan:
    pool: list[str]  # the prompts later rounds collect on
    per_round: int  # how many each round takes
    collect: CollectConfig | None  # round 1's collection options (None for a single round)


def plan_rounds(meta: dict, rounds: int, heldout_file: str | Path) -> RoundPlan:
    """What later rounds collect on, from the data's meta: the prompts of the file round 1 was collected on
    (less any held-out one), as many per round as round 1 had. Made before any training, so that a missing
    file or an old meta fails at once, not after the first round."""
    if rounds == 1:
        return RoundPlan([], 0, None)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would collect, and FSDP shards the model
        raise ValueError("--rounds above 1 runs in one process (collecting needs the whole model): "
                         "give --rounds 1 and train one round per launch, collecting in between")
    missing = [k for k in ("prompts_file", *ROUND_COLLECT_OPTIONS) if k not in meta]
    if missing:
        raise DatasetError(f"the data's meta.json lacks {', '.join(missing)} (an older collect): collect again "
                           "to train in rounds")
    path = Path(meta["prompts_file"])
    if not path.is_file():
        raise DatasetError(f"rounds after the first collect on the prompts file the data came from, "
                           f"{path}, which is gone: collect again or train one round")
    held = set(read_prompts(heldout_file))
    pool = [p for p in read_prompts(path) if p not in held]  # TPF is measured on those: never train on them
    if not pool:
        raise DatasetError(f"every prompt of {path} is also a held-out prompt: nothing to collect later rounds on")
    per_round = min(meta.get("limit") or len(pool), len(pool))
    return RoundPlan(pool, per_round, CollectConfig(**{k: meta[k] for k in ROUND_COLLECT_OPTIONS}))


def fit_rounds(model_name: str, data_dir: str | Path, config: TrainConfig, hooks: JobHooks | None = None,
               save_to: Path | None = None) -> Fit:
    """fit_cllm in `config.rounds` rounds (see module doc). `hooks.on_collect` gets each re-collection's
    progress (collect's counts plus "round" and "rounds"); later rounds' data goes to a temporary folder in
    `hooks.scratch_dir`. The report is round 1's with the last round's model measurements as "after", totals
    of steps and seconds, the whole history and one RoundReport per round."""
    hooks = hooks or JobHooks()
    meta = read_meta(data_dir)
    plan = plan_rounds(meta, config.rounds, config.eval_file or HELDOUT_PROMPTS)
    configs, clock = round_configs(config), _RoundClock(hooks.on_metrics, config.rounds)
    round_hooks = replace(hooks, on_metrics=clock.report)
    fit = fit_cllm(model_name, data_dir, configs[0], round_hooks, save_to)
    first, history, rounds, stopped_by = fit.report, [], [], fit.report.stopped_by
    clock.round_done(fit.report, history, rounds, _summary(1, fit.report, meta))
    for index in range(1, config.rounds):
        if hooks.stop is not None and hooks.stop.is_set():  # Stop during the last round's final measurement
            stopped_by = "stop request"
            break
        fit.trainer = None  # the last round's optimizer state is not needed again: free it now
        loaded = LoadedModel(model_name, fit.model, fit.tokenizer, fit.eos_token_id)
        with tempfile.TemporaryDirectory(prefix="cllm-round-", dir=hooks.scratch_dir) as work:
            data, ended_by = _collect_round(loaded, plan, (index, config.rounds), Path(work), hooks)
            if data is not None:
                clock.collected(data["this_run"]["seconds"])
            if ended_by:
                stopped_by = ended_by
                break
            fit = fit_cllm(model_name, Path(work) / "data", configs[index], round_hooks, save_to,
                           InMemory(loaded, fit.report.after))
        stopped_by = fit.report.stopped_by
        summary = replace(_summary(index + 1, fit.report, data), collect_seconds=data["this_run"]["seconds"])
        clock.round_done(fit.report, history, rounds, summary)
    merged = replace(first, config=asdict(config), steps=sum(r.steps for r in rounds), seconds=clock.seconds,
                     after=fit.report.after, history=history, stopped_by=_budget_words(stopped_by, config),
                     rounds=rounds)
    return replace(fit, report=merged)


def _collect_round(loaded: LoadedModel, plan: RoundPlan, where: tuple[int, int], work: Path,
                   hooks: JobHooks) -> tuple[dict | None, str]:
    """Round index+1's data (`where`: index, rounds), collected with the weights trained so far into
    work/data: (its meta or None, "" or why the rounds end here: a stop request, or no training blocks)."""
    index, rounds = where
    prompts_file, stop = work / "prompts.jsonl", hooks.stop
    write_prompts(prompts_file, round_prompts(plan.pool, plan.per_round, index))

    def report(counts: dict) -> None:
        if hooks.on_collect is not None:
            hooks.on_collect(counts | {"round": index + 1, "rounds": rounds})

    try:
        data = collect(loaded, prompts_file, work / "data", plan.collect, replace(hooks, on_collect=report))
    except DatasetError:  # no blocks at all: every prompt skipped or cleaned out, or Stop before the first batch
        data = None
    if (stop is not None and stop.is_set()) or (data is not None and data["stopped"]):
        return data, "stop request"
    if data is None:
        return None, (f"round {index + 1} collected no training blocks (every prompt too long for the context "
                      "or every block cleaned out as a loop)")
    return data, ""


class _RoundClock:
    """Shifts each round's metrics (step, seconds since training began) to follow the rounds before it."""

    def __init__(self, on_metrics: Callable[[dict], None] | None, rounds: int):
        self.on_metrics, self.rounds, self.round, self.steps, self.seconds = on_metrics, rounds, 1, 0, 0.0

    def shifted(self, metrics: dict) -> dict:
        """The metrics as of the whole run; "round" only when there are several."""
        where = {"round": self.round} if self.rounds > 1 else {}
        return metrics | {"step": metrics["step"] + self.steps, "seconds": metrics["seconds"] + self.seconds} | where

    def report(self, metrics: dict) -> None:
        if self.on_metrics is not None:
            self.on_metrics(self.shifted(metrics))

    def round_done(self, report: FitReport, history: list[dict], rounds: list[RoundReport], summary: RoundReport) -> None:
        """Adds the round's metrics and summary; the next round's metrics follow on from it."""
        history += [self.shifted(m) for m in report.history]
        rounds.append(summary)
        self.round, self.steps, self.seconds = self.round + 1, self.steps + report.steps, self.seconds + report.seconds

    def collected(self, seconds: float) -> None:
        self.seconds += seconds


def _budget_words(last_round: str, config: TrainConfig) -> str:
    """What ended training, in terms of the whole budget rather than the last round's share of it."""
    if config.rounds == 1 or last_round == "stop request":
        return last_round
    if config.max_minutes and last_round.startswith("time budget"):
        return f"time budget ({config.max_minutes} min over {config.rounds} rounds)"
    if config.max_steps and last_round.startswith("max steps"):
        return f"max steps ({config.max_steps} over {config.rounds} rounds)"
    return last_round


def _summary(number: int, report: FitReport, data_meta: dict) -> RoundReport:
    c = data_meta["counts"]
    return RoundReport(round=number, steps=report.steps, seconds=report.seconds, after=report.after,
                       prompts=c["prompts"], blocks=c["blocks"], states=c["states"], stopped_by=report.stopped_by)
