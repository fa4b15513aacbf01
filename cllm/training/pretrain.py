"""The bundled base model's recipe: a byte-level BPE tokenizer and a small Llama trained from scratch on
the Python standard library that ships with the interpreter (real code nobody here wrote, on every machine).

Corpus: every *.py file under the stdlib folder, except test suites (any path part named test/tests/
idle_test or starting with "test"), site-packages, and pydoc_data (prose, not code). Files are split
into train / held-out by a seeded hash of their relative path, so the split is the same on every machine
with the same Python. Training runs on transformers.Trainer (bf16 on CUDA when present, else CPU), with
its progress bar and checkpoints, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cllm.options import Flags
from cllm.trajectory import atomic_write_text

EOS = "<|endoftext|>"
EXCLUDED_PARTS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "pydoc_data"}


@dataclass(frozen=True)
class PretrainConfig:
    # A field's trailing comment is its `pretrain --help` (cllm.options); comment lines above it say why.
    out: str = "assets/models/tiny-python"  # final HF-format folder
    work_dir: str = "runs/pretrain"  # Trainer checkpoints; a rerun resumes from here (not shipped)
    seed: int = 0  # split, init and data order
    heldout_fraction: float = 0.05  # share of files held out (by path hash)
    vocab_size: int = 4096  # small vocabulary keeps the embedding (and the checkpoint) small
    hidden_size: int = 256  # model width
    layers: int = 4  # transformer layers
    heads: int = 8  # attention heads
    kv_heads: int = 4  # key/value heads (grouped-query attention halves the K/V projections)
    intermediate_size: int = 704  # MLP width
    context: int = 512  # training sequence length = the model's context
    batch_size: int = 16  # rows per step
    lr: float = 2e-3  # peak learning rate (small models take a high one)
    min_lr_rate: float = 0.1  # cosine decay to this share of the peak rate
    weight_decay: float = 0.1  # AdamW weight decay
    # 0.95 rather than AdamW's 0.999: steadier on small, noisy batches
    adam_beta2: float = 0.95  # AdamW beta2
    max_grad_norm: float = 1.0  # gradient clipping norm
    max_steps: int = 1100  # optimizer steps (the bundled base's)
    warmup_steps: int = 60  # linear warm-up steps
    eval_every: int = 0  # > 0: held-out loss every N steps, and the best checkpoint is the one kept
    corpus_root: str | None = None  # None: the interpreter's stdlib


# `python -m cllm pretrain` leaves the corpus and the tokenizer's settings as they are
PRETRAIN_FLAGS = Flags(skip=("heldout_fraction", "vocab_size", "corpus_root"))


def check_config(config: PretrainConfig) -> None:
    """One clear line for a size or schedule the model could not be built or trained with."""
    for name in ("hidden_size", "layers", "heads", "kv_heads", "intermediate_size", "context", "batch_size",
                 "max_steps", "warmup_steps", "eval_every", "seed"):
        floor = 0 if name in ("eval_every", "warmup_steps", "seed") else 1
        if getattr(config, name) < floor:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {floor}; got {getattr(config, name)}")
    for name in ("lr", "min_lr_rate", "weight_decay", "adam_beta2"):
        if not 0 <= getattr(config, name) < 1 or (name == "lr" and config.lr == 0):
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1; got {getattr(config, name)}")
    if not 0 < config.max_grad_norm < math.inf:
        raise ValueError(f"--max-grad-norm must be positive; got {config.max_grad_norm}")
    if config.hidden_size % config.heads or config.heads % config.kv_heads:
        raise ValueError(f"--heads ({config.heads}) must divide --hidden-size ({config.hidden_size}), "
                         f"and --kv-heads ({config.kv_heads}) must divide --heads")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path | None = None) -> list[Path]:
    root = root or stdlib_root()
    keep = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in EXCLUDED_PARTS or p.startswith("test") for p in parts):
            continue
        keep.append(path)
    return keep


def is_heldout(relative_path: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{relative_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_corpus(config: PretrainConfig, root: Path | None = None) -> tuple[list[Path], list[Path]]:
    root = root or Path(config.corpus_root or stdlib_root())
    train, heldout = [], []
    for path in corpus_files(root):
        rel = path.relative_to(root).as_posix()
        (heldout if is_heldout(rel, config.seed, config.heldout_fraction) else train).append(path)
    return train, heldout


def read_source(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (HF tokenizers), wrapped so AutoTokenizer.from_pretrained(folder) loads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


def token_chunks(tokenizer, texts: list[str], context: int) -> torch.Tensor:
    """All files joined with EOS between them, cut into (N, context) training rows."""
    ids: list[int] = []
    for ids_one in tokenizer(texts).input_ids:
        ids += ids_one + [tokenizer.eos_token_id]
    rows = len(ids) // context
    return torch.tensor(ids[: rows * context]).view(rows, context)


def build_model(config: PretrainConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, num_hidden_layers=config.layers,
        num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        intermediate_size=config.intermediate_size, max_position_embeddings=config.context,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(llama)


def function_prompts(paths: list[Path], root: Path, lines: int = 3, limit: int | None = None) -> list[dict]:
    """Beginnings of functions (signature + next lines), a prompt set drawn from whole files."""
    out = []
    for path in paths:
        source = read_source(path)
        if source is None:
            continue
        src_lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 4:
                start = node.lineno - 1 - len(node.decorator_list)
                # No trailing newline: the BPE merges "\n" with the next line's indent, so a prompt ending
                # in a bare "\n" tells the model the next line starts at column 0 (a tokenization artifact).
                text = "\n".join(src_lines[start: node.lineno - 1 + lines]).rstrip()
                rel = path.relative_to(root).as_posix()
                out.append({"prompt": text, "source": f"{rel}:{node.lineno}:{node.name}"})
    out.sort(key=lambda p: hashlib.sha256(p["source"].encode()).hexdigest())  # seeded-free stable mix
    return out[:limit] if limit else out


def write_prompt_sets(config: PretrainConfig, prompts_dir: Path, heldout_count: int = 64, train_count: int = 2000) -> None:
    root = stdlib_root()
    train, heldout = split_corpus(config, root)
    prompts_dir.mkdir(parents=True, exist_ok=True)
    for name, paths, count in (("heldout", heldout, heldout_count), ("train", train, train_count)):
        rows = function_prompts(paths, root, limit=count)
        atomic_write_text(prompts_dir / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def corpus_texts(paths: list[Path]) -> list[str]:
    return [t for t in (read_source(p) for p in paths) if t]


def config_dict(config: PretrainConfig) -> dict:
    return asdict(config)


class RowDataset(torch.utils.data.Dataset):
    """Fixed-length token rows; labels = inputs (the model shifts them)."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def corpus_rows(config: PretrainConfig, work: Path, tokenizer) -> dict:
    """Train and held-out rows, tokenized once and cached in work_dir (safetensors), so a resumed run, or a
    run on another machine whose Python ships a different stdlib, trains on exactly the same tokens."""
    from safetensors.torch import load_file, safe_open, save_file

    cache = work / "rows.safetensors"
    if cache.exists():
        try:
            with safe_open(str(cache), "pt") as f:
                files = tuple(json.loads(f.metadata()["files"]))
            rows = {name: t.long() for name, t in load_file(str(cache)).items()}
            train, heldout = rows["train"], rows["heldout"]
        except Exception as e:  # safetensors' own error types vary by version; any of them means a bad cache
            raise ValueError(f"{cache} is not a token-row cache ({type(e).__name__}); delete it to tokenize again") from None
        if train.shape[1] != config.context or heldout.shape[1] != config.context:
            raise ValueError(f"{cache} holds rows of {train.shape[1]} tokens, not --context {config.context}")
        return {"train": train, "heldout": heldout, "files": files}
    train_paths, heldout_paths = split_corpus(config)
    rows = {"train": token_chunks(tokenizer, corpus_texts(train_paths), config.context),
            "heldout": token_chunks(tokenizer, corpus_texts(heldout_paths), config.context)}
    tmp = cache.with_suffix(".tmp")
    # int32 halves the file (token ids are small); read back as the int64 the model takes
    files = (len(train_paths), len(heldout_paths))
    save_file({k: v.to(torch.int32) for k, v in rows.items()}, str(tmp), metadata={"files": json.dumps(files)})
    tmp.replace(cache)  # atomic: a kill mid-write leaves no half cache
    return rows | {"files": files}


