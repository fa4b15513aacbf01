"""The Train tab's recipe: its defaults, and the collection/training configs its inputs become.

The defaults aim at the project's target (held-out TPF >= 2.0 within 5 minutes of clicking Collect, on 2
CPU cores from the bundled base). `cli_commands` writes the same run as `python -m cllm collect` + `train`
lines, so a measurement of one holds for the other (tests/test_train_tab.py parses them with the CLI).

A budget in minutes cannot tell the scheduler how many steps there will be, so a minutes budget uses a
constant learning rate after `warmup_steps` (a cosine schedule over an unknown length would either never
warm up or decay too early); a steps budget uses the CLI's default cosine schedule with 3 % warm-up.
"""
from __future__ import annotations

from dataclasses import dataclass

from cllm.collect import CollectConfig
from cllm.training import TrainConfig

BUDGETS = ("minutes", "steps")
MINUTES_EPOCHS = 10_000.0  # with a minutes budget the clock ends training, never the epoch count


@dataclass(frozen=True)
class Recipe:
    prompts: int = 200  # training prompts collected (~40 s on 2 busy CPU cores at 64 tokens each)
    n: int = 16  # block size: the bundled pair's
    max_new_tokens: int = 64  # tokens per prompt, in collection and in the held-out TPF measurements
    loss: str = "global"  # global consistency loss (state -> fixed point), the paper's better one
    ar_weight: float = 10.0  # the paper's w
    lr: float = 1e-3  # ~100x the paper's 2e-5 for 7B: a ~4M-parameter model (README, "Making a CLLM")
    budget: str = "minutes"
    minutes: float = 3.0  # leaves ~1.5 of the 5 minutes for collection and the held-out measurements
    steps: int = 300  # the default when the budget is counted in steps instead
    eval_every: int = 25  # steps between held-out TPF points (a curve of ~10 points in 3 minutes on CPU)
    eval_prompts: int = 8  # held-out prompts per TPF point (each point costs one batched decode of them)
    warmup_steps: int = 10  # warm-up of the constant learning rate of a minutes budget


DEFAULT_RECIPE = Recipe()


def collect_config(n: int, max_new_tokens: int) -> CollectConfig:
    """Collection as the CLI does it by default, at this block size and length."""
    return CollectConfig(n=n, max_new_tokens=max_new_tokens)


def train_config(loss: str, ar_weight: float, lr: float, budget: str, amount: float, eval_every: int,
                 eval_max_new_tokens: int, recipe: Recipe = DEFAULT_RECIPE) -> TrainConfig:
    """TrainConfig of the tab's inputs: `amount` minutes or steps, per `budget`."""
    if budget not in BUDGETS:
        raise ValueError(f"the budget must be counted in {' or '.join(BUDGETS)}; got {str(budget)[:20]!r}")
    common = dict(loss=loss, ar_weight=ar_weight, lr=lr, eval_every=eval_every, eval_prompts=recipe.eval_prompts,
                  eval_max_new_tokens=eval_max_new_tokens)
    if budget == "minutes":
        return TrainConfig(max_minutes=amount, epochs=MINUTES_EPOCHS, scheduler="constant_with_warmup",
                           warmup=recipe.warmup_steps, **common)
    return TrainConfig(max_steps=int(amount), **common)


def cli_commands(recipe: Recipe = DEFAULT_RECIPE, model: str = "tiny-python") -> list[list[str]]:
    """The tab's default run (shipped training prompts) as CLI argument lists for `python -m cllm`."""
    collect = ["collect", "--model", model, "--prompts", "assets/prompts/train.jsonl", "--limit", str(recipe.prompts),
               "--n", str(recipe.n), "--max-new-tokens", str(recipe.max_new_tokens), "--out", "data/"]
    train = ["train", "--model", model, "--data", "data/", "--out", "my-cllm", "--loss", recipe.loss,
             "--ar-weight", f"{recipe.ar_weight:g}", "--lr", f"{recipe.lr:g}", "--eval-every", str(recipe.eval_every),
             "--eval-count", str(recipe.eval_prompts), "--eval-max-new-tokens", str(recipe.max_new_tokens)]
    if recipe.budget == "minutes":
        train += ["--max-minutes", f"{recipe.minutes:g}", "--epochs", f"{MINUTES_EPOCHS:g}",
                  "--scheduler", "constant_with_warmup", "--warmup", str(recipe.warmup_steps)]
    else:
        train += ["--max-steps", str(recipe.steps)]
    return [collect, train]
