"""`recycle`: Jacobi decoding plus an n-gram pool of the run's own drafts (lookahead decoding's pool,
Jacobi Forcing's rejection recycling), exact.

Each pass is a Jacobi iteration of the block (the trunk of cllm.decoders.verify.tree_pass) that also
verifies up to G pool n-grams starting with the last committed token (branches of the same pass). The
longest verified draft wins (ties: the block's own state, then the most recently pooled n-gram) and is
committed with the pass's own next token. The block's new state is the committed tokens followed by the
Jacobi predictions of the remaining positions, as in plain Jacobi.

With `ratio` < 1 a second block rides behind the active one as in `multiblock` (Jacobi Forcing uses both
tricks together); only the active block commits, and pool drafts stay within it.

A block starts from the pool too (`pool_guess`): the newest n-gram of the last committed token, then the
newest of its last token, and so on (the rest as Jacobi's guess); its first pass verifies that as the
block's own state, at no extra cost. The pool: after every pass, every n-gram of [last committed token] +
the pass's Jacobi predictions goes in, keyed by its first token: the accepted tokens and the rejected tail
alike (a tail that was right but at the wrong position, the pattern Jacobi Forcing's trajectory figure
marks, is then tried where it fits). Per key at most G n-grams are kept, most recent first; an n-gram
already pooled moves to the front.
"""
from __future__ import annotations

from dataclasses import dataclass

from cllm.decoders.base import PassLog, check_positive, ends_block, run_decoder
from cllm.decoders.lookup import lookup_draft
from cllm.decoders.multiblock import Multiblock, MultiblockConfig
from cllm.decoders.verify import accept, best, keep_length, tree_pass
from cllm.jacobi import CachedLM
from cllm.trajectory import Block, Trajectory


@dataclass(frozen=True)
class RecycleConfig(MultiblockConfig):
    ratio: float = 1.0  # as multiblock's r, for a second block behind the active one (Jacobi Forcing runs
    # both tricks together); 1.0, the default: none, recycling alone
    pool_size: int = 4  # G: pool n-grams verified per pass (and kept per key); lookahead ties G to its window
    ngram: int = 5  # n-gram length, the key token included (lookahead decoding's default N = 5)
    pool_guess: bool = True  # start each block from the pool: chain the newest n-grams from the last
    # committed token (the rest of the guess as `init` says); False: every block starts as Jacobi's
    pool_prompt: bool = True  # the pool also takes the prompt's n-grams before the first pass (lookahead
    # style: text the model was given is a likely continuation); False: only the run's own predictions
    prompt_lookup: bool = True  # each pass also verifies prompt lookup's draft (`lookup`'s search over the prompt and
    # the output so far, 2 tokens matched, as long as the block allows), so recycle subsumes prompt lookup

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "pool_size")
        if not isinstance(self.ngram, int) or self.ngram < 2:
            raise ValueError(f"ngram must be an integer of at least 2, got {self.ngram!r}")


class NgramPool:
    """n-grams keyed by their first token; per key the `size` most recent, newest first."""

    def __init__(self, size: int, ngram: int):
        self.size, self.ngram = size, ngram
        self.grams: dict[int, list[tuple[int, ...]]] = {}

    def add(self, tokens: list[int]) -> None:
        for i in range(len(tokens) - self.ngram + 1):
            gram, known = tuple(tokens[i + 1:i + self.ngram]), self.grams.setdefault(tokens[i], [])
            if gram in known:
                known.remove(gram)
            known.insert(0, gram)
            del known[self.size:]

    def chain(self, key: int, width: int) -> list[int]:
        """Up to `width` tokens following `key` by the newest n-gram of each key in turn (a recycled guess)."""
        out: list[int] = []
        while len(out) < width and self.grams.get(key):
            out += self.grams[key][0]
            key = out[-1]
        return out[:width]

    def drafts(self, key: int, room: int, skip: list[int]) -> list[list[int]]:
        """Pooled continuations of `key`, cut to `room` tokens, without repeats or ones that are a
        prefix of `skip` (the block's own draft verifies those already)."""
        out: list[list[int]] = []
        for gram in self.grams.get(key, []):
            add_draft(out, list(gram[:room]), skip)
        return out


