"""Uncached references of the decoders: every pass recomputes the whole sequence (and each draft) from
scratch, with no cache, no mask and no rollback. Slow; for tests to hold the cached decoders to, record for
record (states, drafts, winners, gains). They share only the pure parts: the pool, the lookup search,
greedy acceptance, and the initial guesses (same generator draws)."""
from __future__ import annotations

import math

import torch

from cllm.decoders.lookup import LookupConfig, lookup_draft
from cllm.decoders.multiblock import MultiblockConfig
from cllm.decoders.recycle import NgramPool, RecycleConfig, pass_drafts, recycle_step, recycled_guess
from cllm.decoders.verify import accept
from cllm.jacobi import _inference, initial_guess, vocab_size_of
from cllm.jacobi_reference import full_logits
from cllm.trajectory import Block


def _preds(model, ctx: list[int], draft: list[int]) -> list[int]:
    """Argmax after the last committed token and after each draft token, from a full recomputation."""
    return full_logits(model, ctx + draft)[len(ctx) - 1:].argmax(-1).tolist()


def _log_pass(log: tuple[list, list, list, list], state, drafts, winner, gain) -> None:
    """Appends one pass to a block's log: its state, the drafts it verified, the winner (-1: its own state)
    and the tokens it committed."""
    for part, value in zip(log, (state, drafts, winner, gain)):
        part.append(value)


def _record(states, drafts, winners, gains, eos) -> Block:
    final = sum(gains)
    if eos in states[-1][:final]:
        cut = states[-1].index(eos) + 1
        states = [s[:cut] for s in states]
    return Block(states, [0.0] * len(gains), drafts, winners, gains)


def _run(model, prompt_ids, config, eos, block_fn) -> list[Block]:
    gen, vocab = torch.Generator().manual_seed(config.seed), vocab_size_of(model)
    guess = lambda seq, width: initial_guess(seq, width, config.init, vocab, gen)  # noqa: E731
    seq, blocks, produced = list(prompt_ids), [], 0
    with _inference(model):
        while produced < config.max_new_tokens:
            width = min(config.n, config.max_new_tokens - produced)
            blocks.append(block_fn(seq, width, produced, guess))
            seq += blocks[-1].fixed_point
            produced += width
            if eos in blocks[-1].fixed_point:
                break
    return blocks


def recycle_uncached(model, prompt_ids: list[int], config: RecycleConfig, eos: int | None = None) -> list[Block]:
    pool, pending = NgramPool(config.pool_size, config.ngram), []
    if config.pool_prompt:
        pool.add(list(prompt_ids))

    def block(seq, width, produced, guess):
        state = pending.pop() if pending else recycled_guess(pool, seq, guess(seq, width), config.pool_guess)
        final, behind, log = 0, [], ([state], [], [], [])
        later = min(config.n, config.max_new_tokens - produced - width)  # width of the block after this one
        while final < width and eos not in state[:final]:
            if not behind and later > 0 and final >= math.ceil(config.ratio * width - 1e-9):
                behind = guess(seq + state[:final], later)
            ctx, window = seq + state[:final], state[final:] + behind
            drafts = pass_drafts(pool, ctx, width - final - 1, state[final:], config.prompt_lookup)
            own = _preds(model, ctx, window[:-1])
            winner, tokens = recycle_step(own, window, drafts, [_preds(model, ctx, d) for d in drafts])
            tokens = tokens[:width - final]
            state, behind = state[:final] + tokens + own[len(tokens):width - final], own[width - final:]
            final += len(tokens)
            pool.add(ctx[-1:] + own)
            _log_pass(log, state, drafts, winner, len(tokens))
        if behind and eos not in state[:final]:
            pending.append(behind)
        return _record(*log, eos)

    return _run(model, prompt_ids, config, eos, block)


def multiblock_uncached(model, prompt_ids: list[int], config: MultiblockConfig, eos: int | None = None) -> list[Block]:
    pending = []  # the second block's state carried into the next block

    def block(seq, width, produced, guess):
        state = pending.pop() if pending else guess(seq, width)
        final, behind, log = 0, [], ([state], [], [], [])
        later = min(config.n, config.max_new_tokens - produced - width)  # width of the block after this one
        while final < width and eos not in state[:final]:
            if not behind and later > 0 and final >= math.ceil(config.ratio * width - 1e-9):
                behind = guess(seq + state[:final], later)
            drafted, window = [behind] if behind else [], state[final:] + behind
            preds = _preds(model, seq + state[:final], window[:-1])
            tokens = accept(window, preds).tokens[:width - final]
            state, behind = state[:final] + preds[:width - final], preds[width - final:]
            final += len(tokens)
            _log_pass(log, state, drafted, -1, len(tokens))
        if behind and eos not in state[:final]:
            pending.append(behind)
        return _record(*log, eos)

    return _run(model, prompt_ids, config, eos, block)


def lookup_uncached(model, prompt_ids: list[int], config: LookupConfig, eos: int | None = None) -> list[Block]:
    def block(seq, width, produced, guess):
        state, final = guess(seq, width), 0
        log = ([state], [], [], [])
        while final < width and eos not in state[:final]:
            ctx = seq + state[:final]
            draft = lookup_draft(ctx, min(config.draft_len, width - final - 1), config.max_ngram)
            preds = _preds(model, ctx, draft)
            tokens = accept(draft, preds).tokens
            state, final = state[:final] + preds + state[final + len(preds):], final + len(tokens)
            _log_pass(log, state, [draft] if draft else [], 0 if draft else -1, len(tokens))
        return _record(*log, eos)

    return _run(model, prompt_ids, config, eos, block)


REFERENCES = {"recycle": recycle_uncached, "multiblock": multiblock_uncached, "lookup": lookup_uncached}
