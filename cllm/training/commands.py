"""The training wing's commands: python -m cllm {collect,train,pretrain,unlikelihood,code-prompts}.

Their config flags are generated from the config dataclasses (cllm.options): a flag's name, type, default
and help live on the field. `collect` and `train` start from a recipe (cllm.training.recipe) chosen from
--model unless --recipe names one; what the command line gives wins."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from cllm.models import DEFAULT_BASE, DTYPES, load_model
from cllm.options import add_config_arguments, given
from cllm.prompts import TRAIN_PROMPTS
from cllm.training.collect import COLLECT_FLAGS, CollectConfig
from cllm.training.config import TRAIN_FLAGS, TrainConfig
from cllm.training.pretrain import PRETRAIN_FLAGS, PretrainConfig
from cllm.training.recipe import RECIPES, recipe_for, recipes_help
from cllm.training.unlikelihood import UNLIKELIHOOD_FLAGS, UnlikelihoodConfig

RECIPE_HELP = "named settings (see below); default: the one for --model"


def add_training_commands(sub) -> None:
    """The wing's subcommands, added to the CLI's subparsers."""
    _collect_parser(sub)
    _train_parser(sub)
    _pretrain_parser(sub)
    _unlikelihood_parser(sub)
    _code_prompts_parser(sub)


def _collect_parser(sub) -> None:
    col = sub.add_parser("collect", help="record Jacobi trajectories over a prompt set (CLLM training data)",
                         epilog=recipes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    col.add_argument("--model", default=DEFAULT_BASE, help="the target model: registry name, folder or hub id")
    col.add_argument("--prompts", default=str(TRAIN_PROMPTS), help="JSONL with a \"prompt\" field "
                     "(default: the shipped training prompts)")
    col.add_argument("--out", required=True, help="dataset folder; a rerun resumes it")
    col.add_argument("--recipe", choices=list(RECIPES), default=None, help=RECIPE_HELP)
    add_config_arguments(col, CollectConfig, COLLECT_FLAGS)
    col.add_argument("--device", default="auto")
    col.add_argument("--dtype", choices=DTYPES, default="auto", help="weights' dtype (auto: bfloat16 on CUDA, "
                     "float32 on CPU); the data's fixed points are greedy in this dtype")
    col.add_argument("--json", action="store_true", help="print the dataset's meta as JSON")


def _train_parser(sub) -> None:
    tr = sub.add_parser("train", help="fine-tune a model into a CLLM on collected data (transformers.Trainer)",
                        epilog=recipes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--model", default=DEFAULT_BASE, help="model to train (normally the data's target model)")
    tr.add_argument("--data", required=True, help="dataset folder written by collect")
    tr.add_argument("--out", required=True, help="where the trained model (HF format + model card) goes")
    tr.add_argument("--recipe", choices=list(RECIPES), default=None, help=RECIPE_HELP)
    add_config_arguments(tr, TrainConfig, TRAIN_FLAGS)
    tr.add_argument("--json", action="store_true", help="print the result (before/after, history) as JSON")


def _pretrain_parser(sub) -> None:
    pre = sub.add_parser("pretrain", help="train the bundled base model (tokenizer + small Llama) from scratch")
    add_config_arguments(pre, PretrainConfig, PRETRAIN_FLAGS)
    pre.add_argument("--max-minutes", type=float, default=None, help="stop cleanly after this wall-clock budget")
    pre.add_argument("--device", default="auto")
    pre.add_argument("--prompts-dir", default="assets/prompts", help="where held-out/train prompt sets are written")


def _unlikelihood_parser(sub) -> None:
    ul = sub.add_parser("unlikelihood", help="fine-tune a base model against greedy looping (unlikelihood training)")
    ul.add_argument("--model", default=DEFAULT_BASE)
    ul.add_argument("--out", required=True, help="where the fine-tuned model (HF format + model card) goes")
    add_config_arguments(ul, UnlikelihoodConfig, UNLIKELIHOOD_FLAGS)
    ul.add_argument("--text", default="stdlib", help="real text for the MLE steps: stdlib or a UTF-8 file")
    ul.add_argument("--prompts", default="assets/prompts/train.jsonl", help="prompts whose continuations are checked")
    ul.add_argument("--heldout", default="assets/prompts/heldout.jsonl", help="prompts measured before and after")
    ul.add_argument("--device", default="auto")


def _code_prompts_parser(sub) -> None:
    from cllm.training.code_prompts import CodePromptConfig

    cp = sub.add_parser("code-prompts", help="draw HumanEval-shaped code prompts from installed Python source "
                                             "(never HumanEval's own functions)")
    cp.add_argument("--out", required=True, help="training prompts (JSONL)")
    cp.add_argument("--heldout-out", default=None, help="also write the next --heldout prompts here (JSONL)")
    cp.add_argument("--heldout", type=int, default=64, help="prompts kept apart for measuring TPF in training")
    cp.add_argument("--root", action="append", default=None,
                    help="folder of .py files to draw from (repeatable; default: stdlib and site-packages)")
    defaults = CodePromptConfig()
    cp.add_argument("--count", type=int, default=defaults.count, help="training prompts to write")
    cp.add_argument("--max-per-package", type=int, default=defaults.max_per_package)

    pk = sub.add_parser("pack-adapter", help="a trained LoRA folder made fit to ship: half-precision weights, "
                                             "config, model card and training record")
    pk.add_argument("src", help="the folder `train --lora-rank` wrote")
    pk.add_argument("out", help="where the packed adapter goes (e.g. assets/models/NAME)")
    pk.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))


def print_json_line(obj) -> None:
    """The report as one JSON line on stdout, from the main process only: under torchrun every rank has a report,
    and two ranks' lines could interleave (a pipe keeps only writes of up to 4 KiB whole; a training report with
    its history is longer)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    sys.stdout.flush()
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def cmd_collect(args) -> None:
    from cllm.prompts import read_prompts
    from cllm.training.collect import collect
    from cllm.training.report import JobHooks

    config = recipe_for(args.model, args.recipe).collect_config(given(args, CollectConfig))
    read_prompts(args.prompts, 1)  # a missing or bad file fails before the model loads
    loaded = load_model(args.model, args.device, dtype=args.dtype)
    meta = collect(loaded, args.prompts, args.out, config, JobHooks(progress=sys.stderr.isatty()))
    if args.json:
        print_json_line(meta)
        return
    c, run = meta["counts"], meta["this_run"]
    print(f"{args.out}: {c['prompts']} prompts, {c['blocks']} blocks, {c['states']} states + "
          f"{c['augmented_states']} augmented, {c['dropped_blocks']} blocks dropped by cleaning, "
          f"{c['skipped_prompts']} prompts skipped; this run: {run['prompts']} prompts, {run['tokens']} tokens "
          f"in {run['seconds']:.1f} s ({run['tokens_per_s']:.1f} tokens/s)")


