"""Benchmarks: each model over a prompt set by our greedy AR and Jacobi and by what a user would run instead
(HF generate greedy, HF prompt lookup: cllm.peers), and the cost of an n-token pass.

tokens_per_s leaves every decoder's prefill out (see cllm.peers for HF's); `speedup` is against our greedy
AR, `vs_hf_greedy` against HF generate's greedy on the same model; matches_ar is each row's exactness
against our greedy AR. Our decoders (Jacobi and those of cllm.decoders) have one row each, named by the
decoder; ff_rate is the paper's per-pass rate over their states; fast_forwarded the surplus; overhead the
share of their time outside the forward pass.

Figures are measured here and printed; tests check behaviour, never timings.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch

from cllm.decode import encode_prompt
from cllm.evaluate import aggregate, evaluate, perplexity, prompt_frame, repeated_line
from cllm.decoders import decode
from cllm.jacobi import CachedLM, JacobiConfig, context_limit, vocab_size_of
from cllm.models import LoadedModel, device_label
from cllm.peers import PEERS, PeerConfig, run_peer

COLUMNS = ("decoder", "model", "prompts", "tokens", "forward_passes", "tpf", "tokens_per_s", "speedup",
           "vs_hf_greedy", "matches_ar", "ff_rate", "fast_forwarded", "stationary", "overhead", "repeats", "perplexity")
DATASET_COLUMNS = COLUMNS[:-3]  # a dataset run's table: no overhead, repeats or perplexity (they re-decode)
MAX_BLOCK_COST_WIDTH = 1024  # widest block timed (the widest a trajectory file holds)


@contextmanager
def forward_timer(model):
    """Accumulate the seconds spent inside model.forward (public nn.Module hooks, nothing patched)."""
    spent, started = [0.0], [0.0]
    pre = model.register_forward_pre_hook(lambda *_: started.__setitem__(0, time.perf_counter()))
    post = model.register_forward_hook(lambda *_: spent.__setitem__(0, spent[0] + time.perf_counter() - started[0]))
    try:
        yield spent
    finally:
        pre.remove()
        post.remove()


def bench_model(loaded: LoadedModel, prompts: list[str], config: JacobiConfig, progress=None,
                peer: PeerConfig | None = None, more: tuple[JacobiConfig, ...] = ()) -> list[dict]:
    """Rows for one model: greedy AR, then `config`'s decoder (Jacobi for a plain JacobiConfig) and each
    decoder of `more` (cllm.decoders; one row each, named by the decoder), from the same runs `stats` uses
    (cllm.evaluate), then the HF peers on the same prompts and budget."""
    configs = [config, *more]
    runs = [evaluate(loaded, prompts, c, progress) for c in configs]
    peer = peer or PeerConfig(max_new_tokens=config.max_new_tokens)
    ar = ar_row(loaded, runs[0]) | quality(loaded, prompts, runs[0])
    rows = [decoder_row(loaded, trajs) | {"overhead": decoder_overhead(loaded, prompts[:8], c)}
            for c, trajs in zip(configs, runs)]
    return [ar] + rows + peer_rows(loaded, runs[0], peer)


def dataset_rows(models: dict[str, LoadedModel], trajs: dict[str, list], peer: PeerConfig) -> list[dict]:
    """The bench table of runs already evaluated (the Stats tab's and `stats`' dataset run): our two rows
    from them, the HF peers run now; no quality or overhead columns (those re-decode)."""
    rows = []
    for role, loaded in models.items():
        rows += [r | {"model": role} for r in ours_rows(loaded, trajs[role]) + peer_rows(loaded, trajs[role], peer)]
    return with_hf_speedup(rows)


def ours_rows(loaded: LoadedModel, trajs) -> list[dict]:
    """Greedy AR and the decoder's rows of evaluated runs (trajectories carrying their AR check)."""
    return [ar_row(loaded, trajs), decoder_row(loaded, trajs)]


def ar_row(loaded: LoadedModel, trajs) -> dict:
    """Our greedy AR's row, from the AR check every evaluated run carries."""
    ar_tokens = sum(len(t.ar_tokens) for t in trajs)
    return {"decoder": "ar", "model": loaded.name, "prompts": len(trajs), "tokens": ar_tokens,
            "forward_passes": ar_tokens, "tpf": 1.0, "tokens_per_s": ar_tokens / sum(t.ar_seconds for t in trajs),
            "speedup": 1.0, "matches_ar": 1.0, "fast_forwarded": 0, "stationary": 0, "overhead": None}


def decoder_row(loaded: LoadedModel, trajs) -> dict:
    """The row of the decoder that made `trajs` (named as cllm.decoders names it: jacobi, recycle, ...)."""
    agg = aggregate(prompt_frame(trajs, loaded.name)).iloc[0]
    return {"decoder": trajs[0].meta.decoder, "model": loaded.name, "prompts": len(trajs),
            "tokens": int(agg["tokens"]), "forward_passes": int(agg["forward_passes"]), "tpf": float(agg["tpf"]),
            "tokens_per_s": float(agg["tokens_per_s"]), "speedup": float(agg["speedup"]),
            "matches_ar": float(agg["matches_ar"]), "ff_rate": float(agg["ff_rate"]),
            "fast_forwarded": int(agg["fast_forwarded"]), "stationary": int(agg["stationary"])}


