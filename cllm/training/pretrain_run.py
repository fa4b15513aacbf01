"""`python -m cllm pretrain`: train, measure, write the model card and the prompt sets."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from cllm.training.checkpoint import save_pretrained_atomic
from cllm.jacobi import greedy_decode
from cllm.evaluate import perplexity
from cllm.options import given
from cllm.training.pretrain import PretrainConfig, check_config, model_card, run_pretrain, write_prompt_sets
from cllm.prompts import read_prompts


def config_of(args) -> PretrainConfig:
    """PretrainConfig of the CLI's arguments, checked before anything is written."""
    config = PretrainConfig(**given(args, PretrainConfig))
    check_config(config)
    return config


def pretrain_and_save(args) -> str:
    config = config_of(args)
    write_prompt_sets(config, Path(args.prompts_dir))
    result = run_pretrain(config, args.device, args.max_minutes)
    model, tokenizer = result["model"], result["tokenizer"]
    where = torch.cuda.get_device_name() if result["device"] == "cuda" else f"{os.cpu_count()} CPU cores visible"
    result["compute"] = f"{result['seconds_this_run'] / 60:.1f} min in the last run, {where}"
    ppl = perplexity(model, result["heldout_rows"].tolist())
    samples = []
    for prompt in read_prompts(Path(args.prompts_dir) / "heldout.jsonl", limit=3):
        ids = tokenizer(prompt).input_ids
        out = greedy_decode(model, ids, 64, tokenizer.eos_token_id).tokens
        samples.append((prompt, tokenizer.decode(out)))
    params = sum(p.numel() for p in model.parameters())
    model = model.float().cpu()
    save_pretrained_atomic(model, tokenizer, config.out, model_card(config, result, ppl, samples, params))
    return f"saved {config.out}: {result['steps']} steps, held-out perplexity {ppl:.2f}"
