"""`fit_cllm`: check inputs, measure the base model, fine-tune (cllm.training.trainer), measure again; one
round, without saving (cllm.training.rounds runs several; cllm.training.train saves; the app's Train tab keeps
the model in memory until its Save).

Evaluation set: the first `eval_prompts` prompts of the held-out file are Jacobi-decoded for TPF; held-out
perplexity is measured on the text of every prompt in that file (up to 256): real held-out code, not the
model's own output, so it shows whether training hurt the model as a language model.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainingArguments

from cllm.adapters import continue_lora, with_lora
from cllm.training.checkpoint import check_disk_for
from cllm.training.dataset import load_entries
from cllm.files import read_capped_text
from cllm.jacobi import JacobiConfig, check_inputs, context_limit, vocab_size_of
from cllm.models import LoadedModel, load_model, pick_dtype
from cllm.prompts import HELDOUT_PROMPTS, read_prompts
from cllm.evaluate import perplexity
from cllm.training.measure import ar_agreement, distinct_ngrams, jacobi_tpf
from cllm.training.report import FitReport, JobHooks, Measured
from cllm.training.config import TrainConfig
from cllm.training.trainer import ConsistencyCollator, ConsistencyData, ConsistencyTrainer, LossTracker, TrainingMonitor
from cllm.training.budget import TimeBudget, resume_checkpoint

MAX_PERPLEXITY_PROMPTS = 256
PERPLEXITY_TEXT = "text of the held-out prompts file"
MAX_AR_TEXT_BYTES = 200 * 2**20
# The stdlib split as token ids, per tokenizer (name, size): tokenizing its 10 MB takes seconds, and the
# Train tab would pay them on every run of a 5-minute budget. Files are read fresh each time (they may change).
_STDLIB_IDS: dict[tuple[str, int], torch.Tensor] = {}


@dataclass
class Fit:
    """A fine-tuned model still in memory, with what was measured."""

    model: torch.nn.Module
    tokenizer: object
    report: FitReport
    trainer: object  # the transformers Trainer (its accelerator gathers sharded weights for the save)
    eos_token_id: int | None = None  # the model's, as load_model found it (for decoding with it afterwards)


@dataclass
class InMemory:
    """A later round's start: the model as trained so far, and its last measurements (not made again)."""

    loaded: LoadedModel
    before: Measured


def fit_cllm(model_name: str, data_dir: str | Path, config: TrainConfig, hooks: JobHooks | None = None,
             save_to: Path | None = None, start: InMemory | None = None) -> Fit:
    """Fine-tune without saving, reporting through `hooks` (JobHooks: metrics, stop, probe, progress).
    `save_to`: where the model will be saved, so a full disk fails before training, not after.
    `start`: the model already in memory (a later round of cllm.training.rounds) instead of loading
    `model_name`, with its measurements."""
    hooks = hooks or JobHooks()
    meta, entries = load_entries(data_dir)
    if config.n is not None and config.n != meta["n"]:
        raise ValueError(f"--n {config.n} does not match the data's n = {meta['n']} (collect again with --n {config.n})")
    _use_local_gpu()
    # the base's exact float32 weights whatever config.dtype says: bfloat16 only autocasts the Trainer's passes
    # (a LoRA adapter trained on a rounded base would be merged into the exact one at load)
    loaded = start.loaded if start else load_model(model_name, config.device, dtype="float32")
    model = loaded.model = loaded.model.float()
    if vocab_size_of(model) != meta["vocab_size"]:
        raise ValueError(f"the data was collected with a vocabulary of {meta['vocab_size']} tokens, "
                         f"{model_name} has {vocab_size_of(model)}: not the same tokenizer")
    if save_to is not None:
        check_disk_for(model, save_to)
    if config.lora_rank and not hasattr(model, "peft_config"):  # a later round trains the same adapter on
        model = loaded.model = continue_lora(model, config.init_adapter, config.lora_rank, config.lora_alpha,
                                             model_name) if config.init_adapter else \
            with_lora(model, config.lora_rank, config.lora_alpha)
    text_ids = read_ar_text(config.ar_text, loaded.tokenizer) if config.ar_text else None
    jconfig = JacobiConfig(n=meta["n"], max_new_tokens=config.eval_max_new_tokens, seed=config.seed)
    tpf_ids, ppl_ids = _eval_sets(loaded, config.eval_file or HELDOUT_PROMPTS, config)

    def measure(m, check_ar: bool = False) -> Measured:
        out = _measure(m, tpf_ids, ppl_ids, jconfig, loaded.eos_token_id, check_ar)
        if hooks.probe is not None:
            hooks.probe(loaded, out)
        return out

    before = start.before if start else measure(model)
    with _trainer_dir(config) as work:
        trainer, monitor = _build_trainer(model, (entries, text_ids), config, work, hooks, measure)
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume_checkpoint(work))
        seconds = time.perf_counter() - t0
    # accelerate wrapped model.forward in bf16 autocast (when on): unwrap it, so the measurements, a later
    # round's collection and the app's in-memory model run as a reload of the saved weights would
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    after = measure(model, check_ar=True) if trainer.args.world_size == 1 else None  # multi-process: use bench
    report = FitReport(base_model=model_name, data_dir=str(data_dir), data_meta=meta, config=asdict(config),
                       steps=result.global_step, seconds=seconds, device=str(model.device), before=before,
                       after=after, history=monitor.history, eval_prompt_count=len(tpf_ids),
                       eval_max_new_tokens=config.eval_max_new_tokens, perplexity_text=PERPLEXITY_TEXT,
                       stopped_by=_stopped_by(monitor, config, seconds))
    return Fit(model, loaded.tokenizer, report, trainer, loaded.eos_token_id)


