"""CLLM fine-tuning on transformers.Trainer: the data pipeline, compute_loss, and a streaming/stoppable callback.

The Trainer does the rest (optimizer, schedule, bf16 autocast on CUDA, gradient accumulation, and DDP /
FSDP / DeepSpeed when started with `accelerate launch` or torchrun), so the same code runs on a laptop CPU
and a GPU node. `fit_cllm` (cllm/training/fit.py) wraps this with measurements; `train_cllm` (train.py) saves atomically.

One example = one collected block. Each time it is drawn, `states_per_block` states are sampled (the
authors sample one): for the global loss any recorded or augmented state except the fixed point, with the
fixed point as target; for the local loss a recorded state y^(j) with its successor y^(j+1) as target
(augmented states have no successor, so local training ignores them).

A batch runs each context once and its blocks on top of it through a repeated KV cache (`block_logits`):
on short-block data the context is most of the tokens, so this roughly halves the compute of a step.
"""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import Trainer, TrainerCallback

from cllm.training.dataset import Entry
from cllm.jacobi import cache_arg, returned_cache
from cllm.jacobi_batch import PAD_ID  # right-padded slots: the attention mask hides them, no label points at them
from cllm.training.config import TrainConfig
from cllm.training.losses import IGNORE, ar_loss, consistency_loss, teachable_mask, total_loss

class ConsistencyData(torch.utils.data.Dataset):
    """Collected blocks; each access samples `k` (state, target) pairs of the block (see module doc),
    distinct while the block has enough of them."""

    def __init__(self, entries: list[Entry], loss: str, k: int = 1, seed: int = 0,
                 text_ids: torch.Tensor | None = None, text_tokens: int = 256):
        self.entries, self.loss, self.k, self.rng = entries, loss, k, random.Random(seed)
        self.text_ids, self.text_tokens = text_ids, text_tokens  # real text (1-D ids) for the "text" AR scope

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        if self.loss == "global":
            pool = [(s, e.fixed_point) for s in e.states[:-1] + e.augmented if s != e.fixed_point]
            pool = pool or [(e.fixed_point, e.fixed_point)]  # guess == fixed point: nothing to teach but AR
        else:
            pool = list(zip(e.states[:-1], e.states[1:]))
        pairs = self.rng.sample(pool, self.k) if len(pool) >= self.k else self.rng.choices(pool, k=self.k)
        item = {"context": e.context, "states": [p[0] for p in pairs], "targets": [p[1] for p in pairs],
                "fixed_point": e.fixed_point}
        if self.text_ids is not None:  # a random window of real text per block
            start = self.rng.randrange(max(1, len(self.text_ids) - self.text_tokens + 1))
            item["text_row"] = self.text_ids[start: start + self.text_tokens]
        return item


@dataclass
class ConsistencyCollator:
    """Model inputs for a batch: each context once, then its blocks on top (see `block_logits`).

    context_ids (B, P): context[:-1] left-padded, so every context ends at column P and the blocks of all
    rows start together. block_ids (B*R, W): per example R rows [fixed point, k states (, k targets for
    the local loss)], each fed as jacobi.py feeds a block, [context[-1]] + block[:-1], right-padded."""

    loss: str = "global"
    ar_scope: str = "sequence"

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        span = max(len(it["context"]) for it in items) - 1  # P
        width = max(len(it["fixed_point"]) for it in items)  # W
        k, rows = len(items[0]["states"]), self.rows_per_example(len(items[0]["states"]))
        out = {name: torch.full(shape, fill, dtype=torch.long) for name, shape, fill in (
            ("context_ids", (len(items), span), PAD_ID), ("context_mask", (len(items), span), 0),
            ("context_labels", (len(items), span), IGNORE), ("block_positions", (len(items), width), 0),
            ("fixed_labels", (len(items), width), IGNORE), ("states", (len(items), k, width), PAD_ID),
            ("targets", (len(items), k, width), PAD_ID), ("block_ids", (len(items) * rows, width), PAD_ID))}
        out["block_valid"] = torch.zeros(len(items), width, dtype=torch.bool)
        for b, it in enumerate(items):
            ctx, w, pad = it["context"], len(it["fixed_point"]), span - (len(it["context"]) - 1)
            out["context_ids"][b, pad:], out["context_mask"][b, pad:] = torch.tensor(ctx[:-1], dtype=torch.long), 1
            if self.ar_scope == "sequence":  # context[t] predicts context[t + 1]
                out["context_labels"][b, pad:] = torch.tensor(ctx[1:], dtype=torch.long)
            blocks = [it["fixed_point"]] + it["states"] + (it["targets"] if self.loss == "local" else [])
            for r, block in enumerate(blocks):
                out["block_ids"][rows * b + r, :w] = torch.tensor([ctx[-1]] + block[:-1])
            out["block_positions"][b] = torch.arange(len(ctx) - 1, len(ctx) - 1 + width)
            out["states"][b, :, :w], out["targets"][b, :, :w] = torch.tensor(it["states"]), torch.tensor(it["targets"])
            out["fixed_labels"][b, :w], out["block_valid"][b, :w] = torch.tensor(it["fixed_point"]), True
        if "text_row" in items[0]:
            out["text_ids"] = torch.stack([it["text_row"] for it in items])  # (B, L)
        return out

    def rows_per_example(self, k: int) -> int:
        return 1 + k + (k if self.loss == "local" else 0)


