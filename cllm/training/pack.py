"""`pack_adapter`: a trained LoRA folder made fit to ship in git: the adapter's weights in half precision,
its config, model card and training record, and nothing else (no tokenizer copy: the base's serves).

A rank-16 adapter of SmolLM2-135M is 19.5 MB in float32 and 9.8 MB in float16. Loading merges it into the
float32 base (cllm.adapters.merge_adapter), so only the low-rank update is rounded, once, and what is
shipped is what gets measured.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from cllm.adapters import ADAPTER_CONFIG, is_adapter_folder
from cllm.training.cards import TRAINING_RECORD
from cllm.training.checkpoint import check_out_folder, write_folder_atomic

ADAPTER_WEIGHTS = "adapter_model.safetensors"
PACK_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
KEPT_FILES = (ADAPTER_CONFIG, "README.md", TRAINING_RECORD)  # copied as they are, when present


@dataclass(frozen=True)
class PackReport:
    out: Path
    tensors: int
    parameters: int
    bytes: int  # of the packed weights file


def pack_adapter(src: str | Path, out: str | Path, dtype: str = "float16") -> PackReport:
    """Write `src`'s adapter to `out` (atomically) with its weights cast to `dtype`."""
    from safetensors.torch import load_file, save_file

    src = Path(src)
    if not is_adapter_folder(src) or not (src / ADAPTER_WEIGHTS).is_file():
        raise ValueError(f"{src} holds no LoRA adapter ({ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    if dtype not in PACK_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(PACK_DTYPES)}")
    if Path(out).resolve() in src.resolve().parents:
        raise ValueError(f"{out} holds the adapter being packed: give a new folder for it")
    out = check_out_folder(Path(out), [src], "the adapter being packed")  # never replaces a folder of other files
    weights = {k: v.to(PACK_DTYPES[dtype]).contiguous() for k, v in load_file(src / ADAPTER_WEIGHTS).items()}
    overflow = [k for k, v in weights.items() if not torch.isfinite(v).all()]
    if overflow:
        raise ValueError(f"{overflow[0]} does not fit in {dtype} (inf or nan after the cast): pack it as float32")

    def write(folder: Path) -> None:
        save_file(weights, folder / ADAPTER_WEIGHTS, metadata={"format": "pt"})
        for name in KEPT_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, folder / name)
    out = write_folder_atomic(out, write)
    return PackReport(out, len(weights), sum(v.numel() for v in weights.values()), (out / ADAPTER_WEIGHTS).stat().st_size)
