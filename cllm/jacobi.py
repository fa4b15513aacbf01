"""Greedy AR reference and Jacobi decoding over token ids, with a KV cache.

The decoder works on token ids only: no tokenizer, no printing; it returns records (cllm.trajectory).
The KV cache goes through transformers' public Cache API (DynamicCache, crop, cache_position); nothing
in transformers is patched, so any AutoModelForCausalLM with a croppable cache works.

Cache bookkeeping shared by AR and Jacobi: the cache holds the committed sequence except its last
token, which is fed with the next pass. AR feeds that one token; Jacobi feeds it with the block guess
[last, y_0, ..., y_{n-2}], whose n logits update y_0..y_{n-1} at once. Both then count exactly one
forward pass per iteration and the same prefill, so tokens-per-forward compares like with like.

Which positions of a block are final is known online: if iteration j leaves positions < d unchanged
(d = first index where the new state differs from the old one), every position <= d was computed from
a final prefix and is final itself. So (a) their KV stays in the cache and the next pass feeds only
the unfinished suffix, and (b) the block ends as soon as all positions are final, which saves the
paper's confirming pass without changing the fixed point (tested against the literal algorithm).
"""
from __future__ import annotations

import contextlib
import inspect
import sys
import time
import weakref
from dataclasses import asdict, dataclass, fields, replace

import torch
from transformers import DynamicCache

from cllm.trajectory import Block, RunMeta, Trajectory, committed_prefix

INITS = ("prompt", "vocab", "last")  # initial-guess rules; "prompt" is the authors' default
MAX_SEED = 2**32 - 1  # seeds are 0..2**32-1 everywhere: what numpy (the Trainer's set_seed) accepts


@dataclass(frozen=True)
class JacobiConfig:
    n: int = 16  # block size: tokens guessed and refined together
    max_new_tokens: int = 64  # generation budget; the last block shrinks to fit it
    seed: int = 0  # seeds the initial guesses, so a run is reproducible
    init: str = "prompt"  # "prompt": uniform over prompt + accepted tokens; "vocab": uniform over the
    # vocabulary; "last": the last committed token repeated

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n (block size) must be a positive integer, got {self.n!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; got {self.init!r}")
        check_seed(self.seed)


def check_seed(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {str(seed)[:24]}")


@dataclass
class ARResult:
    tokens: list[int]  # generated ids, cut after the first EOS
    forward_passes: int  # decode passes: one per token
    seconds: float  # decode wall time, prefill excluded
    prefill_seconds: float


def cache_arg(model) -> str:
    """Name of forward()'s KV-cache argument: transformers 5.2x renamed `past_key_values` to `cache` (the old
    name warns and goes in 5.40); earlier 5.x releases know only the old one. Wrappers whose forward takes
    **kwargs and hands them on (DDP, torch.compile, a peft adapter) are looked through to the model's own."""
    while (inner := _wrapped(model)) is not None:
        model = inner
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _wrapped(model):
    """The model a known wrapper holds (DDP or DataParallel, torch.compile's, a peft adapter), else None: only
    these, since a model of its own may well have a submodule named `module`. A wrapper class whose module was
    never imported cannot have made this model, so none is imported here."""
    if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return model.module
    compiled, peft = sys.modules.get("torch._dynamo.eval_frame"), sys.modules.get("peft")
    if compiled is not None and isinstance(model, compiled.OptimizedModule):
        return model._orig_mod
    return model.get_base_model() if peft is not None and isinstance(model, peft.PeftModel) else None


def returned_cache(out):
    """The KV cache a forward pass returned, under either name (see cache_arg)."""
    return out["cache"] if "cache" in out else out.past_key_values


class CachedLM:
    """A causal LM fed by position along one sequence, with a cache that can roll back."""

    def __init__(self, model):
        self.model = model
        self.device = model.device
        self.cache = DynamicCache(config=model.config)
        self.cache_arg = cache_arg(model)

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()

    def feed(self, ids: list[int]) -> torch.Tensor:
        """Run `ids` at the positions after the cache; returns their logits (len(ids), V)."""
        start = self.length
        positions = torch.arange(start, start + len(ids), device=self.device)
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            cache_position=positions,  # what 5.x releases before the cache_arg rename read; later ones ignore it
            position_ids=positions[None],
            use_cache=True,
            **{self.cache_arg: self.cache},
        )
        return out.logits[0]

    def feed_masked(self, ids: list[int], positions: list[int], mask: torch.Tensor) -> torch.Tensor:
        """Run `ids` after the cache at explicit `positions` under a boolean (len(ids), cached + len(ids))
        mask of who attends to whom (drafts branching off one sequence); returns logits (len(ids), V)."""
        start = self.length
        out = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            cache_position=torch.arange(start, start + len(ids), device=self.device),  # cache slots, not positions
            position_ids=torch.tensor([positions], device=self.device),
            attention_mask=mask[None, None].to(self.device),  # (1, 1, q, kv): used as given
            use_cache=True,
            **{self.cache_arg: self.cache},
        )
        return out.logits[0]

    def rollback(self, length: int) -> None:
        """Drop cached positions from `length` on (their tokens turned out not final)."""
        extra = self.length - length
        assert extra >= 0, "rollback can only shorten the cache"
        if extra:
            self.cache.crop(-extra)


