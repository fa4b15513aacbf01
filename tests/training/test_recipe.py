"""Recipes and the flags generated from the config dataclasses: one default per setting, a recipe chosen from
the model, flags given on the command line always winning, and the long-standing command lines meaning
what they meant."""
from __future__ import annotations

import dataclasses

import pytest

from cllm.cli import build_parser
from cllm.options import as_flags, field_help, given
from cllm.training.collect import COLLECT_FLAGS, CollectConfig
from cllm.training.commands import train_config_of
from cllm.training.config import TRAIN_FLAGS, TrainConfig
from cllm.training.pretrain import PretrainConfig
from cllm.training.recipe import MINUTES_EPOCHS, RECIPES, recipe_for
from cllm.training.unlikelihood import UnlikelihoodConfig

# runs/smollm2/trialB.sh's flags, as launched before recipes existed
TRIAL_B = ("--model smollm2-135m --data D --out O --lora-rank 16 --lora-alpha 32 --lr 1e-4 --ar-text stdlib "
           "--ar-text-tokens 64 --text-weight 2 --no-context-grad --ar-scope block --ar-weight 1 --label-smoothing 0 "
           "--states-per-block 4 --batch-size 8 --max-steps 600 --eval-prompts F --eval-count 8 "
           "--eval-max-new-tokens 64 --eval-every 25 --work-dir W --save-every 25 --max-minutes 150 --json").split()


def train(*argv: str) -> TrainConfig:
    return train_config_of(build_parser().parse_args(["train", *argv]))


def test_every_config_field_has_its_help_from_its_comment():
    for cls in (TrainConfig, CollectConfig, PretrainConfig, UnlikelihoodConfig):
        helps = field_help(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not helps.get(f.name)]
        assert missing == [], cls.__name__
    assert field_help(TrainConfig)["lr"] == "peak learning rate (the paper's, for 7B models)"


def test_the_recipe_follows_the_model_and_flags_win():
    assert recipe_for("tiny-python").name == recipe_for("assets/models/tiny-python").name == "tiny"
    assert recipe_for("smollm2-135m").name == "smollm2" and recipe_for("org/some-7b").name == "paper-7b"
    assert recipe_for("tiny-python", "paper-7b").name == "paper-7b"
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        recipe_for("tiny-python", "nope")
    tiny = train("--data", "D", "--out", "O")  # --model defaults to the bundled base
    assert (tiny.lr, tiny.rounds, tiny.max_minutes, tiny.epochs) == (1e-3, 3, 3.0, MINUTES_EPOCHS)
    assert train("--data", "D", "--out", "O", "--lr", "5e-4").lr == 5e-4
    steps = train("--data", "D", "--out", "O", "--max-steps", "90")  # a budget given: the recipe's goes whole
    assert (steps.max_steps, steps.max_minutes, steps.scheduler, steps.epochs) == (90, None, "cosine", 1.0)
    paper = train("--model", "org/some-7b", "--data", "D", "--out", "O")
    assert paper == TrainConfig()


def test_a_long_standing_command_line_means_what_it_meant():
    config = train(*TRIAL_B)
    expected = TrainConfig(lora_rank=16, lora_alpha=32.0, lr=1e-4, ar_text="stdlib", ar_text_tokens=64,
                           text_weight=2.0, context_grad=False, ar_scope="block", ar_weight=1.0, label_smoothing=0.0,
                           states_per_block=4, batch_size=8, max_steps=600, eval_file="F", eval_prompts=8,
                           eval_max_new_tokens=64, eval_every=25, work_dir="W", save_every=25, max_minutes=150.0)
    assert config == expected
    # the round-1 script gives no --ar-text: the smollm2 recipe must not add one
    assert train("--model", "smollm2-135m", "--data", "D", "--out", "O", "--max-steps", "600").ar_text is None
    assert build_parser().parse_args(["train", *TRIAL_B, "--block-size", "16"]).n == 16


def test_collect_flags_come_from_collect_config():
    args = build_parser().parse_args(["collect", "--out", "D", "--block-size", "8", "--no-clean", "--clean-period", "4"])
    config = recipe_for(args.model, args.recipe).collect_config(given(args, CollectConfig))
    assert (config.n, config.clean, config.repeat_period, config.limit, config.max_new_tokens) == (8, False, 4, 200, 64)
    other = build_parser().parse_args(["collect", "--model", "org/x", "--out", "D"])
    assert recipe_for(other.model).collect_config(given(other, CollectConfig)) == CollectConfig()


