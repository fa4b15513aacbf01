"""TrainConfig: every setting of a CLLM fine-tuning run, with its default, its command-line flag and its help
(cllm.options turns the fields into `python -m cllm train` flags). The defaults are the paper's, for 7B
models; cllm.training.recipe names the settings that work for smaller ones."""
from __future__ import annotations

import math
from dataclasses import dataclass

from cllm.jacobi import check_seed
from cllm.models import DTYPES
from cllm.options import Flags
from cllm.training.losses import AR_SCOPES, LOSSES

# transformers lr_scheduler_type names that need no extra scheduler arguments (the others fail mid-setup)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")
BUDGET_FIELDS = ("max_steps", "max_minutes", "epochs")  # what ends training


@dataclass(frozen=True)
class TrainConfig:
    # A field's trailing comment is its `train --help` (cllm.options); comment lines above it say why.
    # paper, Sec. 3.2
    loss: str = "global"  # consistency loss: global (any state -> fixed point) or local (state j -> state j+1)
    ar_weight: float = 10.0  # w in L = consistency + w * AR (the paper's 10)
    label_smoothing: float = 0.1  # of the AR loss (the paper's 0.1)
    # "sequence": the prompt is real text and keeps held-out perplexity. AR must cover the fixed point: without
    # it the consistency loss alone is met by collapsing to output the model can always predict
    ar_scope: str = "sequence"  # AR labels: context + block (sequence), or the block only (block)
    lr: float = 2e-5  # peak learning rate (the paper's, for 7B models)
    scheduler: str = "cosine"  # a transformers lr_scheduler_type (see SCHEDULERS)
    warmup: float = 0.03  # warm-up: a fraction of the steps (< 1) or a step count (>= 1); the paper's 3 %
    weight_decay: float = 0.0  # AdamW weight decay
    batch_size: int = 8  # blocks per device per optimizer step (times grad-accum)
    # more than the authors' 1 share the block's context pass (block_logits): on short blocks they add
    # consistency signal at little extra cost
    states_per_block: int = 1  # states sampled per block per step
    grad_accum: int = 1  # gradient accumulation steps
    epochs: float = 1.0  # passes over the data (the paper's 1); ignored with --max-steps
    max_steps: int | None = None  # optimizer steps, split between the rounds
    max_minutes: float | None = None  # wall-clock budget of the training loop, split between the rounds
    # each round after the first collects trajectories again from the weights as trained so far, on the next
    # prompts of the file the data was collected on (as many as its collect --limit; all without one)
    rounds: int = 1  # rounds of training, each after the first on freshly collected data (cllm.training.rounds)
    n: int | None = None  # block size expected (default: the data's; anything else must equal it)
    seed: int = 0  # state sampling, data order, the Trainer's RNGs
    device: str = "auto"  # auto: CUDA when present, else CPU
    # the weights always train in float32 from the base's exact values; bfloat16 autocasts the Trainer's passes
    # (measurements after training run without it), float32 does not
    dtype: str = "auto"  # auto (bfloat16 on CUDA, float32 on CPU), float32 or bfloat16
    eval_file: str | None = None  # held-out JSONL prompts (default: the shipped held-out set)
    eval_every: int = 0  # optimizer steps between held-out TPF measurements (0: before and after only)
    eval_prompts: int = 16  # held-out prompts Jacobi-decoded for TPF
    eval_max_new_tokens: int = 64  # new tokens per held-out prompt in those measurements
    max_grad_norm: float = 1.0  # gradient clipping norm
    # the paper's "ground truth" AR. The fixed point's AR term stays: without it the consistency loss is met
    # by ignoring the input (measured: TPF 8, perplexity 1000)
    # stdlib: the bundled base's pretraining split (cllm.training.pretrain)
    ar_text: str | None = None  # add an AR term on real text: stdlib or a UTF-8 text file
    text_weight: float = 1.0  # weight of the real-text AR term
    ar_text_tokens: int = 256  # tokens per real-text row (one row per block)
    # training then changes how a block reads its committed context, not how the context is encoded, and a
    # step costs about a third (the context is most of a 16-token block's tokens)
    context_grad: bool = True  # gradients through each context's pass (off: ~3x cheaper steps; needs --ar-scope block)
    # a LoRA adapter is how a CLLM of a 135 M base ships in a few MB (cllm.adapters)
    lora_rank: int = 0  # 0: train every weight; r > 0: train and save a rank-r LoRA adapter (merged at load)
    lora_alpha: float = 32.0  # LoRA scale numerator (update = alpha / r * B A)
    # a later session goes on from what shipped (a fresh machine keeps no checkpoints; git keeps the adapter)
    init_adapter: str | None = None  # continue this LoRA adapter folder (its rank and alpha; its base is --model)
    # without one a temporary folder, nothing kept (a CPU run of hours wants one)
    work_dir: str | None = None  # keep Trainer checkpoints here; the same command again resumes from the newest
    save_every: int = 50  # optimizer steps between checkpoints (with --work-dir)

    def __post_init__(self):
        check_train_config(self)