def vocab_size_of(model) -> int:
    return model.get_output_embeddings().weight.shape[0]


def context_limit(model) -> int | None:
    """Positions the model can attend over (max_position_embeddings); None when its config does not say."""
    return getattr(model.config.get_text_config(), "max_position_embeddings", None)


def check_inputs(model, prompt_ids: list[int], max_new_tokens: int) -> None:
    """Raise ValueError with a clear message for inputs the model cannot decode."""
    if len(prompt_ids) == 0:
        raise ValueError("the prompt is empty: give at least one token")
    vocab = vocab_size_of(model)
    if any(not 0 <= t < vocab for t in prompt_ids):
        raise ValueError(f"prompt holds token ids outside the model's vocabulary [0, {vocab})")
    limit = context_limit(model)
    if limit is not None and len(prompt_ids) + max_new_tokens > limit:
        raise ValueError(
            f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds "
            f"the model's context of {limit} tokens"
        )


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode for the duration; restores training mode after (measurements during training)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _inference(model):
    """Eval mode and no autograd for the duration; restores training mode after (training callbacks)."""
    with eval_mode(model), torch.inference_mode():
        yield


def _prefill(model, prompt_ids: list[int]) -> tuple[CachedLM, float]:
    lm = CachedLM(model)
    t0 = time.perf_counter()
    if len(prompt_ids) > 1:
        lm.feed(prompt_ids[:-1])
    if not lm.cache.is_croppable:
        raise ValueError(f"{type(model).__name__} keeps a KV cache that cannot roll back; Jacobi decoding needs one that can")
    return lm, time.perf_counter() - t0


def greedy_decode(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None = None) -> ARResult:
    """Greedy autoregressive decoding with a KV cache: the reference Jacobi must reproduce."""
    check_inputs(model, prompt_ids, max_new_tokens)
    with _inference(model):
        lm, prefill_seconds = _prefill(model, prompt_ids)
        tokens, last = [], prompt_ids[-1]
        t0 = time.perf_counter()
        while len(tokens) < max_new_tokens:
            last = int(lm.feed([last])[-1].argmax())
            tokens.append(last)
            if last == eos_token_id:
                break
        return ARResult(tokens, len(tokens), time.perf_counter() - t0, prefill_seconds)


def initial_guess(seq: list[int], width: int, init: str, vocab_size: int, gen: torch.Generator) -> list[int]:
    """The block's starting state, drawn from `gen` so that a seed reproduces the run."""
    if init == "prompt":
        picks = torch.randint(len(seq), (width,), generator=gen).tolist()
        return [seq[i] for i in picks]
    if init == "vocab":
        return torch.randint(vocab_size, (width,), generator=gen).tolist()
    return [seq[-1]] * width


def _jacobi_block(lm: CachedLM, seq: list[int], guess: list[int], eos_token_id: int | None) -> Block:
    """Iterate one block to its fixed point. Cache holds seq[:-1] on entry and seq + block[:-1] on exit."""
    width, base = len(guess), len(seq) - 1  # base: position of seq[-1], the first token fed
    state, states, seconds = guess, [guess], []
    final = 0  # leading positions of `state` known to be final
    while final < width:
        t0 = time.perf_counter()
        inputs = ([seq[-1]] + state[:-1])[final:]  # those that predict positions final..width-1
        new = state[:final] + lm.feed(inputs).argmax(-1).tolist()
        final = min(width, committed_prefix(new, state) + 1)
        lm.rollback(base + final)  # keep the KV of the tokens that were fed and are final
        state = new
        states.append(new)
        seconds.append(time.perf_counter() - t0)
        if eos_token_id in state[:final]:  # everything after a final EOS is never used
            cut = state.index(eos_token_id) + 1
            return Block([s[:cut] for s in states], seconds)
    return Block(states, seconds)


class JacobiBlocks:
    """Plain Jacobi's blocks for a BlockRun: a seeded generator draws each block's guess (in block order, so a
    seed reproduces the run), `block` iterates it to its fixed point. cllm.decoders' decoders subclass it."""

    name = "jacobi"

    def __init__(self, config: JacobiConfig, vocab: int, eos_token_id: int | None):
        self.config, self.vocab, self.eos = config, vocab, eos_token_id
        self.gen = torch.Generator().manual_seed(config.seed)

    def guess(self, seq: list[int], width: int) -> list[int]:
        return initial_guess(seq, width, self.config.init, self.vocab, self.gen)

    def options(self) -> dict[str, float]:
        """The settings the record keeps beyond JacobiConfig's: none for plain Jacobi, whatever config it is given
        (another decoder's config subclasses JacobiConfig)."""
        return {}

    def block(self, lm: CachedLM, seq: list[int], width: int) -> Block:
        return _jacobi_block(lm, seq, self.guess(seq, width), self.eos)