def run_pretrain(config: PretrainConfig, device: str = "auto", max_minutes: float | None = None) -> dict:
    """Tokenizer + model from scratch; resumes from the last Trainer checkpoint in work_dir."""
    import time

    from transformers import PreTrainedTokenizerFast, Trainer, TrainingArguments

    from cllm.training.checkpoint import write_folder_atomic
    from cllm.training.budget import TimeBudget, resume_checkpoint

    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    tok_dir = work / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    else:
        tokenizer = train_tokenizer(corpus_texts(split_corpus(config)[0]), config.vocab_size)
        write_folder_atomic(tok_dir, tokenizer.save_pretrained)  # a kill mid-save must not leave half a tokenizer
    rows = corpus_rows(config, work, tokenizer)
    train_rows, heldout_rows = rows["train"], rows["heldout"]
    model = build_model(config, tokenizer)
    use_cuda = device != "cpu" and torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(work), per_device_train_batch_size=config.batch_size, max_steps=config.max_steps,
        learning_rate=config.lr, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_rate}, warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay, adam_beta2=config.adam_beta2, max_grad_norm=config.max_grad_norm,
        bf16=use_cuda, use_cpu=not use_cuda, logging_steps=25, save_total_limit=2,
        report_to="none", seed=config.seed, dataloader_drop_last=True, **eval_arguments(config),
    )
    callbacks = [TimeBudget(max_minutes)] if max_minutes else []
    trainer = Trainer(model=model, args=args, train_dataset=RowDataset(train_rows), callbacks=callbacks,
                      eval_dataset=RowDataset(heldout_rows) if config.eval_every else None)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(work))
    return {
        "model": trainer.model, "tokenizer": tokenizer, "steps": result.global_step,
        "train_loss": result.training_loss, "seconds_this_run": time.perf_counter() - t0,
        "train_tokens": train_rows.numel(), "heldout_tokens": heldout_rows.numel(),
        "heldout_rows": heldout_rows, "files": rows["files"], "device": "cuda" if use_cuda else "cpu",
        "best_step": best_step(trainer.state),
    }


