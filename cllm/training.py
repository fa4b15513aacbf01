"""CLLM fine-tuning on transformers.Trainer: the data pipeline, compute_loss, and a streaming/stoppable callback.

The Trainer does the rest (optimizer, schedule, bf16 autocast on CUDA, gradient accumulation, and DDP /
FSDP / DeepSpeed when started with `accelerate launch` or torchrun), so the same code runs on a laptop CPU
and a GPU node. `train_cllm` (cllm/train_run.py) wraps this with measurements and the atomic save.

One example = one collected block. Each time it is drawn, `states_per_block` states are sampled (the
authors sample one): for the global loss any recorded or augmented state except the fixed point, with the
fixed point as target; for the local loss a recorded state y^(j) with its successor y^(j+1) as target
(augmented states have no successor, so local training ignores them).

A batch runs each context once and its blocks on top of it through a repeated KV cache (`block_logits`):
on short-block data the context is most of the tokens, so this roughly halves the compute of a step.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import Trainer, TrainerCallback

from cllm.dataset import Entry
from cllm.jacobi import cache_arg, check_seed, returned_cache
from cllm.losses import AR_SCOPES, IGNORE, LOSSES, ar_loss, consistency_loss, teachable_mask, total_loss

# transformers lr_scheduler_type names that need no extra scheduler arguments (the others fail mid-setup)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")
PAD_ID = 0  # id in right-padded slots; the attention mask hides them and no label points at them


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "global"  # "global": any state -> fixed point; "local": state j -> state j+1 (paper, Sec. 3.2)
    ar_weight: float = 10.0  # w in L = L_consistency + w * L_AR (the paper's w)
    label_smoothing: float = 0.1  # of the AR loss (the paper's)
    ar_scope: str = "sequence"  # AR labels: "sequence" = context + fixed point (the prompt is real text and
    # keeps held-out perplexity); "block" = the fixed point only. AR must cover the fixed point: without it
    # the consistency loss alone is met by collapsing to output the model can always predict
    lr: float = 2e-5  # the paper's, for 7B models; a ~4M-parameter model wants ~100x more (README recipe)
    scheduler: str = "cosine"  # any transformers lr_scheduler_type
    warmup: float = 0.03  # warm-up as a fraction of the steps (< 1) or a step count (>= 1); the paper's 3 %
    weight_decay: float = 0.0
    batch_size: int = 8  # blocks per device per optimizer step (times grad_accum)
    states_per_block: int = 1  # states sampled per block per step: the authors' 1; more share the block's
    # context pass (block_logits), so on short blocks they add consistency signal at little extra cost
    grad_accum: int = 1
    epochs: float = 1.0  # the paper trains one epoch; ignored when max_steps is set
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget of the training loop (cllm.training_utils.TimeBudget)
    n: int | None = None  # block size expected; None takes the data's, anything else must equal it
    seed: int = 0  # state sampling, data order, init of the Trainer's RNGs
    device: str = "auto"  # auto: CUDA (bf16 autocast) when present, else CPU (float32)
    eval_every: int = 0  # optimizer steps between held-out TPF measurements sent to on_metrics (0: none)
    eval_prompts: int = 16  # held-out prompts Jacobi-decoded for TPF (before, during, after)
    eval_max_new_tokens: int = 64  # new tokens per held-out prompt in those measurements
    max_grad_norm: float = 1.0
    ar_text: str | None = None  # real text for a second AR term (the paper's "ground truth" AR): "stdlib" (the
    # bundled base's pretraining split, cllm.pretrain) or a UTF-8 text file. The fixed point's AR term stays:
    # without it the consistency loss is met by ignoring the input (measured: TPF 8, perplexity 1000)
    text_weight: float = 1.0  # weight of the real-text AR term
    ar_text_tokens: int = 256  # length of each real-text row (one row per block)
    context_grad: bool = True  # backpropagate through the context's pass; False runs it without gradients
    # (needs ar_scope "block"): training then changes how a block reads its committed context, not how the
    # context is encoded, and a step costs about a third (the context is most of a 16-token block's tokens)
    lora_rank: int = 0  # 0: fine-tune every weight; r > 0: train a rank-r LoRA adapter on every linear layer
    # (cllm.adapters) and save only the adapter: how a CLLM of a 135 M base ships in a few MB
    lora_alpha: float = 32.0  # LoRA scale numerator (update = alpha / r * B A)
    work_dir: str | None = None  # Trainer checkpoints go here and a rerun resumes from the newest; None: a
    # temporary folder, nothing kept (a CPU run of hours wants one)
    save_every: int = 50  # optimizer steps between checkpoints when work_dir is set
    rounds: int = 1  # training rounds; each after the first collects trajectories again from the weights
    # as trained so far, on the next prompts of the data's prompts file (cllm.train_rounds); max_steps and
    # max_minutes are split between the rounds, epochs count per round

    def __post_init__(self):
        numbers = {"lr": self.lr, "ar-weight": self.ar_weight, "label-smoothing": self.label_smoothing,
                   "warmup": self.warmup, "epochs": self.epochs, "max-minutes": self.max_minutes or 0.0}
        for name, value in numbers.items():  # argparse's float() takes "nan" and "inf", and nan passes every < test
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        if self.warmup < 0:
            raise ValueError("warmup must be non-negative (a fraction of the steps below 1, or a step count)")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {str(self.scheduler)[:40]!r}: use one of {', '.join(SCHEDULERS)}")
        check_seed(self.seed)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.ar_scope not in AR_SCOPES:
            raise ValueError(f"ar_scope must be one of {', '.join(AR_SCOPES)}; got {self.ar_scope!r}")
        if self.ar_text_tokens < 2 or self.text_weight < 0:
            raise ValueError("ar-text-tokens must be at least 2 and text-weight non-negative")
        if self.lr <= 0 or self.ar_weight < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("lr must be positive, ar-weight non-negative, label smoothing in [0, 1)")
        if not self.context_grad and self.ar_scope != "block":
            raise ValueError("a context without gradients (--no-context-grad) needs --ar-scope block: the context's "
                             "AR labels could not train anything")
        if self.lora_rank < 0 or self.lora_alpha <= 0 or self.save_every < 1:
            raise ValueError("lora-rank must be non-negative, lora-alpha positive, save-every at least 1")
        if self.work_dir is not None and self.rounds > 1:
            raise ValueError("--work-dir (resumable checkpoints) trains one round per launch; give --rounds 1")
        for name in ("batch_size", "states_per_block", "grad_accum", "eval_prompts", "eval_max_new_tokens", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        if (self.max_steps is not None and self.max_steps < 1) or self.epochs <= 0 or self.eval_every < 0:
            raise ValueError("max-steps and epochs must be positive, eval-every non-negative")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("max-minutes must be positive")
        if self.max_steps is not None and self.max_steps < self.rounds:
            raise ValueError(f"max-steps ({self.max_steps}) must be at least rounds ({self.rounds}): each round "
                             "trains at least one step")


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
    """The CLLM loss of a batch and its parts (cllm.losses)."""
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
    """Trainer whose loss is L_consistency + w * L_AR (cllm.losses) on ConsistencyCollator batches."""

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
