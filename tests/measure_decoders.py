"""Measure every decoder against greedy AR and transformers' generate (greedy; prompt lookup) on a model pair.

    OMP_NUM_THREADS=1 python tests/measure_decoders.py            # bundled pair, 64 held-out prompts, n = 16
    OMP_NUM_THREADS=1 python tests/measure_decoders.py --layout   # cost of one verify pass: 4D mask vs batch rows
    OMP_NUM_THREADS=1 python tests/measure_decoders.py --also "recycle:ratio=0.85"  # time more settings too
    python tests/measure_decoders.py --sweep "multiblock:ratio=0.5" "recycle:ngram=8,pool_size=8"  # TPF only
    python tests/measure_decoders.py --prompts assets/prompts/train.jsonl --limit 64 --sweep ...  # choose defaults

Per model and method: tokens, model calls (prefill included, as transformers' generate counts them), TPF (our
decoders: tokens per decode pass, prefill excluded, as `bench`), tokens per call, wall seconds of the whole
call (prefill included, for every method alike), speed against HF greedy, the share of time outside
model.forward, and whether the output equals our greedy AR. Methods run in turn on each prompt, so the load of
a shared machine falls on all of them alike. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cllm.bench import forward_timer  # noqa: E402
from cllm.decode import encode_prompt  # noqa: E402
from cllm.decoders import DECODERS, decode, make_config  # noqa: E402
from cllm.jacobi import CachedLM, greedy_decode  # noqa: E402
from cllm.models import load_model  # noqa: E402
from cllm.prompts import HELDOUT_PROMPTS, read_prompts  # noqa: E402

LOOKUP_TOKENS = 10  # HF prompt lookup's draft length (its docs' example; our LookupConfig's default too)


def hf_generate(model, ids: list[int], max_new: int, eos, lookup: bool) -> list[int]:
    extra = {"prompt_lookup_num_tokens": LOOKUP_TOKENS} if lookup else {}
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=eos, **extra)
    return out[0, len(ids):].tolist()


def methods(loaded, n: int, max_new: int, also: list[str]):
    model, eos = loaded.model, loaded.eos_token_id
    out = {"ar (ours)": lambda ids: (greedy_decode(model, ids, max_new, eos).tokens, None),
           "hf greedy": lambda ids: (hf_generate(model, ids, max_new, eos, False), None),
           "hf lookup": lambda ids: (hf_generate(model, ids, max_new, eos, True), None)}
    for name in DECODERS:
        config = make_config(name, n=n, max_new_tokens=max_new)
        out[name] = lambda ids, c=config: _ours(model, ids, c, eos)
    for setting in also:  # non-default settings, timed beside the defaults
        out[setting] = lambda ids, c=parse_setting(setting, n, max_new): _ours(model, ids, c, eos)
    return out


def _ours(model, ids, config, eos):
    traj = decode(model, ids, config, eos)
    return traj.tokens, traj.forward_passes


def measure(loaded, prompts: list[str], n: int, max_new: int, also: list[str]) -> list[dict]:
    runs = methods(loaded, n, max_new, also)
    totals = {k: {"tokens": 0, "calls": 0, "passes": 0, "seconds": 0.0, "forward": 0.0, "exact": 0} for k in runs}
    calls = [0]
    hook = loaded.model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    ids_all = [encode_prompt(loaded, p) for p in prompts]
    for fn in runs.values():  # warm-up, untimed
        fn(ids_all[0][:8])
    try:
        for ids in ids_all:
            reference = None
            for name, fn in runs.items():
                calls[0] = 0
                with forward_timer(loaded.model) as fwd:
                    t0 = time.perf_counter()
                    tokens, passes = fn(ids)
                    seconds = time.perf_counter() - t0
                reference = tokens if reference is None else reference
                t = totals[name]
                t["tokens"] += len(tokens); t["calls"] += calls[0]; t["seconds"] += seconds
                t["forward"] += fwd[0]; t["exact"] += tokens == reference
                t["passes"] += passes if passes is not None else calls[0] - 1
    finally:
        hook.remove()
    hf = totals["hf greedy"]["seconds"]
    return [{"model": loaded.name, "method": k, "tokens": t["tokens"], "calls": t["calls"],
             "tpf": t["tokens"] / t["passes"], "tokens_per_call": t["tokens"] / t["calls"], "seconds": t["seconds"],
             "x_hf_greedy": hf / t["seconds"], "outside_forward": 1 - t["forward"] / t["seconds"],
             "exact": t["exact"] / len(ids_all)} for k, t in totals.items()]


def layout_cost(loaded, context: int = 64, trunk: int = 16, branches: int = 4, length: int = 4, repeats: int = 30):
    """Median seconds of one verify pass: one row with a 4D mask vs 1 + G batch rows on a replicated cache."""
    from cllm.decoders.verify import tree_pass

    model, gen = loaded.model, torch.Generator().manual_seed(0)
    draw = lambda k: torch.randint(1, 4000, (k,), generator=gen).tolist()  # noqa: E731
    ctx, own, drafts = draw(context + 1), draw(trunk - 1), [draw(length) for _ in range(branches)]
    lm, times = CachedLM(model), {"plain (trunk only)": [], "4d mask, one row": [], "batch rows": []}
    with torch.inference_mode():
        lm.feed(ctx[:-1])
        for _ in range(repeats):
            for label, run in (("plain (trunk only)", lambda: tree_pass(lm, ctx, own, [])),
                               ("4d mask, one row", lambda: tree_pass(lm, ctx, own, drafts)),
                               ("batch rows", lambda: _rows_pass(lm, ctx, own, drafts))):
                t0 = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - t0)
                lm.rollback(context)
    return {k: statistics.median(v) for k, v in times.items()}


def _rows_pass(lm: CachedLM, ctx, own, drafts):
    """The alternative layout: the cache repeated for 1 + G rows (right-padded drafts), row 0 kept after."""
    rows = [[ctx[-1]] + own] + [[ctx[-1]] + d + [0] * (len(own) - len(d)) for d in drafts]
    lm.cache.batch_repeat_interleave(len(rows))
    start = lm.length
    positions = torch.arange(start, start + len(rows[0]))
    out = lm.model(input_ids=torch.tensor(rows), position_ids=positions[None].expand(len(rows), -1),
                   cache_position=positions, use_cache=True, **{lm.cache_arg: lm.cache})
    preds = out.logits.argmax(-1).tolist()
    lm.cache.batch_select_indices(torch.tensor([0]))
    return preds


def parse_setting(setting: str, n: int, max_new: int):
    """`name:key=value,...` -> that decoder's config with those settings."""
    name, _, rest = setting.partition(":")
    own = {k: (v == "true" if v in ("true", "false") else float(v) if "." in v else int(v))
           for k, v in (kv.split("=") for kv in rest.split(",") if kv)}
    return make_config(name, n=n, max_new_tokens=max_new, **own)