def block_logits(model, batch: dict, context_grad: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Run each context once and its R blocks on top of it (its cache repeated R times): the blocks share
    the context's computation, gradients included (unless `context_grad` is False), instead of paying for
    the context R times.
    Returns (context logits (B, P, V), or None when no context label needs them; block logits (B, R, W, V))."""
    rows, span = batch["block_valid"].shape[0], batch["context_ids"].shape[1]
    repeat = batch["block_ids"].shape[0] // rows  # R
    ctx_mask = batch["context_mask"]
    cache, ctx_logits = None, None
    if span:
        want_logits = bool((batch["context_labels"] != IGNORE).any())
        with torch.set_grad_enabled(context_grad and torch.is_grad_enabled()):
            out = model(input_ids=batch["context_ids"], attention_mask=ctx_mask, use_cache=True,
                        position_ids=(ctx_mask.cumsum(-1) - 1).clamp(min=0), logits_to_keep=0 if want_logits else 1)
        cache, ctx_logits = returned_cache(out), out.logits if want_logits else None
        cache.batch_repeat_interleave(repeat)  # example b's context serves block rows R*b .. R*b + R-1
    mask = torch.cat([ctx_mask, batch["block_valid"].long()], dim=1).repeat_interleave(repeat, dim=0)  # (BR, P+W)
    out = model(input_ids=batch["block_ids"], attention_mask=mask, use_cache=cache is not None,
                position_ids=batch["block_positions"].repeat_interleave(repeat, dim=0), **{cache_arg(model): cache})
    return ctx_logits, out.logits.view(rows, repeat, *out.logits.shape[1:])


def loss_parts(model, batch: dict, config: "TrainConfig") -> dict[str, torch.Tensor]:
    """The CLLM loss of a batch and its parts (cllm.training.losses)."""
    ctx_logits, logits = block_logits(model, batch, config.context_grad)
    rows, k, width = batch["states"].shape
    fixed, student = logits[:, 0], logits[:, 1: 1 + k]  # (B, W, V), (B, k, W, V)
    # Targets are detached inside consistency_loss: the fixed point's pass (global) or the next states' (local).
    target = fixed[:, None].expand_as(student) if config.loss == "global" else logits[:, 1 + k:]
    valid = batch["block_valid"][:, None].expand(rows, k, width).reshape(rows * k, width)
    teach = teachable_mask(batch["states"].view(rows * k, width), batch["targets"].view(rows * k, width), valid)
    consistency = consistency_loss(student.flatten(0, 1), target.flatten(0, 1), teach)
    if ctx_logits is not None:
        ar = ar_loss(torch.cat([ctx_logits, fixed], 1), torch.cat([batch["context_labels"], batch["fixed_labels"]], 1),
                     config.label_smoothing)
    else:
        ar = ar_loss(fixed, batch["fixed_labels"], config.label_smoothing)
    parts = {"consistency": consistency, "ar": ar, "teachable_tokens": teach.sum()}
    if "text_ids" in batch:  # real text: row[t] predicts row[t + 1]
        text = batch["text_ids"]
        parts["text_ar"] = ar_loss(model(input_ids=text[:, :-1]).logits, text[:, 1:], config.label_smoothing)
    parts["loss"] = total_loss(consistency, ar, config.ar_weight, parts.get("text_ar"), config.text_weight)
    return parts


class LossTracker:
    """Per-step means of the loss parts, filled by compute_loss and emptied by the callback."""

    def __init__(self):
        self.sums, self.counts = defaultdict(float), defaultdict(int)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] += float(v)
            self.counts[k] += 1

    def pop_means(self) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return means


class ConsistencyTrainer(Trainer):
    """Trainer whose loss is L_consistency + w * L_AR (cllm.training.losses) on ConsistencyCollator batches."""

    loss_is_scaled_for_ga = False  # compute_loss returns a batch mean: Trainer divides it by the accumulation steps

    def __init__(self, *args, train_config: TrainConfig, tracker: LossTracker, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_config, self.tracker = train_config, tracker

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        parts = loss_parts(model, inputs, self.train_config)
        self.tracker.add(**{k: v.detach() for k, v in parts.items()})
        return (parts["loss"], parts) if return_outputs else parts["loss"]


class TrainingMonitor(TrainerCallback):
    """After every optimizer step: hands a metrics dict to `on_metrics` (main process only) and stops
    training cleanly once `stop` is set. Every `eval_every` steps it adds `evaluate(model)` (e.g. held-out
    TPF and perplexity). Metrics: step, epoch, seconds (since train begin), lr, loss, consistency, ar,
    teachable_tokens (+ tpf, perplexity, distinct_4grams every `eval_every` steps with train_cllm)."""

    def __init__(self, tracker: LossTracker, on_metrics: Callable[[dict], None] | None = None,
                 stop: threading.Event | None = None, evaluate: Callable[[object], dict] | None = None,
                 eval_every: int = 0):
        self.tracker, self.on_metrics, self.stop = tracker, on_metrics, stop
        self.evaluate, self.eval_every = evaluate, eval_every
        self.history: list[dict] = []
        self.stopped_by_request = False
        self.start = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, lr_scheduler=None, **kwargs):
        metrics = {"step": state.global_step, "epoch": state.epoch, "seconds": time.perf_counter() - self.start,
                   "lr": lr_scheduler.get_last_lr()[0] if lr_scheduler is not None else None}
        metrics |= self.tracker.pop_means()
        if self.evaluate and self.eval_every and state.global_step % self.eval_every == 0:
            metrics |= self.evaluate(model)
        self.history.append(metrics)
        if self.on_metrics is not None and state.is_world_process_zero:
            self.on_metrics(metrics)
        if self.stop is not None and self.stop.is_set():
            control.should_training_stop = self.stopped_by_request = True
        if control.should_training_stop:  # a resumable run (a work_dir) keeps the step it stopped at; without
            control.should_save = args.save_strategy != "no"  # one, train_cllm saves the model itself
        return control