def check_train_config(c: TrainConfig) -> None:
    """ValueError naming the flag for any setting that cannot train."""
    numbers = {"lr": c.lr, "ar-weight": c.ar_weight, "label-smoothing": c.label_smoothing,
               "warmup": c.warmup, "epochs": c.epochs, "max-minutes": c.max_minutes or 0.0}
    for name, value in numbers.items():  # argparse's float() takes "nan" and "inf", and nan passes every < test
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if c.warmup < 0:
        raise ValueError("warmup must be non-negative (a fraction of the steps below 1, or a step count)")
    if c.scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {str(c.scheduler)[:40]!r}: use one of {', '.join(SCHEDULERS)}")
    check_seed(c.seed)
    if c.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {str(c.dtype)[:40]!r}")
    if c.loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {c.loss!r}")
    if c.ar_scope not in AR_SCOPES:
        raise ValueError(f"ar_scope must be one of {', '.join(AR_SCOPES)}; got {c.ar_scope!r}")
    if c.ar_text_tokens < 2 or c.text_weight < 0:
        raise ValueError("ar-text-tokens must be at least 2 and text-weight non-negative")
    if c.lr <= 0 or c.ar_weight < 0 or not 0 <= c.label_smoothing < 1:
        raise ValueError("lr must be positive, ar-weight non-negative, label smoothing in [0, 1)")
    if not c.context_grad and c.ar_scope != "block":
        raise ValueError("a context without gradients (--no-context-grad) needs --ar-scope block: the context's "
                         "AR labels could not train anything")
    if c.lora_rank < 0 or c.lora_alpha <= 0 or c.save_every < 1:
        raise ValueError("lora-rank must be non-negative, lora-alpha positive, save-every at least 1")
    if c.init_adapter is not None and not c.lora_rank:
        raise ValueError("--init-adapter continues a LoRA adapter: give --lora-rank (the adapter's rank)")
    if c.work_dir is not None and c.rounds > 1:
        raise ValueError("--work-dir (resumable checkpoints) trains one round per launch; give --rounds 1")
    for name in ("batch_size", "states_per_block", "grad_accum", "eval_prompts", "eval_max_new_tokens", "rounds"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name.replace('_', '-')} must be at least 1")
    if (c.max_steps is not None and c.max_steps < 1) or c.epochs <= 0 or c.eval_every < 0:
        raise ValueError("max-steps and epochs must be positive, eval-every non-negative")
    if c.max_minutes is not None and c.max_minutes <= 0:
        raise ValueError("max-minutes must be positive")
    if c.max_steps is not None and c.max_steps < c.rounds:
        raise ValueError(f"max-steps ({c.max_steps}) must be at least rounds ({c.rounds}): each round "
                         "trains at least one step")


# `python -m cllm train`'s spelling of the fields whose flags are not --field-name
TRAIN_FLAGS = Flags(names={"n": ("--n", "--block-size"), "eval_file": ("--eval-prompts",),
                           "eval_prompts": ("--eval-count",)},
                    choices={"loss": LOSSES, "ar_scope": AR_SCOPES, "dtype": DTYPES})
