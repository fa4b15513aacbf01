"""The loop every decoder of this package shares: prefill, blocks of n (the last fits max_new_tokens), EOS.

A decoder subclasses `BlockDecoder` and writes `block(lm, seq, width) -> Block`: the passes of one block,
recorded with `PassLog`. The cache invariant differs from plain Jacobi's in one way: on entry to a pass the
cache holds some prefix of the committed sequence short of its last token (not always all of it), because
an accepted draft that the pass fed as a branch is fed again, in the trunk, by the next pass.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

import torch

from cllm.jacobi import (CachedLM, JacobiConfig, _inference, _meta, _prefill, check_inputs, initial_guess,
                         vocab_size_of)
from cllm.trajectory import Block, Trajectory


@dataclass
class PassLog:
    """The per-pass record of one block, as cllm.trajectory.Block stores it."""

    states: list[list[int]]
    seconds: list[float] = field(default_factory=list)
    drafts: list[list[list[int]]] = field(default_factory=list)
    winners: list[int] = field(default_factory=list)
    gains: list[int] = field(default_factory=list)
    started: float = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()

    def add(self, state: list[int], drafts: list[list[int]], winner: int, gain: int) -> None:
        self.seconds.append(time.perf_counter() - self.started)
        self.states.append(state)
        self.drafts.append(drafts)
        self.winners.append(winner)
        self.gains.append(gain)

    def block(self, eos_token_id: int | None, final: int) -> Block:
        """The Block; if a final token is EOS, every state is cut after it (what follows is never used)."""
        states = self.states
        if eos_token_id in states[-1][:final]:
            cut = states[-1].index(eos_token_id) + 1
            states = [s[:cut] for s in states]
        return Block(states, self.seconds, self.drafts, self.winners, self.gains)


def ends_block(state: list[int], final: int, eos_token_id: int | None) -> bool:
    return final >= len(state) or eos_token_id in state[:final]


class BlockDecoder:
    """Shared state of one run: config, seeded generator for initial guesses, EOS id."""

    name = ""

    def __init__(self, config: JacobiConfig, vocab: int, eos_token_id: int | None):
        self.config, self.vocab, self.eos = config, vocab, eos_token_id
        self.gen = torch.Generator().manual_seed(config.seed)

    def guess(self, seq: list[int], width: int) -> list[int]:
        return initial_guess(seq, width, self.config.init, self.vocab, self.gen)

    def block(self, lm: CachedLM, seq: list[int], width: int) -> Block:
        raise NotImplementedError


def run_decoder(decoder_cls: type[BlockDecoder], model, prompt_ids: list[int], config: JacobiConfig,
                eos_token_id: int | None = None) -> Trajectory:
    """Decode with `decoder_cls` in blocks of n; output cut at the first EOS; a record like Jacobi's."""
    check_inputs(model, prompt_ids, config.max_new_tokens)
    vocab = vocab_size_of(model)
    decoder = decoder_cls(config, vocab, eos_token_id)
    with _inference(model):
        lm, prefill_seconds = _prefill(model, prompt_ids)
        seq, blocks, produced = list(prompt_ids), [], 0
        while produced < config.max_new_tokens:
            width = min(config.n, config.max_new_tokens - produced)
            block = decoder.block(lm, seq, width)
            blocks.append(block)
            seq += block.fixed_point
            produced += block.width
            if eos_token_id in block.fixed_point:
                break
    meta = _meta(model, config, vocab, eos_token_id)
    meta.decoder, meta.options = decoder.name, options_of(config)
    return Trajectory(meta=meta, prompt_ids=list(prompt_ids), blocks=blocks, prefill_seconds=prefill_seconds)


def options_of(config: JacobiConfig) -> dict[str, float]:
    """A decoder config's own fields (those beyond JacobiConfig's), for the record's meta.options."""
    common = {f.name for f in fields(JacobiConfig)}
    return {k: v for k, v in asdict(config).items() if k not in common}


def check_positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
