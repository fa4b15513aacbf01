"""Literal references of greedy and Jacobi decoding, with no cache: every pass recomputes the whole sequence.
Slow; for tests to hold the fast paths (cllm.jacobi, cllm.decoders) to."""
from __future__ import annotations

import torch

from cllm.jacobi import JacobiConfig, _inference, initial_guess, vocab_size_of
from cllm.trajectory import Block


def greedy_decode_uncached(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None = None) -> list[int]:
    """Greedy AR that re-runs the whole sequence for every token."""
    seq = list(prompt_ids)
    with _inference(model):
        while len(seq) - len(prompt_ids) < max_new_tokens:
            seq.append(int(full_logits(model, seq)[-1].argmax()))
            if seq[-1] == eos_token_id:
                break
    return seq[len(prompt_ids):]


def jacobi_decode_uncached(model, prompt_ids: list[int], config: JacobiConfig, eos_token_id: int | None = None) -> list[Block]:
    """The paper's algorithm as written: full recompute per iteration; a block ends when an iteration
    changes nothing (so its last two states are equal); a block holding EOS is cut after it."""
    vocab, gen = vocab_size_of(model), torch.Generator().manual_seed(config.seed)
    seq, blocks, produced = list(prompt_ids), [], 0
    with _inference(model):
        while produced < config.max_new_tokens:
            width = min(config.n, config.max_new_tokens - produced)
            states = [initial_guess(seq, width, config.init, vocab, gen)]
            while len(states) < 2 or states[-1] != states[-2]:
                logits = full_logits(model, seq + states[-1][:-1])[len(seq) - 1:]
                states.append(logits.argmax(-1).tolist())
            if eos_token_id in states[-1]:
                cut = states[-1].index(eos_token_id) + 1
                states = [s[:cut] for s in states]
            blocks.append(Block(states, [0.0] * (len(states) - 1)))
            seq += states[-1]
            produced += width
            if eos_token_id in states[-1]:
                break
    return blocks


def full_logits(model, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
