"""Greedy verification shared by the exact parallel decoders: one forward pass checks several drafts.

Every decoder here keeps the committed sequence `ctx` (prompt + accepted tokens) and, per pass, verifies
drafts of what follows it. Acceptance is greedy verification (cllm-notes, "Beyond plain Jacobi"): the
longest prefix of a draft whose every token equals the argmax of the pass over the tokens before it, plus
the one token the pass predicts after that prefix. So each accepted token is what greedy AR would write,
and every pass commits at least one token: the decoders equal greedy AR by construction, whatever they draft.

The pass layout (`tree_pass`). One row: the trunk = the committed tokens the cache lacks (at least the last
one, whose logits give the pass's own next token) + the trunk draft (the block's own state, fed as Jacobi
feeds it); then each branch draft, placed after the trunk in the row but attending only to the cache, the
committed part of the trunk and its own earlier tokens, at the positions right after the last committed
token. A boolean 4D mask (1, 1, q, cached + q) says who sees whom; position ids are explicit.

Why one row with a 4D mask, not extra batch rows: on CPU with one thread the pass cost is about the total
token count either way, but extra rows must replicate the cache for every row before the pass and select
one after it (copies of every layer's keys and values, each pass) and pad the rows to one length; the one
row needs only the mask, and after the pass a crop drops every branch (they sit after the trunk). Measured
by `python tests/measure_decoders.py --layout` (README, "Beyond plain Jacobi"). Branch KV is never kept:
an accepted branch's tokens are fed again, in the trunk, by the next pass (the cache only keeps trunk
tokens that turned out final), which costs no extra pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cllm.jacobi import CachedLM
from cllm.jacobi_reference import full_logits


@dataclass(frozen=True)
class Accepted:
    tokens: list[int]  # what the pass commits: the verified prefix + the pass's own next token
    matched: int  # draft tokens verified (len(tokens) - 1, or len(tokens) when the draft filled every slot)


def accept(draft: list[int], preds: list[int]) -> Accepted:
    """Greedy verification: preds[i] is the model's argmax after the committed tokens + draft[:i]."""
    assert preds, "a pass predicts at least the token after the committed ones"
    m = 0
    while m < min(len(draft), len(preds)) and draft[m] == preds[m]:
        m += 1
    return Accepted(preds[: min(m + 1, len(preds))], m)


def best(results: list[Accepted]) -> int:
    """Index of the longest accepted result; ties go to the earliest (the block's own state comes first)."""
    return max(range(len(results)), key=lambda i: (len(results[i].tokens), -i))


@dataclass
class PassOut:
    trunk: list[int]  # argmax after the last committed token, then after each trunk-draft token
    branches: list[list[int]]  # per branch: the pass's own next token, then argmax after each branch token


def tree_pass(lm: CachedLM, ctx: list[int], trunk_draft: list[int], branches: list[list[int]]) -> PassOut:
    """One forward pass over the committed tokens the cache lacks, the trunk draft and each branch (module
    docstring). The cache grows by everything fed; the caller rolls it back with `keep_length`."""
    start, last = lm.length, len(ctx) - 1  # cached tokens; position of the last committed token
    assert start <= last, "the last committed token is fed by every pass"
    trunk = ctx[start:] + trunk_draft
    ids = trunk + [t for b in branches for t in b]
    if not branches:
        logits = lm.feed(ids)  # (T, V): a plain causal pass, as Jacobi's
    else:
        positions = list(range(start, start + len(trunk)))
        for b in branches:
            positions += range(last + 1, last + 1 + len(b))
        logits = lm.feed_masked(ids, positions, _tree_mask(start, len(trunk), last - start, branches))
    preds = logits.argmax(-1).tolist()
    head = last - start  # index in `ids` of the last committed token
    out, at = PassOut(preds[head:len(trunk)], []), len(trunk)
    for b in branches:
        out.branches.append([preds[head]] + preds[at:at + len(b)])
        at += len(b)
    return out


def _tree_mask(cached: int, trunk: int, head: int, branches: list[list[int]]) -> torch.Tensor:
    """(q, cached + q) booleans: trunk causal; each branch sees the cache, trunk[:head + 1] and itself causally."""
    q = trunk + sum(len(b) for b in branches)
    mask = torch.zeros(q, cached + q, dtype=torch.bool)
    mask[:, :cached] = True
    mask[:trunk, cached:cached + trunk] = torch.ones(trunk, trunk, dtype=torch.bool).tril()
    at = trunk
    for b in branches:
        mask[at:at + len(b), cached:cached + head + 1] = True
        mask[at:at + len(b), cached + at:cached + at + len(b)] = torch.ones(len(b), len(b), dtype=torch.bool).tril()
        at += len(b)
    return mask


def keep_length(fed_from: int, fed: list[int], committed: list[int]) -> int:
    """How much of the cache stays valid after a pass that fed `fed` from position `fed_from`: the fed
    tokens that equal the committed sequence there, all before its last token (which the next pass feeds)."""
    keep = fed_from
    while keep < len(committed) - 1 and keep - fed_from < len(fed) and fed[keep - fed_from] == committed[keep]:
        keep += 1
    return keep


def reference_pass(model, ctx: list[int], trunk_draft: list[int], branches: list[list[int]]) -> PassOut:
    """What `tree_pass` must return, from full recomputation with no cache (for the uncached references)."""
    last = len(ctx) - 1
    trunk = full_logits(model, ctx + trunk_draft)[last:].argmax(-1).tolist()
    outs = [full_logits(model, ctx + b)[last:].argmax(-1).tolist() for b in branches]
    return PassOut(trunk, outs)