def tpf_sweep(loaded, prompts: list[str], n: int, max_new: int, settings: list[str]) -> None:
    """TPF (deterministic, no timing) of decoders with settings other than their defaults: `name:key=value,...`."""
    ids_all = [encode_prompt(loaded, p) for p in prompts]
    for setting in settings:
        config = parse_setting(setting, n, max_new)
        trajs = [decode(loaded.model, ids, config, loaded.eos_token_id) for ids in ids_all]
        tokens, passes = sum(len(t.tokens) for t in trajs), sum(t.forward_passes for t in trajs)
        print(f"{loaded.name:18s} {setting:40s} TPF {tokens / passes:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tiny-python,tiny-python-cllm")
    p.add_argument("--prompts", default=str(HELDOUT_PROMPTS), help="JSONL prompt set (default: the shipped held-out set)")
    p.add_argument("--limit", type=int, default=None, help="first N prompts (default: all)")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--layout", action="store_true", help="only time one verify pass in the two layouts")
    p.add_argument("--also", nargs="+", metavar="NAME:K=V,...", help="also time these decoder settings")
    p.add_argument("--sweep", nargs="+", metavar="NAME:K=V,...", help="only TPF of these decoder settings")
    args = p.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    if args.layout:
        loaded = load_model(args.models.split(",")[-1], "cpu")
        for label, seconds in layout_cost(loaded).items():
            print(f"{label:20s} {seconds * 1000:7.2f} ms")
        return
    prompts = read_prompts(args.prompts, args.limit)
    if args.sweep:
        for name in args.models.split(","):
            tpf_sweep(load_model(name, "cpu"), prompts, args.n, args.max_new_tokens, args.sweep)
        return
    for name in args.models.split(","):
        rows = measure(load_model(name, "cpu"), prompts, args.n, args.max_new_tokens, args.also or [])
        print(f"\n{name}: {len(prompts)} prompts, n = {args.n}, max_new_tokens = {args.max_new_tokens}")
        print(f"{'method':20s} {'tokens':>6s} {'calls':>6s} {'TPF':>6s} {'tok/call':>8s} {'seconds':>8s} "
              f"{'x HF greedy':>11s} {'outside fwd':>11s} {'= AR':>5s}")
        for r in rows:
            print(f"{r['method']:20s} {r['tokens']:6d} {r['calls']:6d} {r['tpf']:6.2f} {r['tokens_per_call']:8.2f} "
                  f"{r['seconds']:8.2f} {r['x_hf_greedy']:11.2f} {r['outside_forward']:11.1%} {r['exact']:5.0%}")


if __name__ == "__main__":
    main()
