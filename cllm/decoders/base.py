"""What every decoder of this package shares: the per-pass record (PassLog) and the decoder's state across the
blocks of one run (BlockDecoder), which cllm.jacobi.BlockRun steps through (prefill, blocks of n, the last
fitting max_new_tokens, EOS) as it does plain Jacobi.

A decoder subclasses `BlockDecoder` and writes `block(lm, seq, width) -> Block`: the passes of one block,
recorded with `PassLog`. The cache invariant differs from plain Jacobi's in one way: on entry to a pass the
cache holds some prefix of the committed sequence short of its last token (not always all of it), because
an accepted draft that the pass fed as a branch is fed again, in the trunk, by the next pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from cllm.jacobi import BlockRun, CachedLM, JacobiBlocks, JacobiConfig, options_of
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


class BlockDecoder(JacobiBlocks):
    """A decoder's state across the blocks of one run (config, seeded generator for initial guesses, EOS id, and
    whatever the decoder keeps, e.g. recycle's n-gram pool); `block` decodes one block."""

    name = ""

    def options(self) -> dict[str, float]:
        return options_of(self.config)  # the record keeps the decoder's own settings, to reproduce the run

    def block(self, lm: CachedLM, seq: list[int], width: int) -> Block:
        raise NotImplementedError


def start_decoder(decoder_cls: type[BlockDecoder], model, prompt_ids: list[int], config: JacobiConfig,
                  eos_token_id: int | None = None) -> BlockRun:
    """A run of `decoder_cls` in blocks of n, to step through (cllm.jacobi.BlockRun)."""
    return BlockRun(model, prompt_ids, config, eos_token_id, blocks=decoder_cls)


def run_decoder(decoder_cls: type[BlockDecoder], model, prompt_ids: list[int], config: JacobiConfig,
                eos_token_id: int | None = None) -> Trajectory:
    """Decode with `decoder_cls` in blocks of n; output cut at the first EOS; a record like Jacobi's."""
    return start_decoder(decoder_cls, model, prompt_ids, config, eos_token_id).finish()


def check_positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