def add_draft(drafts: list[list[int]], draft: list[int], skip: list[int]) -> None:
    """Append `draft` unless it is empty, already there, or a prefix of `skip` (verified by the trunk)."""
    if draft and draft not in drafts and draft != skip[:len(draft)]:
        drafts.append(draft)


LOOKUP_NGRAM = 2  # suffix length prompt lookup matches (transformers' max_matching_ngram_size default)


def pass_drafts(pool: NgramPool, ctx: list[int], room: int, own: list[int], lookup: bool) -> list[list[int]]:
    """The branches of one pass: the pool's n-grams of the last committed token, then (with `lookup`) prompt
    lookup's draft from `ctx`; each cut to `room` tokens, none repeating another or the block's own state."""
    drafts = pool.drafts(ctx[-1], room, own)
    if lookup:
        add_draft(drafts, lookup_draft(ctx, room, LOOKUP_NGRAM), own)
    return drafts


def recycle_step(trunk_preds: list[int], own: list[int], drafts: list[list[int]], branch_preds: list[list[int]]):
    """Acceptance of one pass: (winner index, -1 = own state; tokens committed)."""
    results = [accept(own, trunk_preds)] + [accept(d, p) for d, p in zip(drafts, branch_preds)]
    w = best(results)
    return w - 1, results[w].tokens


def recycled_guess(pool: NgramPool, seq: list[int], guess: list[int], use_pool: bool) -> list[int]:
    """The block's starting state: the pool's chain from the last committed token, then `guess`."""
    start = pool.chain(seq[-1], len(guess)) if use_pool else []
    return start + guess[len(start):]


class Recycle(Multiblock):
    """Recycling on multiblock's loop: with the default ratio 1.0 no second block ever starts."""

    name = "recycle"

    def __init__(self, config: RecycleConfig, vocab: int, eos_token_id: int | None):
        super().__init__(config, vocab, eos_token_id)
        self.pool = NgramPool(config.pool_size, config.ngram)
        self.seeded = False  # whether the prompt's n-grams went in (before the first block)

    def block(self, lm: CachedLM, seq: list[int], width: int) -> Block:
        if not self.seeded and self.config.pool_prompt:
            self.pool.add(seq)  # the first block's seq is the prompt
        self.seeded = True
        state = self.pending or recycled_guess(self.pool, seq, self.guess(seq, width), self.config.pool_guess)
        log, final, behind, self.pending = PassLog([state]), 0, [], None
        while not ends_block(state, final, self.eos):
            log.start()
            behind = behind or self.start_follower(seq, state, final)
            ctx, start, window = seq + state[:final], lm.length, state[final:] + behind
            drafts = pass_drafts(self.pool, ctx, width - final - 1, state[final:], self.config.prompt_lookup)
            out = tree_pass(lm, ctx, window[:-1], drafts)  # own draft: as Jacobi feeds it
            winner, tokens = recycle_step(out.trunk, window, drafts, out.branches)
            tokens, split = tokens[:width - final], width - final  # only the active block commits
            new, behind = state[:final] + tokens + out.trunk[len(tokens):split], out.trunk[split:]
            self.pool.add(ctx[-1:] + out.trunk)
            lm.rollback(keep_length(start, ctx[start:] + window[:-1], seq + new[:final + len(tokens)]))
            state, final = new, final + len(tokens)
            log.add(state, drafts, winner, len(tokens))
        self.produced += width
        if behind and self.eos not in state[:final]:
            self.pending = behind
        return log.block(self.eos, final)


def recycle_decode(model, prompt_ids: list[int], config: RecycleConfig, eos_token_id: int | None = None) -> Trajectory:
    return run_decoder(Recycle, model, prompt_ids, config, eos_token_id)