def peer_rows(loaded: LoadedModel, trajs, peer: PeerConfig) -> list[dict]:
    """The HF peers over the prompts of `trajs` (same ids, budget, EOS), held to their greedy AR tokens."""
    if peer.max_new_tokens != trajs[0].meta.max_new_tokens:
        raise ValueError("the peers must run with the same token budget as the trajectories")
    ids, ar = [t.prompt_ids for t in trajs], [t.ar_tokens for t in trajs]
    ar_rate = sum(len(a) for a in ar) / sum(t.ar_seconds for t in trajs)
    rows = []
    for decoder in PEERS:
        r = run_peer(loaded.model, ids, ar, peer, loaded.eos_token_id, decoder)
        rows.append({"decoder": decoder, "model": loaded.name, "prompts": len(trajs), "tokens": r.tokens,
                     "forward_passes": r.calls, "tpf": r.tpf, "tokens_per_s": r.tokens_per_s,
                     "speedup": r.tokens_per_s / ar_rate, "matches_ar": r.matches_ar})
    return rows


def with_hf_speedup(rows: list[dict]) -> list[dict]:
    """Add vs_hf_greedy to every row: its tokens/s over HF greedy's on the same model."""
    hf = {r["model"]: r["tokens_per_s"] for r in rows if r["decoder"] == "hf_greedy"}
    return [r | {"vs_hf_greedy": r["tokens_per_s"] / hf[r["model"]] if hf.get(r["model"]) else None} for r in rows]


def quality(loaded: LoadedModel, prompts: list[str], trajs) -> dict:
    """The model as a writer: share of greedy continuations that repeat one line 3+ times (degenerate
    loops), and perplexity on the prompts' own text (real held-out code for the shipped set)."""
    texts = [loaded.tokenizer.decode(t.ar_tokens) for t in trajs]
    return {"repeats": sum(map(repeated_line, texts)) / len(texts),
            "perplexity": perplexity(loaded.model, [encode_prompt(loaded, p) for p in prompts])}


def decoder_overhead(loaded: LoadedModel, prompts: list[str], config: JacobiConfig) -> float:
    """Share of the decode time of `config`'s decoder spent outside model.forward (Python, cache
    bookkeeping, drafting, records)."""
    ids = [encode_prompt(loaded, p) for p in prompts]
    with forward_timer(loaded.model) as forward_seconds:
        t0 = time.perf_counter()  # the whole call, prefill included, as the forward timer counts the prefill too
        for i in ids:
            decode(loaded.model, i, config, loaded.eos_token_id)
        total = time.perf_counter() - t0
    return 1.0 - forward_seconds[0] / total


def run_bench(models: list[LoadedModel], prompts: list[str], config: JacobiConfig, peer: PeerConfig | None = None,
              more: tuple[JacobiConfig, ...] = ()) -> dict:
    """Every model's bench rows (bench_model), each with its speed against HF greedy on the same model."""
    peer = peer or PeerConfig(max_new_tokens=config.max_new_tokens)
    rows = with_hf_speedup([row for loaded in models for row in bench_model(loaded, prompts, config, peer=peer, more=more)])
    device = models[0].model.device
    return {"device": device_label(device), "dtype": str(models[0].model.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(), "n": config.n,
            "max_new_tokens": config.max_new_tokens, "draft": peer.draft, "rows": rows}


def block_cost(loaded: LoadedModel, widths: list[int], context: int = 64, repeats: int = 20) -> list[dict]:
    """Median time of one forward pass feeding `w` tokens after `context` cached ones, relative to w = 1."""
    model = loaded.model
    vocab = vocab_size_of(model)
    limit = context_limit(model) or MAX_BLOCK_COST_WIDTH + context
    widest = min(limit - context, MAX_BLOCK_COST_WIDTH)  # past the context a pass is meaningless (and memory-hungry)
    if any(not 1 <= w <= widest for w in widths):
        raise ValueError(f"widths must be 1 to {widest} for this model ({context} cached tokens + the block fit "
                         f"its context of {limit})")
    gen = torch.Generator().manual_seed(0)
    prefix = torch.randint(vocab, (context,), generator=gen).tolist()
    times = {}
    with torch.inference_mode():
        lm = CachedLM(model)
        lm.feed(prefix)
        for w in [1, *widths]:
            block = torch.randint(vocab, (w,), generator=gen).tolist()
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                lm.feed(block)[-1].argmax().item()  # .item() waits for the GPU
                samples.append(time.perf_counter() - t0)
                lm.rollback(context)
            times[w] = statistics.median(samples)
    return [{"n": w, "seconds": times[w], "relative_to_1": times[w] / times[1]} for w in widths]


def format_table(rows: list[dict], columns=COLUMNS) -> str:
    """Plain fixed-width table (no extra dependency) of the bench rows."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)