def _trainer_dir(config: TrainConfig):
    """The Trainer's output_dir: the config's work_dir (checkpoints kept, resumed), else a temporary one."""
    if config.work_dir is None:
        return tempfile.TemporaryDirectory(prefix="cllm-trainer-")
    Path(config.work_dir).mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(config.work_dir)


def _use_local_gpu() -> None:
    """Under torchrun / accelerate launch each process owns GPU LOCAL_RANK: make it the current device, so
    load_model's "cuda" lands there (not every rank on GPU 0) before the Trainer takes over."""
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank is not None and torch.cuda.is_available():
        torch.cuda.set_device(int(local_rank))


def _eval_sets(loaded, prompts_file, config: TrainConfig) -> tuple[list[list[int]], list[list[int]]]:
    """(prompts for TPF, texts for perplexity), as token ids; prompts too long for the context are left out."""
    texts = [loaded.tokenizer(p).input_ids for p in read_prompts(prompts_file, MAX_PERPLEXITY_PROMPTS)]
    fits = []
    for ids in texts:
        try:
            check_inputs(loaded.model, ids, config.eval_max_new_tokens)
            fits.append(ids)
        except ValueError:
            continue
    if not fits:
        raise ValueError(f"no prompt of {prompts_file} fits the model's context with "
                         f"{config.eval_max_new_tokens} new tokens")
    context = context_limit(loaded.model) or 10**9
    return fits[: config.eval_prompts], [t[:context] for t in texts]


def read_ar_text(spec: str, tokenizer, flag: str = "--ar-text") -> torch.Tensor:
    """Real text for the "text" AR scope as 1-D token ids, documents joined by EOS: "stdlib" is the train
    split the bundled base was pretrained on (cllm.training.pretrain); anything else is a UTF-8 text file. Errors
    name the option `flag` the text came from."""
    if spec == "stdlib":
        key = (tokenizer.name_or_path, len(tokenizer))
        if key not in _STDLIB_IDS:
            from cllm.training.pretrain import PretrainConfig, corpus_texts, split_corpus

            _STDLIB_IDS[key] = _token_ids(corpus_texts(split_corpus(PretrainConfig())[0]), tokenizer, f"{flag} {spec}")
        return _STDLIB_IDS[key]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"{flag} {spec}: not a file of at most {MAX_AR_TEXT_BYTES // 2**20} MiB")
    try:
        texts = [read_capped_text(path, MAX_AR_TEXT_BYTES)]
    except ValueError as e:
        raise ValueError(f"{flag} {spec}: {e}") from None
    return _token_ids(texts, tokenizer, f"{flag} {spec}")


def _token_ids(texts: list[str], tokenizer, source: str) -> torch.Tensor:
    """Documents as one 1-D id tensor, joined by EOS."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids = [i for doc in tokenizer(texts).input_ids for i in doc + eos]
    if len(ids) < 2:
        raise ValueError(f"{source} holds no text")
    return torch.tensor(ids, dtype=torch.long)


def _build_trainer(model, data: tuple, config: TrainConfig, work: str, hooks: JobHooks, measure):
    """The Trainer over `data` (collected entries, real-text ids or None) and the monitor that streams it."""
    entries, text_ids = data
    progress = hooks.progress
    use_cuda = model.device.type == "cuda"
    autocast = pick_dtype(config.dtype, model.device) == torch.bfloat16  # auto: bf16 on CUDA, as before
    args = TrainingArguments(
        output_dir=work, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.lr, lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup, weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        num_train_epochs=config.epochs, max_steps=config.max_steps or -1, bf16=autocast, use_cpu=not use_cuda,
        save_strategy="steps" if config.work_dir else "no", save_steps=config.save_every, save_total_limit=2,
        logging_steps=10, report_to="none", seed=config.seed, remove_unused_columns=False,
        disable_tqdm=not progress, dataloader_pin_memory=use_cuda,
    )
    tracker = LossTracker()
    # Held-out TPF during training decodes with the local model; under FSDP/DeepSpeed it is measured after.
    evaluate = measure if args.world_size == 1 else None
    monitor = TrainingMonitor(tracker, hooks.on_metrics, hooks.stop, evaluate, config.eval_every)
    callbacks = ([TimeBudget(config.max_minutes)] if config.max_minutes else []) + [monitor]  # monitor last
    data = ConsistencyData(entries, config.loss, config.states_per_block, config.seed, text_ids, config.ar_text_tokens)
    trainer = ConsistencyTrainer(model=model, args=args, train_dataset=data, callbacks=callbacks,
                                 data_collator=ConsistencyCollator(config.loss, config.ar_scope),
                                 train_config=config, tracker=tracker)
    if not progress:
        trainer.remove_callback(PrinterCallback)  # without a progress bar it prints log dicts to stdout
    return trainer, monitor


def _measure(model, tpf_ids, ppl_ids, jconfig, eos, check_ar: bool = False) -> Measured:
    """Held-out TPF, perplexity, distinct 4-grams of the outputs (and whether they equal greedy AR)."""
    tpf, outputs = jacobi_tpf(model, tpf_ids, jconfig, eos)
    out = Measured(tpf=tpf, perplexity=perplexity(model, ppl_ids), distinct_4grams=distinct_ngrams(outputs))
    if check_ar:
        out["matches_ar"] = ar_agreement(model, tpf_ids, outputs, jconfig.max_new_tokens, eos)
    return out


def _stopped_by(monitor: TrainingMonitor, config: TrainConfig, seconds: float) -> str:
    if monitor.stopped_by_request:
        return "stop request"
    if config.max_minutes and seconds >= config.max_minutes * 60:
        return f"time budget ({config.max_minutes} min)"
    return f"max steps ({config.max_steps})" if config.max_steps else f"{config.epochs} epoch(s)"