def train_config_of(args) -> TrainConfig:
    """The recipe's TrainConfig with the flags given on the command line."""
    return recipe_for(args.model, args.recipe).train_config(given(args, TrainConfig))


def cmd_train(args) -> None:
    from cllm.training.report import JobHooks
    from cllm.training.train import train_cllm

    report = train_cllm(args.model, args.data, args.out, train_config_of(args),
                        JobHooks(on_metrics=_print_eval, progress=sys.stderr.isatty()))
    if args.json:
        print_json_line(report.as_json())
        return
    b, a = report.before, report.after or {}
    print(f"saved {report.out}: {report.steps} steps in {report.seconds / 60:.1f} min ({report.stopped_by}); "
          f"TPF {b['tpf']:.3f} -> {a.get('tpf', float('nan')):.3f}; held-out perplexity {b['perplexity']:.3f} -> "
          f"{a.get('perplexity', float('nan')):.3f}; distinct 4-grams {b['distinct_4grams']:.2f} -> "
          f"{a.get('distinct_4grams', float('nan')):.2f}; Jacobi == AR on {a.get('matches_ar', float('nan')):.0%} of prompts")


def _print_eval(metrics: dict) -> None:
    if "tpf" in metrics:  # the held-out measurements, every --eval-every steps
        where = f"round {metrics['round']}  " if "round" in metrics else ""
        print(f"{where}step {metrics['step']}  {metrics['seconds']:.0f} s  loss {metrics.get('loss', 0):.4f}  "
              f"consistency {metrics.get('consistency', 0):.4f}  ar {metrics.get('ar', 0):.4f}  "
              + (f"text ar {metrics['text_ar']:.4f}  " if "text_ar" in metrics else "") +
              f"tpf {metrics['tpf']:.3f}  held-out perplexity {metrics['perplexity']:.2f}  "
              f"distinct 4-grams {metrics['distinct_4grams']:.2f}", file=sys.stderr)


def cmd_pretrain(args) -> None:
    from cllm.training.pretrain_run import pretrain_and_save

    if getattr(args, "max_steps", 1) < 1 or (args.max_minutes is not None and not 0 < args.max_minutes < math.inf):
        raise ValueError("--max-steps and --max-minutes must be positive (and finite)")
    print(pretrain_and_save(args))


def cmd_unlikelihood(args) -> None:
    from cllm.training.unlikelihood_run import unlikelihood_and_save

    print(unlikelihood_and_save(args))


def cmd_code_prompts(args) -> None:
    from dataclasses import replace

    from cllm.prompts import write_prompt_records
    from cllm.training.code_prompts import CodePromptConfig, default_roots, draw_code_prompts

    if args.count < 1 or args.heldout < 0 or args.max_per_package < 1:
        raise ValueError("--count and --max-per-package must be at least 1, --heldout at least 0")
    roots = [Path(r) for r in args.root] if args.root else default_roots()
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise ValueError(f"--root {missing[0]} is not a folder")
    config = replace(CodePromptConfig(), count=args.count + (args.heldout if args.heldout_out else 0),
                     max_per_package=args.max_per_package)
    drawn = draw_code_prompts(roots, config)
    if len(drawn) <= (args.heldout if args.heldout_out else 0):  # nothing to train on: keep any old files whole
        raise ValueError(f"only {len(drawn)} prompts found under {', '.join(map(str, roots))}; nothing was written")
    train, held = (drawn[args.heldout:], drawn[:args.heldout]) if args.heldout_out else (drawn, [])
    write_prompt_records(Path(args.out), [{"prompt": p.prompt, "source": p.source} for p in train])
    if args.heldout_out:
        write_prompt_records(Path(args.heldout_out), [{"prompt": p.prompt, "source": p.source} for p in held])
    print(f"{args.out}: {len(train)} prompts" + (f"; {args.heldout_out}: {len(held)} held out" if held else ""))


def cmd_pack_adapter(args) -> None:
    from cllm.training.pack import pack_adapter

    r = pack_adapter(args.src, args.out, args.dtype)
    print(f"{r.out}: {r.tensors} tensors, {r.parameters / 1e6:.2f} M parameters, {r.bytes / 2**20:.1f} MiB ({args.dtype})")


TRAINING_COMMANDS = {"collect": cmd_collect, "train": cmd_train, "pretrain": cmd_pretrain,
                     "unlikelihood": cmd_unlikelihood, "code-prompts": cmd_code_prompts,
                     "pack-adapter": cmd_pack_adapter}
