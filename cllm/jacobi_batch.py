"""Batched Jacobi decoding: several prompts decoded together, each row exactly as `jacobi_decode` would.

Layout. Prompts are left-padded to one length, so every row's committed sequence ends at the same padded
index and a block occupies the same columns in every row. Each row has its own position ids (padded index
minus its pad count) and the attention mask hides its pads, so a row sees what `jacobi_decode` shows it.
One DynamicCache (batch dimension = rows) holds the padded committed sequences except their last token,
as in jacobi.py, and is rolled back with the public `crop`; finished rows leave with `batch_select_indices`.

Lockstep blocks. All rows run block b together. After an iteration a row's positions <= the first index
that changed are final (jacobi.py's online rule, per row). The next pass feeds every row the suffix from
f = the smallest final index over rows still iterating: a row that is further along recomputes a few
final positions, whose predictions are ignored (its state keeps the final tokens), and a row whose block is
done is ignored until the block ends. So each row goes through exactly the states it would go through
alone. After the block every row appends its fixed point (same width for all), which keeps the padding
aligned; a row that emitted EOS is cut after it, as in jacobi.py, and leaves the batch.

Seeding rule. Row i draws its initial guesses from its own `torch.Generator().manual_seed(seeds[i])`, one
draw per block in block order, exactly as `jacobi_decode` does with `config.seed`. `seeds` defaults to
`config.seed` for every row. Hence row i's trajectory equals
`jacobi_decode(model, prompts[i], dataclasses.replace(config, seed=seeds[i]), eos)` state for state.

Timing: a row's `iteration_seconds` are the wall times of the batched passes it took part in (shared by
the rows of the batch), and every row's `prefill_seconds` is the batched prefill's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from transformers import DynamicCache

from cllm.jacobi import (JacobiConfig, _inference, _meta, cache_arg, check_inputs, initial_guess,
                         vocab_size_of)
from cllm.trajectory import Block, Trajectory, committed_prefix

PAD_ID = 0  # id written into pad slots; any valid id works, the attention mask hides them


class BatchedLM:
    """Left-padded rows sharing one rollback-able cache; each row keeps its own positions."""

    def __init__(self, model, pads: list[int]):
        self.model = model
        self.device = model.device
        self.cache = DynamicCache(config=model.config)
        self.cache_arg = cache_arg(model)
        self.pads = torch.tensor(pads, device=self.device)  # (B,) left pads per row

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()

    def feed(self, ids: list[list[int]]) -> torch.Tensor:
        """Run each row's `ids` (all of one length) after the cache; returns logits (B, T, V)."""
        start, width = self.length, len(ids[0])
        columns = torch.arange(start, start + width, device=self.device)  # (T,) padded indices
        positions = (columns[None] - self.pads[:, None]).clamp(min=0)  # (B, T); pads get 0, they are masked
        seen = torch.arange(start + width, device=self.device)
        mask = (seen[None] >= self.pads[:, None]).long()  # (B, start + T): 0 on each row's pads
        out = self.model(input_ids=torch.tensor(ids, device=self.device), attention_mask=mask,
                         cache_position=columns, position_ids=positions, use_cache=True, **{self.cache_arg: self.cache})
        return out.logits

    def rollback(self, length: int) -> None:
        extra = self.length - length
        assert extra >= 0, "rollback can only shorten the cache"
        if extra:
            self.cache.crop(-extra)

    def keep_rows(self, rows: list[int]) -> None:
        """Drop every row not listed (finished rows), from the cache and the pad table."""
        index = torch.tensor(rows, device=self.device)
        self.cache.batch_select_indices(index)
        self.pads = self.pads[index]


@dataclass
class _Row:
    seq: list[int]  # prompt + accepted tokens
    gen: torch.Generator  # this row's guesses, seeded per the module's seeding rule
    blocks: list[Block] = field(default_factory=list)
    done: bool = False  # emitted EOS


