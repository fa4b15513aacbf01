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

from cllm.training.collect import CollectConfig
from cllm.training.config import TrainConfig

BUDGETS = ("minutes", "steps")
MINUTES_EPOCHS = 10_000.0  # with a minutes budget the clock ends training, never the epoch count


@dataclass(frozen=True)
class Recipe:
    # Measured on 2 CPU cores from the bundled base (README, "Making a CLLM"): about 4 min 20 s from Collect
    # to the trained model; held-out TPF (all 64 prompts) 1.05 -> 2.25-3.00 in three runs with the server
    # alone on the cores, 1.72-2.80 in three with Chromium sharing them. One round on the base's
    # trajectories (the previous defaults: 600 prompts, lr 2e-3) reached 1.25 on 8 prompts.
    prompts: int = 200  # prompts collected per round (~20 s on 2 CPU cores at 64 tokens each): about the
    # blocks a round's training draws (~115 steps x 8 blocks), so each round sees fresh states; with 300 a
    # browser run on the same 2 cores took 5 min 19 s (before the tab's redraw limit)
    rounds: int = 3  # training rounds; the 2nd and 3rd collect again from the weights trained so far
    n: int = 16  # block size: the bundled pair's
    max_new_tokens: int = 64  # tokens per prompt, in collection and in the held-out TPF measurements
    loss: str = "global"  # global consistency loss (state -> fixed point), the paper's better one
    ar_weight: float = 1.0  # AR on the model's own output: w = 10 (the paper's) let it memorize that output
    lr: float = 1e-3  # ~50x the paper's 2e-5 for 7B: a ~4M-parameter model and a 3-minute budget; in three
    # rounds 2e-3 reached a lower TPF (2.22 against 2.94) at a higher perplexity (63 against 45)
    label_smoothing: float = 0.0  # smoothing the AR targets raised perplexity on real code at no TPF gain
    states_per_block: int = 4  # four states share each block's context pass: more consistency signal per step
    ar_text: str = "stdlib"  # real code (the base's pretraining split) for a second AR term: keeps perplexity
    ar_text_tokens: int = 64  # short real-text rows: a quarter of the CLI default's cost per step
    text_weight: float = 2.0  # the real-text term counts twice: the anchor against drifting from real code
    budget: str = "minutes"
    minutes: float = 3.0  # one per round; leaves ~2 of the 5 minutes for the three collections and measurements
    steps: int = 300  # the default when the budget is counted in steps instead
    eval_every: int = 25  # steps between held-out TPF points (~5 points a round on 2 CPU cores)
    eval_prompts: int = 8  # held-out prompts per TPF point (each point costs one batched decode of them)
    warmup_steps: int = 10  # warm-up of the constant learning rate of a minutes budget


DEFAULT_RECIPE = Recipe()


def collect_config(n: int, max_new_tokens: int, limit: int | None = None) -> CollectConfig:
    """Collection as the CLI does it by default, at this block size and length, on the first `limit` prompts
    (the later rounds of training take the next ones)."""
    return CollectConfig(n=n, max_new_tokens=max_new_tokens, limit=limit)


def train_config(loss: str, ar_weight: float, lr: float, budget: str, amount: float, eval_every: int,
                 eval_max_new_tokens: int, rounds: int | None = None, recipe: Recipe = DEFAULT_RECIPE) -> TrainConfig:
    """TrainConfig of the tab's inputs: `amount` minutes or steps (split between `rounds`), per `budget`."""
    if budget not in BUDGETS:
        raise ValueError(f"the budget must be counted in {' or '.join(BUDGETS)}; got {str(budget)[:20]!r}")
    common = dict(loss=loss, ar_weight=ar_weight, lr=lr, rounds=rounds or recipe.rounds, eval_every=eval_every,
                  eval_prompts=recipe.eval_prompts,
                  eval_max_new_tokens=eval_max_new_tokens, label_smoothing=recipe.label_smoothing,
                  states_per_block=recipe.states_per_block, ar_text=recipe.ar_text,
                  ar_text_tokens=recipe.ar_text_tokens, text_weight=recipe.text_weight)
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
             "--eval-count", str(recipe.eval_prompts), "--eval-max-new-tokens", str(recipe.max_new_tokens),
             "--label-smoothing", f"{recipe.label_smoothing:g}", "--states-per-block", str(recipe.states_per_block),
             "--ar-text", recipe.ar_text, "--ar-text-tokens", str(recipe.ar_text_tokens),
             "--text-weight", f"{recipe.text_weight:g}", "--rounds", str(recipe.rounds)]
    if recipe.budget == "minutes":
        train += ["--max-minutes", f"{recipe.minutes:g}", "--epochs", f"{MINUTES_EPOCHS:g}",
                  "--scheduler", "constant_with_warmup", "--warmup", str(recipe.warmup_steps)]
    else:
        train += ["--max-steps", str(recipe.steps)]
    return [collect, train]
