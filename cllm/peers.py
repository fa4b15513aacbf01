"""What a user would run instead of our decoders: HF `generate` greedy, and HF prompt-lookup decoding.

Both are exact under greedy decoding, so they are measured on the same prompts (token ids), the same token
budget and the same EOS as our greedy AR and Jacobi. Forward calls are counted with a forward hook on the
model (public nn.Module hooks, nothing patched), so HF's tokens per call is measured, not assumed.

Timing and calls leave out HF's first call: it is the prefill, and it also yields the first token. Our
decoders' figures leave out their prefill (prompt[:-1]) but count the pass that yields the first token, so
HF's rate is over the other tokens: (tokens - 1) / (seconds after the first call), per call likewise.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import GenerationConfig

PEERS = ("hf_greedy", "hf_prompt_lookup")


@dataclass(frozen=True)
class PeerConfig:
    draft: int = 10  # prompt_lookup_num_tokens: tokens drafted per call from the text so far (prompt and
    # output; HF's documentation example uses 10)
    max_new_tokens: int = 64  # the same budget as our decoders


@dataclass
class PeerRun:
    """One prompt through one HF decoder."""
    tokens: list[int]  # generated ids, cut after the first EOS (as ours are)
    calls: int  # forward calls after the first (the prefill, which also yields token 1)
    seconds: float  # wall time after the first call returned


@dataclass
class PeerRow:
    """One HF decoder over a prompt set, for the bench table."""
    decoder: str  # one of PEERS
    tokens: int
    calls: int  # forward calls, the prefill call excluded (see the module note)
    seconds: float
    matches_ar: float  # share of prompts whose output equals our greedy AR's
    prefill_tokens: int  # one per prompt that produced any token: the first, which the prefill call yields

    @property
    def tpf(self) -> float:
        """Tokens per forward call, over the tokens after the prefill's."""
        return (self.tokens - self.prefill_tokens) / self.calls if self.calls else 1.0

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - self.prefill_tokens) / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def call_clock(model):
    """Count forward calls and note when the first one returned: [calls, end of first call]."""
    seen = [0, 0.0]

    def after(*_):
        seen[0] += 1
        if seen[0] == 1:
            seen[1] = time.perf_counter()
    hook = model.register_forward_hook(after)
    try:
        yield seen
    finally:
        hook.remove()


def hf_generate(model, prompt_ids: list[int], config: PeerConfig, eos_token_id: int | None,
                lookup: bool) -> PeerRun:
    """model.generate, greedy (do_sample=False), with prompt lookup when `lookup`; batch of one, no padding."""
    ids = torch.tensor([prompt_ids], device=model.device)
    with torch.inference_mode(), call_clock(model) as seen:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=_greedy(config, eos_token_id, lookup))
        if out.is_cuda:
            torch.cuda.synchronize()
        end = time.perf_counter()
    tokens = out[0, len(prompt_ids):].tolist()
    if eos_token_id in tokens:
        tokens = tokens[:tokens.index(eos_token_id) + 1]
    return PeerRun(tokens, max(seen[0] - 1, 0), end - seen[1] if seen[0] else 0.0)


def _greedy(config: PeerConfig, eos_token_id: int | None, lookup: bool) -> GenerationConfig:
    """Plain greedy whatever the checkpoint says: `generate` fills every knob left None from the model's own
    generation_config (transformers 5), which may carry a repetition penalty, a minimum length or beams, so
    the knobs that change greedy output are set to their neutral values here."""
    return GenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=False, num_beams=1, repetition_penalty=1.0,
                            encoder_repetition_penalty=1.0, no_repeat_ngram_size=0, min_length=0, min_new_tokens=0,
                            eos_token_id=eos_token_id, pad_token_id=0 if eos_token_id is None else eos_token_id,
                            prompt_lookup_num_tokens=config.draft if lookup else None)


def run_peer(model, prompts_ids: list[list[int]], ar_tokens: list[list[int]], config: PeerConfig,
             eos_token_id: int | None, decoder: str) -> PeerRow:
    """One HF decoder over the prompts (after an untimed warm-up), held to our greedy AR outputs."""
    if decoder not in PEERS:
        raise ValueError(f"decoder must be one of {PEERS}")
    lookup = decoder == "hf_prompt_lookup"
    hf_generate(model, prompts_ids[0], PeerConfig(config.draft, min(8, config.max_new_tokens)), eos_token_id, lookup)
    runs = [hf_generate(model, ids, config, eos_token_id, lookup) for ids in prompts_ids]
    same = sum(r.tokens == ar for r, ar in zip(runs, ar_tokens))
    return PeerRow(decoder, sum(len(r.tokens) for r in runs), sum(r.calls for r in runs),
                   sum(r.seconds for r in runs), same / len(runs), sum(bool(r.tokens) for r in runs))
