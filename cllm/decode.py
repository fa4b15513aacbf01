"""Decode a text prompt with a loaded model: the one code path the CLI, the bench and the app share."""
from __future__ import annotations

from cllm.jacobi import JacobiConfig, greedy_decode, jacobi_decode
from cllm.models import LoadedModel, token_text
from cllm.trajectory import Trajectory

MAX_PROMPT_CHARS = 20_000


def check_prompt(prompt: str) -> None:
    """Cheap checks, worth doing before a model is loaded."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty: type some text to continue")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")


def encode_prompt(loaded: LoadedModel, prompt: str) -> list[int]:
    check_prompt(prompt)
    ids = loaded.tokenizer(prompt).input_ids
    if not ids:
        raise ValueError("the prompt encodes to no tokens")
    return ids


def decode_prompt(loaded: LoadedModel, prompt: str, config: JacobiConfig, check_ar: bool = True) -> Trajectory:
    """Jacobi-decode `prompt`; with check_ar also greedy AR, so the record says whether they match."""
    ids = encode_prompt(loaded, prompt)
    traj = jacobi_decode(loaded.model, ids, config, loaded.eos_token_id)
    traj.meta.model = loaded.name
    traj.prompt = prompt
    if check_ar:
        ar = greedy_decode(loaded.model, ids, config.max_new_tokens, loaded.eos_token_id)
        traj.ar_tokens, traj.ar_seconds = ar.tokens, ar.seconds
    used = ids + [t for b in traj.blocks for s in b.states for t in s] + (traj.ar_tokens or [])
    traj.token_text = token_text(loaded.tokenizer, used)
    return traj
