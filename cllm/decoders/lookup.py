"""`lookup`: prompt-lookup decoding (the peer transformers runs as `generate(prompt_lookup_num_tokens=...)`),
exact, in blocks so that it is recorded and drawn like Jacobi.

Each pass drafts the tokens that followed the earliest earlier occurrence of the sequence's last k tokens
(k from `max_ngram` down to 1) in the prompt and the output so far, and verifies them in one pass: the
verified prefix plus the pass's own next token are committed; with no match the pass is a greedy AR step.
The draft is cut to fit the block. Records: the state after a pass is the committed tokens followed by the
pass's predictions after the draft tokens (model guesses; the rest of the state is kept), and the draft of
each pass is recorded (`drafts[j] = [draft]`, winner 0; `[]` and winner -1 when nothing matched).
"""
from __future__ import annotations

from dataclasses import dataclass

from cllm.decoders.base import BlockDecoder, PassLog, check_positive, ends_block, run_decoder
from cllm.decoders.verify import accept, keep_length, tree_pass
from cllm.jacobi import CachedLM, JacobiConfig
from cllm.trajectory import Block, Trajectory


@dataclass(frozen=True)
class LookupConfig(JacobiConfig):
    draft_len: int = 10  # tokens drafted per pass (transformers' prompt_lookup_num_tokens; 10 in its docs)
    max_ngram: int = 2  # longest suffix searched for (transformers' max_matching_ngram_size default, 2)

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "draft_len", "max_ngram")


def lookup_draft(ctx: list[int], draft_len: int, max_ngram: int) -> list[int]:
    """The tokens after the earliest earlier occurrence of ctx's last k tokens (longest k first); [] if none."""
    for k in range(min(max_ngram, len(ctx) - 1), 0, -1):
        suffix = ctx[-k:]
        for i in range(len(ctx) - k):  # occurrences that end before the suffix's own last token
            if ctx[i:i + k] == suffix:
                return ctx[i + k:i + k + draft_len]
    return []


class Lookup(BlockDecoder):
    name = "lookup"

    def block(self, lm: CachedLM, seq: list[int], width: int) -> Block:
        state = self.guess(seq, width)
        log, final = PassLog([state]), 0
        while not ends_block(state, final, self.eos):
            log.start()
            ctx, start = seq + state[:final], lm.length
            draft = lookup_draft(ctx, min(self.config.draft_len, width - final - 1), self.config.max_ngram)
            out = tree_pass(lm, ctx, draft, [])
            tokens = accept(draft, out.trunk).tokens
            state = state[:final] + out.trunk + state[final + len(out.trunk):]
            lm.rollback(keep_length(start, ctx[start:] + draft, seq + state[:final + len(tokens)]))
            final += len(tokens)
            log.add(state, [draft] if draft else [], 0 if draft else -1, len(tokens))
        return log.block(self.eos, final)


def lookup_decode(model, prompt_ids: list[int], config: LookupConfig, eos_token_id: int | None = None) -> Trajectory:
    return run_decoder(Lookup, model, prompt_ids, config, eos_token_id)