def test_a_recipe_spelled_out_as_flags_is_the_recipe():
    """`as_flags` writes a recipe as the flags that set it (train --help shows them): given with the paper's
    defaults underneath, they make the same configs."""
    tiny = RECIPES["tiny"]
    words = as_flags(tiny.train | tiny.budget, TRAIN_FLAGS)
    assert "--eval-count" in words and "--no-context-grad" in as_flags(RECIPES["smollm2"].train, TRAIN_FLAGS)
    assert train("--recipe", "paper-7b", "--data", "D", "--out", "O", *words) == tiny.train_config()
    collect = build_parser().parse_args(["collect", "--recipe", "paper-7b", "--out", "D",
                                         *as_flags(tiny.collect, COLLECT_FLAGS)])
    assert RECIPES["paper-7b"].collect_config(given(collect, CollectConfig)) == tiny.collect_config()


def test_help_lists_the_recipes(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {name}: " in out for name in RECIPES) and "(default 2e-05)" in out
    assert "= --limit 200 --max-new-tokens 64 --ar-weight 1 --lr 0.001" in out


def test_anything_a_recipe_sets_can_be_undone_on_the_command_line():
    """Every bool has --x and --no-x, `none` takes an optional field back to None, and a flag equal to the
    dataclass default still overrides the recipe."""
    smol = ["--model", "smollm2-135m", "--data", "D", "--out", "O"]
    assert train(*smol).context_grad is False  # the recipe's
    undone = train(*smol, "--context-grad", "--ar-scope", "sequence")
    assert (undone.context_grad, undone.ar_scope) == (True, "sequence")
    assert train("--data", "D", "--out", "O").ar_text == "stdlib"  # the tiny recipe's
    assert train("--data", "D", "--out", "O", "--ar-text", "none").ar_text is None
    assert train("--data", "D", "--out", "O", "--ar-text", "NONE").ar_text is None
    assert train("--data", "D", "--out", "O", "--lr", str(TrainConfig.lr)).lr == TrainConfig.lr  # 2e-5, not tiny's
    with pytest.raises(SystemExit):
        train("--data", "D", "--out", "O", "--max-steps", "many")  # still a number, or none
    flags = as_flags({"context_grad": True, "clean": False, "ar_text": None}, TRAIN_FLAGS)
    assert flags == ["--context-grad", "--no-clean", "--ar-text", "none"]


def test_minutes_alone_keep_a_minutes_recipes_schedule():
    five = train("--data", "D", "--out", "O", "--max-minutes", "5")
    assert (five.max_minutes, five.epochs, five.scheduler) == (5.0, MINUTES_EPOCHS, "constant_with_warmup")
    both = train("--data", "D", "--out", "O", "--max-minutes", "5", "--max-steps", "40")
    assert (both.epochs, both.scheduler) == (1.0, "cosine")  # a budget in steps too: the config's schedule


def test_a_hub_id_finds_its_registry_recipe():
    assert recipe_for("HuggingFaceTB/SmolLM2-135M-Instruct").name == "smollm2"
    assert recipe_for("Tiny-Python").name == "tiny"


def test_train_dtype_is_a_checked_flag():
    """--dtype float32 on a GPU keeps the base's exact weights and no bf16 autocast (auto: bf16 on CUDA)."""
    assert train("--data", "D", "--out", "O").dtype == "auto"
    assert train("--model", "smollm2-135m", "--data", "D", "--out", "O", "--dtype", "float32").dtype == "float32"
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16; got 'fp8'"):
        TrainConfig(dtype="fp8")


def script_command(name: str) -> list[str]:
    """The `python -m cllm ...` arguments of a recipe script, its ${VAR:-default}s at their defaults."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "assets/recipes/smollm2" / name).read_text()
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#")) + "\n"
    command = re.search(r"python -m cllm (.*?)(?<!\\)\n", code, re.S).group(1).replace("\\\n", " ")
    return shlex.split(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command))


def test_the_recipe_scripts_parse_and_trial_d_continues_trial_c():
    c, d = (script_command(f"train{t}.sh") for t in "CD")
    assert c[0] == d[0] == "train"
    trial_c, trial_d = (train_config_of(build_parser().parse_args(argv)) for argv in (c, d))
    assert trial_d.init_adapter == "assets/models/smollm2-135m-cllm" and trial_c.init_adapter is None
    assert dataclasses.replace(trial_d, init_adapter=None, work_dir=trial_c.work_dir) == trial_c  # else the same
    assert build_parser().parse_args(script_command("collect.sh"))  # the collection the two train on
