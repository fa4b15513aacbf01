"""Named recipes: the collection and training settings that work for a size of model, in one place.

TrainConfig's and CollectConfig's own defaults are the paper's, for 7B models; on the bundled 4 M base they
reach held-out TPF 1.06 (nothing learnt). A recipe overrides what differs. `collect` and `train` choose one
from the model's name unless `--recipe` names one; a flag given on the command line always wins. The Train
tab starts from the `tiny` recipe, and `cli_commands` writes its run as the two commands a newcomer types.

A budget in minutes cannot tell the scheduler how many steps there will be, so a minutes budget uses a
constant learning rate after a short warm-up (a cosine schedule over an unknown length would either never
warm up or decay too early). A recipe's budget is dropped as a whole when the command line gives any of
--max-steps, --max-minutes or --epochs: then the schedule is the config's (cosine, 3 % warm-up) unless given;
but --max-minutes alone on a recipe of minutes only changes the minutes (same constant schedule).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cllm.models import DEFAULT_BASE, REGISTRY
from cllm.options import as_flags
from cllm.training.collect import COLLECT_FLAGS, CollectConfig
from cllm.training.config import BUDGET_FIELDS, TRAIN_FLAGS, TrainConfig

MINUTES_EPOCHS = 10_000.0  # with a minutes budget the clock ends training, never the epoch count
MINUTES_WARMUP = 10  # warm-up steps of a minutes budget's constant learning rate


def minutes_budget(minutes: float, warmup_steps: int = MINUTES_WARMUP) -> dict:
    """TrainConfig fields of a wall-clock budget: constant learning rate after `warmup_steps`."""
    return {"max_minutes": minutes, "epochs": MINUTES_EPOCHS, "scheduler": "constant_with_warmup",
            "warmup": warmup_steps}


@dataclass(frozen=True)
class Recipe:
    name: str
    note: str  # what it is for, and what it reached (shown by `train --help`)
    models: tuple[str, ...]  # model names (registry names, or a folder's name) it is chosen for
    collect: dict  # CollectConfig fields that differ from the dataclass's defaults
    train: dict  # TrainConfig fields that differ, but the budget
    budget: dict  # TrainConfig budget fields (see the module doc)

    def collect_config(self, given: dict | None = None) -> CollectConfig:
        return CollectConfig(**(self.collect | (given or {})))

    def train_config(self, given: dict | None = None) -> TrainConfig:
        given = given or {}
        budget = {} if any(k in given for k in BUDGET_FIELDS) else self.budget
        if "max_minutes" in self.budget and [k for k in BUDGET_FIELDS if k in given] == ["max_minutes"]:
            budget = minutes_budget(given["max_minutes"])  # other minutes: the same clock-bound schedule
        return TrainConfig(**(self.train | budget | given))


RECIPES = {r.name: r for r in (
    # Measured on 2 CPU cores from the bundled base (README, "Making a CLLM"): about 4 min 20 s for collect +
    # train; held-out TPF (all 64 prompts) 1.05 -> 2.25-3.00 with nothing else on the cores.
    Recipe("tiny", "the bundled 4 M base: 3 rounds in 3 minutes of training, ~4.5 min with collection on 2 CPU "
                   "cores of its own; held-out TPF 1.06 -> 2.2-3",
           ("tiny-python", "tiny-python-cllm"),
           # 200 prompts (~20 s at 64 tokens) is about the blocks a round's training draws (~115 steps x 8
           # blocks), so each round sees fresh states; 64 tokens: the held-out measurements' length too
           collect={"limit": 200, "max_new_tokens": 64},
           # lr ~50x the paper's for a ~4M-parameter model and a 3-minute budget (2e-3 reached a lower TPF
           # at a higher perplexity); AR weight 1 (the paper's 10 let it memorize its own output); no label
           # smoothing (it raised perplexity on real code at no TPF gain); four states share each block's
           # context pass; a real-code AR term of short rows, counted twice, anchors it to real code;
           # rounds: each collects again from the weights trained so far (one round reached TPF 1.25)
           train={"ar_weight": 1.0, "lr": 1e-3, "label_smoothing": 0.0, "states_per_block": 4, "ar_text": "stdlib",
                  "ar_text_tokens": 64, "text_weight": 2.0, "rounds": 3, "eval_every": 25, "eval_prompts": 8},
           budget=minutes_budget(3.0)),
    # What every SmolLM2-135M run so far shares (README, "A CLLM of a real model"; runs/smollm2/*.sh give
    # these flags themselves, so the recipe changes none of them): a LoRA adapter, the context run without
    # gradients. Whether to add the real-code AR term (--ar-text stdlib) and the budget are the run's own.
    Recipe("smollm2", "SmolLM2-135M: a rank-16 LoRA adapter, no gradients through the context (about 3x "
                      "cheaper steps); give the budget (--max-steps / --max-minutes)",
           ("smollm2-135m", "smollm2-135m-cllm"),
           collect={},
           train={"lora_rank": 16, "lora_alpha": 32.0, "lr": 1e-4, "context_grad": False, "ar_scope": "block",
                  "ar_weight": 1.0, "label_smoothing": 0.0, "states_per_block": 4, "eval_prompts": 8,
                  "eval_every": 25},
           budget={}),
    Recipe("paper-7b", "the paper's settings for 7B models (lr 2e-5, AR weight 10, label smoothing 0.1, one "
                       "epoch): the dataclasses' own defaults, and the choice for any model not named above",
           (), collect={}, train={}, budget={}),
)}
DEFAULT_RECIPE = RECIPES["paper-7b"]
TAB_RECIPE = RECIPES["tiny"]  # the Train tab's starting values (its base is the bundled one)


def recipe_for(model: str, name: str | None = None) -> Recipe:
    """The recipe called `name`, else the one for `model` (a registry name or a folder: its last part)."""
    if name is not None:
        if name not in RECIPES:
            raise ValueError(f"unknown recipe {name[:40]!r}: use one of {', '.join(RECIPES)}")
        return RECIPES[name]
    key = registry_name(model)
    return next((r for r in RECIPES.values() if key in r.models), DEFAULT_RECIPE)


def registry_name(model: str) -> str:
    """The registry name a model is known by: itself, the entry whose hub id it is (a Space loads
    HuggingFaceTB/SmolLM2-135M-Instruct), or a folder's last part; compared without case."""
    if not model:
        return ""
    by_source = {e.source.lower(): e.name for e in REGISTRY}
    return by_source.get(model.lower(), Path(model).name.lower())


def recipes_help() -> str:
    """`train --help`'s list of recipes."""
    def settings(r: Recipe) -> str:
        words = [*as_flags(r.collect, COLLECT_FLAGS), *as_flags(r.train | r.budget, TRAIN_FLAGS)]
        return f"\n    = {' '.join(words)}" if words else ""

    lines = [f"  {r.name}: {r.note}" + (f" (chosen for {', '.join(r.models)})" if r.models else "") + settings(r)
             for r in RECIPES.values()]
    return "recipes (--recipe NAME; default: chosen from --model; flags given override it):\n" + "\n".join(lines)


def cli_commands(model: str = DEFAULT_BASE) -> list[list[str]]:
    """The Train tab's default run (shipped training prompts) as `python -m cllm` argument lists: with the
    recipe chosen from the model, the defaults are the whole run."""
    return [["collect", "--model", model, "--out", "data/"],
            ["train", "--model", model, "--data", "data/", "--out", "my-cllm"]]
