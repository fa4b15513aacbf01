"""`multiblock`: Jacobi decoding with Jacobi Forcing's second block drafting behind the active one, exact.

While fewer than r * width tokens of the active block are final, a pass is a plain Jacobi iteration. From
then on a second block (its initial guess drawn as any block's) rides behind it: the pass feeds the active
block's unfinished tokens and then the second block's state, so the second block is refined by the same
passes, conditioned on the active block's current state. Only the active block's tokens are committed by a
pass (greedy verification, capped at its end); when it is done, the second block becomes active with the
state it has reached, instead of a fresh guess, and its first pass verifies all of it.

Records: each pass belongs to the active block only (forward passes are counted once); the second block's
state before each pass is recorded as that pass's draft (`drafts[j] = [second block state]`, winner -1),
and a promoted block's states[0] is the state it reached behind its predecessor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from cllm.decoders.base import BlockDecoder, PassLog, ends_block, run_decoder
from cllm.decoders.verify import accept, keep_length, tree_pass
from cllm.jacobi import CachedLM, JacobiConfig
from cllm.trajectory import Block, Trajectory


@dataclass(frozen=True)
class MultiblockConfig(JacobiConfig):
    ratio: float = 0.85  # r: the second block starts once >= r * width of the active block is final
    # (Jacobi Forcing's ~85 %); 1.0 never starts one before the active block ends, i.e. plain Jacobi

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be a number in (0, 1], got {self.ratio!r}")


def follower_due(final: int, width: int, ratio: float) -> bool:
    """Whether the second block should be drafting (r * width final, and the active block not done)."""
    return final < width and final >= math.ceil(ratio * width - 1e-9)


class Multiblock(BlockDecoder):
    name = "multiblock"

    def __init__(self, config: MultiblockConfig, vocab: int, eos_token_id: int | None):
        super().__init__(config, vocab, eos_token_id)
        self.produced = 0  # tokens committed by finished blocks, to size the second block
        self.pending: list[int] | None = None  # a second block's state, promoted by the next block()

    def follower_width(self, width: int) -> int:
        return min(self.config.n, self.config.max_new_tokens - self.produced - width)

    def start_follower(self, seq: list[int], state: list[int], final: int) -> list[int]:
        """A second block's initial guess once it is due, else []."""
        later = self.follower_width(len(state))
        return self.guess(seq + state[:final], later) if later > 0 and follower_due(final, len(state), self.config.ratio) else []

    def block(self, lm: CachedLM, seq: list[int], width: int) -> Block:
        state, self.pending = self.pending or self.guess(seq, width), None
        assert len(state) == width, "a promoted block has the width the run loop gives the next block"
        log, final, behind = PassLog([state]), 0, []
        while not ends_block(state, final, self.eos):
            log.start()
            behind = behind or self.start_follower(seq, state, final)
            ctx, start, window = seq + state[:final], lm.length, state[final:] + behind
            out = tree_pass(lm, ctx, window[:-1], [])
            tokens = accept(window, out.trunk).tokens[:width - final]
            drafted, split = [behind] if behind else [], width - final
            state, behind = state[:final] + out.trunk[:split], out.trunk[split:]
            lm.rollback(keep_length(start, ctx[start:] + window[:-1], seq + state[:final + len(tokens)]))
            final += len(tokens)
            log.add(state, drafted, -1, len(tokens))
        self.produced += width
        if behind and self.eos not in state[:final]:  # after an EOS the run ends: nothing to promote
            self.pending = behind
        return log.block(self.eos, final)


def multiblock_decode(model, prompt_ids: list[int], config: MultiblockConfig,
                      eos_token_id: int | None = None) -> Trajectory:
    return run_decoder(Multiblock, model, prompt_ids, config, eos_token_id)
