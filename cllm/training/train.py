"""`train_cllm`: fine-tune in rounds (cllm.training.rounds) and save the model atomically with its card
and training record; under torchrun / accelerate launch the weights are gathered and rank 0 writes."""
from __future__ import annotations

from pathlib import Path

from cllm.adapters import name_base
from cllm.models import resolve_source
from cllm.training.cards import TRAINING_RECORD, model_card, training_record
from cllm.training.checkpoint import check_out_folder, save_pretrained_atomic
from cllm.training.config import TrainConfig
from cllm.training.report import JobHooks, FitReport
from cllm.training.rounds import fit_rounds


def train_cllm(model_name: str, data_dir: str | Path, out: str | Path, config: TrainConfig,
               hooks: JobHooks | None = None) -> FitReport:
    """Fine-tune `model_name` into a CLLM on the dataset in `data_dir`; save it (HF format + card) to `out`."""
    out = check_out_folder(Path(out), [Path(data_dir), Path(resolve_source(model_name))], "the data or the base model folder")
    fit = fit_rounds(model_name, data_dir, config, hooks, save_to=out)
    fit.report.out = str(out)
    _save(fit.trainer, fit.model, fit.tokenizer, out, fit.report)
    return fit.report


class _AdapterOnly:
    """`save_pretrained` of a LoRA model: the adapter alone, naming the base as the user named it. Embeddings
    are never adapted, and saying so skips peft's check of the base's vocabulary (a hub call for a registry
    name)."""

    def __init__(self, model, base: str):
        self.model, self.base = model, base

    def save_pretrained(self, folder):
        name_base(self.model, self.base)
        self.model.save_pretrained(folder, save_embedding_layers=False)


class _GatheredWeights:
    """`save_pretrained` with a full state dict gathered from FSDP/DeepSpeed shards (all ranks gather)."""

    def __init__(self, model, state_dict):
        self.model, self.state_dict = model, state_dict

    def save_pretrained(self, folder):
        self.model.save_pretrained(folder, state_dict=self.state_dict)


def _save(trainer, model, tokenizer, out: Path, report: FitReport) -> None:
    to_save = _AdapterOnly(model, report.base_model) if hasattr(model, "peft_config") else model
    if trainer is not None and trainer.args.world_size > 1:  # None: rounds ended before another round's Trainer
        to_save = _GatheredWeights(trainer.accelerator.unwrap_model(trainer.model),
                                   trainer.accelerator.get_state_dict(trainer.model))
        if not trainer.accelerator.is_main_process:
            return
    try:
        save_pretrained_atomic(to_save, tokenizer, out, model_card(report), {TRAINING_RECORD: training_record(report)})
    except OSError as e:
        raise OSError(f"could not save the model to {out} ({e.strerror or e}); nothing was written there, "
                      "an older folder at that path is intact") from None
