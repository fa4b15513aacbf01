"""Benchmarks: AR vs Jacobi on each model over a prompt set, and the cost of an n-token pass.

Figures are measured here and printed; tests check behaviour, never timings.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch

from cllm.decode import encode_prompt
from cllm.evaluate import aggregate, evaluate, prompt_frame, repeated_line
from cllm.jacobi import CachedLM, JacobiConfig, jacobi_decode
from cllm.models import LoadedModel, device_label
from cllm.train_eval import perplexity

COLUMNS = ("decoder", "model", "prompts", "tokens", "forward_passes", "tpf", "tokens_per_s", "speedup",
           "matches_ar", "fast_forwarded", "stationary", "overhead", "repeats", "perplexity")
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


def bench_model(loaded: LoadedModel, prompts: list[str], config: JacobiConfig, progress=None) -> list[dict]:
    """Two rows for one model, greedy AR then Jacobi, from the same runs `stats` uses (cllm.evaluate)."""
    trajs = evaluate(loaded, prompts, config, progress)
    agg = aggregate(prompt_frame(trajs, loaded.name)).iloc[0]
    ar_tokens = sum(len(t.ar_tokens) for t in trajs)
    common = {"model": loaded.name, "prompts": len(prompts)}
    return [
        common | {"decoder": "ar", "tokens": ar_tokens, "forward_passes": ar_tokens, "tpf": 1.0,
                  "tokens_per_s": ar_tokens / agg["ar_seconds"], "speedup": 1.0, "matches_ar": 1.0,
                  "fast_forwarded": 0, "stationary": 0, "overhead": None} | quality(loaded, prompts, trajs),
        common | {"decoder": "jacobi", "tokens": int(agg["tokens"]), "forward_passes": int(agg["forward_passes"]),
                  "tpf": float(agg["tpf"]), "tokens_per_s": float(agg["tokens_per_s"]), "speedup": float(agg["speedup"]),
                  "matches_ar": float(agg["matches_ar"]), "fast_forwarded": int(agg["fast_forwarded"]),
                  "stationary": int(agg["stationary"]), "overhead": jacobi_overhead(loaded, prompts[:8], config)},
    ]


def quality(loaded: LoadedModel, prompts: list[str], trajs) -> dict:
    """The model as a writer: share of greedy continuations that repeat one line 3+ times (degenerate
    loops), and perplexity on the prompts' own text (real held-out code for the shipped set)."""
    texts = [loaded.tokenizer.decode(t.ar_tokens) for t in trajs]
    return {"repeats": sum(map(repeated_line, texts)) / len(texts),
            "perplexity": perplexity(loaded.model, [encode_prompt(loaded, p) for p in prompts])}


def jacobi_overhead(loaded: LoadedModel, prompts: list[str], config: JacobiConfig) -> float:
    """Share of Jacobi decode time spent outside model.forward (Python, cache bookkeeping, records)."""
    ids = [encode_prompt(loaded, p) for p in prompts]
    with forward_timer(loaded.model) as forward_seconds:
        t0 = time.perf_counter()  # the whole call, prefill included, as the forward timer counts the prefill too
        for i in ids:
            jacobi_decode(loaded.model, i, config, loaded.eos_token_id)
        total = time.perf_counter() - t0
    return 1.0 - forward_seconds[0] / total


def run_bench(models: list[LoadedModel], prompts: list[str], config: JacobiConfig) -> dict:
    rows = [row for loaded in models for row in bench_model(loaded, prompts, config)]
    device = models[0].model.device
    return {"device": device_label(device), "threads": torch.get_num_threads(), "n": config.n,
            "max_new_tokens": config.max_new_tokens, "rows": rows}


def block_cost(loaded: LoadedModel, widths: list[int], context: int = 64, repeats: int = 20) -> list[dict]:
    """Median time of one forward pass feeding `w` tokens after `context` cached ones, relative to w = 1."""
    model = loaded.model
    vocab = model.get_output_embeddings().weight.shape[0]
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None) or MAX_BLOCK_COST_WIDTH + context
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