def _prefill(model, rows: list[_Row]) -> tuple[BatchedLM, float]:
    """Cache every row's prompt except its last token, left-padded to the longest."""
    longest = max(len(r.seq) for r in rows)
    lm = BatchedLM(model, [longest - len(r.seq) for r in rows])
    t0 = time.perf_counter()
    if longest > 1:
        logits = lm.feed([[PAD_ID] * (longest - len(r.seq)) + r.seq[:-1] for r in rows])
        if torch.isnan(logits[:, -1]).any():  # the last column is a real token in every row
            raise ValueError("the model returns NaN next to padding (eager attention in float64 casts the mask to "
                             "-inf); use sdpa attention or float32/bfloat16 for batched decoding")
    if not lm.cache.is_croppable:
        raise ValueError(f"{type(model).__name__} keeps a KV cache that cannot roll back; Jacobi decoding needs one that can")
    return lm, time.perf_counter() - t0


def _batch_block(lm: BatchedLM, rows: list[_Row], guesses: list[list[int]], eos_token_id: int | None) -> list[Block]:
    """Iterate one block of every row to its fixed point. Cache: seq[:-1] on entry, seq + block[:-1] on exit."""
    width, base = len(guesses[0]), lm.length
    states = [[g] for g in guesses]  # per row: its states so far
    seconds: list[list[float]] = [[] for _ in rows]
    final = [0] * len(rows)  # per row: leading positions known final (width once the row is done)
    cuts: list[int | None] = [None] * len(rows)  # per row: block length after a final EOS
    while (open_rows := [i for i, f in enumerate(final) if f < width]):
        start = min(final[i] for i in open_rows)
        t0 = time.perf_counter()
        inputs = [([r.seq[-1]] + s[-1][:-1])[start:] for r, s in zip(rows, states)]
        preds = lm.feed(inputs).argmax(-1).tolist()  # (B, width - start)
        elapsed = time.perf_counter() - t0
        for i in open_rows:
            old = states[i][-1]
            new = old[: final[i]] + preds[i][final[i] - start:]
            final[i] = min(width, committed_prefix(new, old) + 1)
            states[i].append(new)
            seconds[i].append(elapsed)
            if eos_token_id in new[: final[i]]:  # everything after a final EOS is never used
                cuts[i], final[i] = new.index(eos_token_id) + 1, width
        lm.rollback(base + min(final))
    return [Block([s[:cut] for s in st] if cut else st, sec) for st, sec, cut in zip(states, seconds, cuts)]


def jacobi_decode_batch(model, prompts: list[list[int]], config: JacobiConfig, eos_token_id: int | None = None,
                        seeds: list[int] | None = None) -> list[Trajectory]:
    """Jacobi-decode several prompts together; one Trajectory per prompt, in order (see the seeding rule)."""
    seeds = [config.seed] * len(prompts) if seeds is None else list(seeds)
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    if not prompts:
        return []
    for ids in prompts:
        check_inputs(model, ids, config.max_new_tokens)
    vocab = vocab_size_of(model)
    rows = [_Row(list(p), torch.Generator().manual_seed(s)) for p, s in zip(prompts, seeds)]
    with _inference(model):
        lm, prefill_seconds = _prefill(model, rows)
        _decode_rows(lm, rows, config, vocab, eos_token_id)
    return [Trajectory(meta=_meta(model, replace(config, seed=s), vocab, eos_token_id), prompt_ids=list(p),
                       blocks=r.blocks, prefill_seconds=prefill_seconds)
            for r, p, s in zip(rows, prompts, seeds)]


def _decode_rows(lm: BatchedLM, rows: list[_Row], config: JacobiConfig, vocab: int, eos_token_id: int | None) -> None:
    """Blocks in lockstep until max_new_tokens; rows that emit EOS leave the batch."""
    live, produced = list(rows), 0
    while live and produced < config.max_new_tokens:
        width = min(config.n, config.max_new_tokens - produced)
        guesses = [initial_guess(r.seq, width, config.init, vocab, r.gen) for r in live]
        for row, block in zip(live, _batch_block(lm, live, guesses, eos_token_id)):
            row.blocks.append(block)
            row.seq += block.fixed_point
            row.done = eos_token_id in block.fixed_point
        produced += width
        if any(r.done for r in live):
            keep = [k for k, r in enumerate(live) if not r.done]
            if keep:
                lm.keep_rows(keep)
            live = [live[k] for k in keep]
