"""What CLLM training is judged by: Jacobi TPF on held-out prompts, held-out perplexity (cllm.evaluate), and
whether the model's Jacobi output still equals its own greedy AR."""
from __future__ import annotations

from cllm.jacobi import JacobiConfig, greedy_decode
from cllm.jacobi_batch import jacobi_decode_batch
from cllm.stats import tokens_per_forward

def jacobi_tpf(model, prompts: list[list[int]], config: JacobiConfig, eos_token_id: int | None,
               batch_size: int = 8) -> tuple[float, list[list[int]]]:
    """Mean tokens per forward pass of Jacobi decoding over the prompts (all tokens / all passes), and the
    outputs. Batched decoding gives each prompt exactly its unbatched passes, so this is the bs = 1 TPF."""
    trajs = [t for i in range(0, len(prompts), batch_size)
             for t in jacobi_decode_batch(model, prompts[i: i + batch_size], config, eos_token_id)]
    tokens, passes = sum(len(t.tokens) for t in trajs), sum(t.forward_passes for t in trajs)
    return tokens_per_forward(tokens, passes), [t.tokens for t in trajs]


def distinct_ngrams(outputs: list[list[int]], n: int = 4) -> float:
    """Mean share of distinct n-grams per output: falls toward 0 as outputs loop. TPF alone cannot tell a
    CLLM that skips ahead from a model that collapsed into repeating itself (both converge fast)."""
    shares = [len({tuple(o[i: i + n]) for i in range(len(o) - n + 1)}) / (len(o) - n + 1) for o in outputs if len(o) >= n]
    return sum(shares) / len(shares) if shares else 1.0


def ar_agreement(model, prompts: list[list[int]], outputs: list[list[int]], max_new_tokens: int,
                 eos_token_id: int | None) -> float:
    """Share of prompts whose Jacobi output equals greedy AR of the same model."""
    same = sum(greedy_decode(model, p, max_new_tokens, eos_token_id).tokens == out for p, out in zip(prompts, outputs))
    return same / len(prompts) if prompts else 1.0
