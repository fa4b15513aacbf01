"""The trained model's card (README.md) and its training record (cllm_training.json, a small JSON file
beside the weights: what the app's pair picker and a script read back), both from its FitReport."""
from __future__ import annotations

import json
import math

from pathlib import Path

from cllm.files import finite_or_none
from cllm.models import REPO_ROOT
from cllm.training.report import FitReport, RoundReport

TRAINING_RECORD = "cllm_training.json"  # beside config.json in every CLLM folder this project writes
RECORD_SCHEMA = "cllm-training"


def model_card(r: FitReport) -> str:
    """README.md of the trained CLLM; `r` is what train_cllm measured and used."""
    b, data, cfg = r.before, r.data_meta, r.config
    c = data["counts"]
    text_term = (f" + {cfg['text_weight']} x AR on real text ({cfg['ar_text']}, rows of {cfg['ar_text_tokens']} tokens)"
                 if cfg.get("ar_text") else "")
    a = r.after or dict.fromkeys(("tpf", "perplexity", "distinct_4grams", "matches_ar"), math.nan)  # multi-process
    change = 100 * (a["perplexity"] / b["perplexity"] - 1)
    note = "" if r.after else "\n\"after\" was not measured in this multi-process run: use `python -m cllm bench`.\n"
    return f"""---
library_name: transformers
pipeline_tag: text-generation
base_model: {r.base_model}
tags: [cllm, jacobi-decoding, consistency-llm]
---
# Consistency LLM of `{r.base_model}`

Fine-tuned by {r.made_by or '`python -m cllm train`'} (CLLM Explorer) so that Jacobi decoding with blocks of n = {data['n']}
reaches the fixed point in fewer iterations (Kou et al., "CLLMs: Consistency Large Language Models",
ICML 2024, arXiv 2403.00835). Greedy output is unchanged by Jacobi decoding itself; what training changes is
measured below.

| | before | after |
| --- | --- | --- |
| Jacobi tokens per forward pass (n = {data['n']}, {r.eval_prompt_count} held-out prompts, {r.eval_max_new_tokens} new tokens) | {b['tpf']:.3f} | {a['tpf']:.3f} |
| held-out perplexity ({r.perplexity_text}) | {b['perplexity']:.3f} | {a['perplexity']:.3f} ({change:+.1f} %) |
| distinct 4-grams per output (falls if the model loops) | {b['distinct_4grams']:.2f} | {a['distinct_4grams']:.2f} |
| Jacobi output == own greedy AR on those prompts | | {a['matches_ar']:.0%} |
{note}

- Data: `{r.data_dir}`, collected from `{data['model']}` on `{_in_repo(data['prompts_file'])}`: {c['prompts']} prompts, {c['blocks']} blocks, {c['states']} states + {c['augmented_states']} augmented, max_new_tokens {data['max_new_tokens']}, cleaning {'on' if data['clean'] else 'off'}, augmentation {'on' if data['augment'] else 'off'}.
- Loss: {cfg['loss']} consistency (forward KL to the stop-gradient target) + {cfg['ar_weight']} x AR ({cfg['ar_scope']}, label smoothing {cfg['label_smoothing']}){text_term}.
{_rounds_line(r.rounds)}- Training: {r.steps} steps of batch {cfg['batch_size']} x {cfg['grad_accum']}, lr {cfg['lr']} ({cfg['scheduler']}), {r.seconds / 60:.1f} min on {r.device}{_collections_note(r)}; stopped by: {r.stopped_by}.
- Full configuration: `{json.dumps(cfg)}`
"""


def _in_repo(path: str) -> str:
    """A path inside the repository as the repository names it: a card must not carry the trainer's machine."""
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else path


def _rounds_line(rounds: list[RoundReport]) -> str:
    """The card's line on training rounds (cllm.training.rounds), or nothing for a single round."""
    if len(rounds) < 2:
        return ""
    parts = [f"round {x.round}: {x.prompts} prompts, {x.steps} steps, TPF after {x.after['tpf']:.2f}"
             if x.after else f"round {x.round}: {x.steps} steps" for x in rounds]
    return (f"- Rounds: {len(rounds)}; each after the first collected its data again from the weights as "
            f"trained so far, on the next prompts of that file ({'; '.join(parts)}).\n")


def _collections_note(r: FitReport) -> str:
    return " (the later rounds' collections included)" if len(r.rounds) > 1 else ""


def training_record(r: FitReport) -> str:
    """JSON of what a trained CLLM is: its base model and block size n (a model pair to race), and the
    figures of its card. No history, no paths of temporary data."""
    data, cfg = r.data_meta, r.config
    record = {"schema": RECORD_SCHEMA, "version": 1, "base_model": r.base_model, "n": data["n"],
              "steps": r.steps, "seconds": r.seconds, "stopped_by": r.stopped_by,
              "before": r.before, "after": r.after, "loss": cfg["loss"], "ar_weight": cfg["ar_weight"],
              "lr": cfg["lr"], "rounds": len(r.rounds) or 1,
              "prompts": sum(x.prompts for x in r.rounds) or data["counts"]["prompts"],
              "max_new_tokens": data["max_new_tokens"]}
    return json.dumps(finite_or_none(record), indent=1, allow_nan=False)

