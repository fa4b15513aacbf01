"""What CLLM training is judged by: Jacobi TPF on held-out prompts, held-out perplexity, and whether the
model's Jacobi output still equals its own greedy AR. Also the trained model's card and its training record
(a small JSON file saved beside the weights: what the app's pair picker and a script read back)."""
from __future__ import annotations

import json
import math

from cllm.files import finite_or_none
from cllm.jacobi import JacobiConfig, greedy_decode
from cllm.jacobi_batch import jacobi_decode_batch
from cllm.stats import tokens_per_forward

TRAINING_RECORD = "cllm_training.json"  # beside config.json in every CLLM folder this project writes
RECORD_SCHEMA = "cllm-training"


def jacobi_tpf(model, prompts: list[list[int]], config: JacobiConfig, eos_token_id: int | None,
               batch_size: int = 8) -> tuple[float, list[list[int]]]:
    """Mean tokens per forward pass of Jacobi decoding over the prompts (all tokens / all passes), and the
    outputs. Batched decoding gives each prompt exactly its unbatched passes, so this is the bs = 1 TPF."""
    trajs = [t for i in range(0, len(prompts), batch_size)
             for t in jacobi_decode_batch(model, prompts[i: i + batch_size], config, eos_token_id)]
    tokens, passes = sum(len(t.tokens) for t in trajs), sum(t.forward_passes for t in trajs)
    return tokens_per_forward(tokens, passes), [t.tokens for t in trajs]


def distinct_ngrams(outputs: list[list[int]], n: int = 4) -> float:
    """Mean share of distinct n-grams per output: falls toward 0 as outputs loop. TPF alone cannot tell a
    CLLM that skips ahead from a model that collapsed into repeating itself (both converge fast)."""
    shares = [len({tuple(o[i: i + n]) for i in range(len(o) - n + 1)}) / (len(o) - n + 1) for o in outputs if len(o) >= n]
    return sum(shares) / len(shares) if shares else 1.0


def ar_agreement(model, prompts: list[list[int]], outputs: list[list[int]], max_new_tokens: int,
                 eos_token_id: int | None) -> float:
    """Share of prompts whose Jacobi output equals greedy AR of the same model."""
    same = sum(greedy_decode(model, p, max_new_tokens, eos_token_id).tokens == out for p, out in zip(prompts, outputs))
    return same / len(prompts) if prompts else 1.0


def model_card(info: dict) -> str:
    """README.md of the trained CLLM; `info` is what train_cllm measured and used."""
    b, data, cfg = info["before"], info["data_meta"], info["config"]
    c = data["counts"]
    text_term = (f" + {cfg['text_weight']} x AR on real text ({cfg['ar_text']}, rows of {cfg['ar_text_tokens']} tokens)"
                 if cfg.get("ar_text") else "")
    a = info["after"] or dict.fromkeys(("tpf", "perplexity", "distinct_4grams", "matches_ar"), math.nan)  # multi-process
    change = 100 * (a["perplexity"] / b["perplexity"] - 1)
    note = "" if info["after"] else "\n\"after\" was not measured in this multi-process run: use `python -m cllm bench`.\n"
    return f"""---
library_name: transformers
pipeline_tag: text-generation
base_model: {info['base_model']}
tags: [cllm, jacobi-decoding, consistency-llm]
---
# Consistency LLM of `{info['base_model']}`

Fine-tuned by {info.get('made_by', '`python -m cllm train`')} (CLLM Explorer) so that Jacobi decoding with blocks of n = {data['n']}
reaches the fixed point in fewer iterations (Kou et al., "CLLMs: Consistency Large Language Models",
ICML 2024, arXiv 2403.00835). Greedy output is unchanged by Jacobi decoding itself; what training changes is
measured below.

| | before | after |
| --- | --- | --- |
| Jacobi tokens per forward pass (n = {data['n']}, {info['eval_prompt_count']} held-out prompts, {info['eval_max_new_tokens']} new tokens) | {b['tpf']:.3f} | {a['tpf']:.3f} |
| held-out perplexity ({info['perplexity_text']}) | {b['perplexity']:.3f} | {a['perplexity']:.3f} ({change:+.1f} %) |
| distinct 4-grams per output (falls if the model loops) | {b['distinct_4grams']:.2f} | {a['distinct_4grams']:.2f} |
| Jacobi output == own greedy AR on those prompts | | {a['matches_ar']:.0%} |
{note}

- Data: `{info['data_dir']}`, collected from `{data['model']}` on `{data['prompts_file']}`: {c['prompts']} prompts, {c['blocks']} blocks, {c['states']} states + {c['augmented_states']} augmented, max_new_tokens {data['max_new_tokens']}, cleaning {'on' if data['clean'] else 'off'}, augmentation {'on' if data['augment'] else 'off'}.
- Loss: {cfg['loss']} consistency (forward KL to the stop-gradient target) + {cfg['ar_weight']} x AR ({cfg['ar_scope']}, label smoothing {cfg['label_smoothing']}){text_term}.
{_rounds_line(info.get("rounds", []))}- Training: {info['steps']} steps of batch {cfg['batch_size']} x {cfg['grad_accum']}, lr {cfg['lr']} ({cfg['scheduler']}), {info['seconds'] / 60:.1f} min on {info['device']}{_collections_note(info)}; stopped by: {info['stopped_by']}.
- Full configuration: `{json.dumps(cfg)}`
"""


def _rounds_line(rounds: list[dict]) -> str:
    """The card's line on training rounds (cllm.training.rounds), or nothing for a single round."""
    if len(rounds) < 2:
        return ""
    parts = [f"round {r['round']}: {r['prompts']} prompts, {r['steps']} steps, TPF after {r['after']['tpf']:.2f}"
             if r["after"] else f"round {r['round']}: {r['steps']} steps" for r in rounds]
    return (f"- Rounds: {len(rounds)}; each after the first collected its data again from the weights as "
            f"trained so far, on the next prompts of that file ({'; '.join(parts)}).\n")


def _collections_note(info: dict) -> str:
    return " (the later rounds' collections included)" if len(info.get("rounds", [])) > 1 else ""


def training_record(info: dict) -> str:
    """JSON of what a trained CLLM is: its base model and block size n (a model pair to race), and the
    figures of its card. No history, no paths of temporary data."""
    data, cfg = info["data_meta"], info["config"]
    record = {"schema": RECORD_SCHEMA, "version": 1, "base_model": info["base_model"], "n": data["n"],
              "steps": info["steps"], "seconds": info["seconds"], "stopped_by": info["stopped_by"],
              "before": info["before"], "after": info["after"], "loss": cfg["loss"], "ar_weight": cfg["ar_weight"],
              "lr": cfg["lr"], "rounds": len(info.get("rounds", [])) or 1,
              "prompts": sum(r["prompts"] for r in info.get("rounds", [])) or data["counts"]["prompts"],
              "max_new_tokens": data["max_new_tokens"]}
    return json.dumps(finite_or_none(record), indent=1, allow_nan=False)

