"""LoRA adapters: how a CLLM of a large base ships small, and how it is loaded back (merged once).

A CLLM made from a 135 M base differs from it by a low-rank update per linear layer; peft's LoRA stores
just that (`adapter_model.safetensors` + `adapter_config.json`, ~20 MB at rank 16 against 540 MB of
float32 weights). Loading merges the update into the base's weights once, so decoding runs the plain
model at full speed and the decoders never see peft.
"""
from __future__ import annotations

import json
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def adapter_base(folder: str | Path) -> str:
    """The base model an adapter folder was trained on (a registry name, folder or hub id)."""
    try:
        base = json.loads((Path(folder) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}/{ADAPTER_CONFIG} cannot be read: {e}") from None
    if not isinstance(base, str) or not base:
        raise ValueError(f"{folder}/{ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    return base


def with_lora(model, rank: int, alpha: float):
    """`model` wrapped for LoRA training on every linear layer but the output head; only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def continue_lora(model, folder: str | Path, rank: int, alpha: float, base: str):
    """`model` with the adapter in `folder` loaded trainable, so training goes on from its weights (a half-
    precision shipped adapter comes back float32: peft upcasts it). Its rank and alpha must be the ones asked
    for and its base `base`: the adapter is a delta to exactly those weights."""
    from peft import PeftModel

    if not is_adapter_folder(folder):
        raise ValueError(f"--init-adapter {folder}: no {ADAPTER_CONFIG} there (a folder pack-adapter or train wrote)")
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if (config.get("r"), float(config.get("lora_alpha", 0))) != (rank, float(alpha)):
        raise ValueError(f"--init-adapter {folder} has rank {config.get('r')} and alpha {config.get('lora_alpha')}: "
                         f"give --lora-rank {config.get('r')} --lora-alpha {config.get('lora_alpha')}")
    if (trained_on := adapter_base(folder)) != base:
        raise ValueError(f"--init-adapter {folder} was trained on {trained_on}, not --model {base}")
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True)


def name_base(peft_model, base: str) -> None:
    """Record the base as the user named it (a registry name resolves on any machine; the cache path
    it was loaded from would not)."""
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base


def merge_adapter(base_model, folder: str | Path):
    """The base with the adapter in `folder` merged into its weights: a plain transformers model."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, str(folder)).merge_and_unload()