def eval_arguments(config: PretrainConfig) -> dict:
    """With eval_every, the Trainer measures held-out loss on a schedule and ends on the best checkpoint:
    a long run over a small corpus (many passes on a GPU) then cannot end on an over-fitted model."""
    if not config.eval_every:
        return {"save_steps": 100}
    return {"eval_strategy": "steps", "eval_steps": config.eval_every, "save_steps": config.eval_every,
            "load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False,
            "per_device_eval_batch_size": config.batch_size}


def best_step(state) -> int | None:
    """The step of the checkpoint the Trainer kept as best (None without evaluation)."""
    from cllm.training.budget import CHECKPOINT

    found = CHECKPOINT.search(state.best_model_checkpoint or "")
    return int(found.group(1)) if found else None


def kept_note(result: dict) -> str:
    """The model card's words on which checkpoint was kept (empty without evaluation)."""
    if result.get("best_step") is None:
        return ""
    return f" Kept: the checkpoint of step {result['best_step']}, the lowest held-out loss of those evaluated."


def samples_markdown(samples: list[tuple[str, str]]) -> str:
    """Prompt / greedy continuation pairs as fenced Python blocks (the fence on its own line, or it never closes)."""
    return "\n\n".join(f"Prompt:\n```python\n{p.rstrip(chr(10))}\n```\nGreedy continuation (64 tokens):\n"
                       f"```python\n{c.rstrip(chr(10))}\n```" for p, c in samples)


def model_card(config: PretrainConfig, result: dict, ppl: float, samples: list[tuple[str, str]], params: int) -> str:
    train_files, heldout_files = result["files"]
    shown = samples_markdown(samples)
    return f"""---
license: psf-2.0
library_name: transformers
pipeline_tag: text-generation
---
# tiny-python

A small Llama-architecture causal LM trained from scratch by `python -m cllm pretrain` on the Python
standard library that ships with the interpreter. The base model of CLLM Explorer's bundled pair.

- Corpus: every `*.py` under the stdlib folder of Python {sysconfig.get_python_version()}, excluding test
  suites, site-packages and pydoc_data; split by file with a seeded hash: {train_files} train files
  ({result['train_tokens']:,} tokens), {heldout_files} held-out files ({result['heldout_tokens']:,} tokens).
- Tokenizer: byte-level BPE (HF tokenizers), {config.vocab_size} tokens, `{EOS}` as EOS and pad.
- Model: Llama, {params / 1e6:.2f} M parameters, hidden {config.hidden_size}, {config.layers} layers,
  {config.heads} heads ({config.kv_heads} KV heads), MLP {config.intermediate_size}, context {config.context},
  tied embeddings.
- Training: {result['steps']} steps of {config.batch_size} x {config.context} tokens, AdamW lr {config.lr}
  (cosine to 10 %, {config.warmup_steps} warm-up steps), weight decay 0.1, on {result['device']}
  ({result['compute']}).{kept_note(result)}
- Held-out perplexity: **{ppl:.2f}** (final training loss {result['train_loss']:.3f}).
- Full recipe: `cllm/training/pretrain.py`, config `{json.dumps(config_dict(config))}`.

## Samples (held-out prompts, greedy)

{shown}
"""