class BlockRun:
    """One decode in progress, a block per `step`: the prefill, then blocks of n (the last fits max_new_tokens)
    until the budget or a final EOS. Everything a run needs between steps (cache, generator, a decoder's own
    state) lives here, so a live race shows its first block and decodes the rest in a later turn of the
    model line with no block decoded twice (cllm/ui/explore_tab.py)."""

    def __init__(self, model, prompt_ids: list[int], config: JacobiConfig, eos_token_id: int | None = None,
                 blocks: type[JacobiBlocks] = JacobiBlocks):
        check_inputs(model, prompt_ids, config.max_new_tokens)
        self.model, self.config, self.eos, self.prompt_ids = model, config, eos_token_id, list(prompt_ids)
        self.vocab = vocab_size_of(model)
        self.decoder = blocks(config, self.vocab, eos_token_id)
        self.meta = _meta(model, config, self.vocab, eos_token_id)  # read once: a parked run has no model
        with _inference(model):  # entered per call: a step may run in another thread than the one before
            self.lm, self.prefill_seconds = _prefill(model, prompt_ids)
        self.seq, self.blocks, self.failed, self._parked = list(prompt_ids), [], False, None

    @property
    def produced(self) -> int:
        return len(self.seq) - len(self.prompt_ids)

    @property
    def done(self) -> bool:
        ended = bool(self.blocks) and self.eos in self.blocks[-1].fixed_point
        return ended or self.produced >= self.config.max_new_tokens

    def step(self) -> Block:
        """Decode the next block (the run must not be done, failed or parked)."""
        if self.done or self.failed or self.model is None:
            raise RuntimeError("the run is " + ("done: no block left to decode" if self.done else
                               "broken: an earlier step failed" if self.failed else "parked: resume it first"))
        try:
            with _inference(self.model):
                width = min(self.config.n, self.config.max_new_tokens - self.produced)
                block = self.decoder.block(self.lm, self.seq, width)
        except BaseException:
            self.failed = True  # the cache may hold a block's tokens that seq does not: never step on from it
            raise
        self.blocks.append(block)
        self.seq += block.fixed_point
        if self.done:
            self.lm = None  # the KV cache is not needed once the run is done
        return block

    def park(self) -> None:
        """Let go of the model between a race's turns (a weak reference stays): a model the model cache drops
        meanwhile is freed instead of being held by a waiting run. `resume` takes it back."""
        self._parked = weakref.ref(self.model) if self.model is not None else self._parked  # parked twice: kept
        self._bind(None)

    def resume(self, model) -> bool:
        """Take the model back after `park`; False (the run stays parked) when `model` is not the one it had."""
        back = self._parked is not None and self._parked() is model
        if back:
            self._bind(model)
        return back

    def _bind(self, model) -> None:
        self.model = model
        if self.lm is not None:  # a done run has dropped its cache
            self.lm.model = model

    def finish(self) -> Trajectory:
        while not self.done:
            self.step()
        return self.trajectory()

    def trajectory(self) -> Trajectory:
        """The record of the blocks decoded so far (all of them once done)."""
        meta = replace(self.meta, decoder=self.decoder.name, options=self.decoder.options())
        return Trajectory(meta=meta, prompt_ids=list(self.prompt_ids), blocks=list(self.blocks),
                          prefill_seconds=self.prefill_seconds)


def options_of(config: JacobiConfig) -> dict[str, float]:
    """A decoder config's own fields (those beyond JacobiConfig's), for the record's meta.options."""
    common = {f.name for f in fields(JacobiConfig)}
    return {k: v for k, v in asdict(config).items() if k not in common}


def jacobi_decode(model, prompt_ids: list[int], config: JacobiConfig, eos_token_id: int | None = None) -> Trajectory:
    """Jacobi decoding in blocks of n (the last block fits max_new_tokens); output cut at the first EOS."""
    return BlockRun(model, prompt_ids, config, eos_token_id).finish()


def _meta(model, config: JacobiConfig, vocab: int, eos_token_id: int | None) -> RunMeta:
    return RunMeta(
        model=getattr(model, "name_or_path", "") or "", n=config.n, max_new_tokens=config.max_new_tokens,
        seed=config.seed, init=config.init, device=str(model.device), dtype=str(model.dtype).removeprefix("torch."),
        vocab_size=vocab, eos_token_id=eos_token_id,
    )
