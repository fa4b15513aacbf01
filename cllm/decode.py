"""Decode a text prompt with a loaded model: the one code path the CLI, the bench and the app share."""
from __future__ import annotations

from cllm.decoders import decode
from cllm.jacobi import JacobiConfig, greedy_decode
from cllm.models import LoadedModel, token_text
from cllm.prompts import MAX_PROMPT_CHARS, check_prompt  # noqa: F401 (the checks live with the prompt files)
from cllm.race import Race, default_title
from cllm.trajectory import Trajectory


def encode_prompt(loaded: LoadedModel, prompt: str) -> list[int]:
    check_prompt(prompt)
    ids = loaded.tokenizer(prompt).input_ids
    if not ids:
        raise ValueError("the prompt encodes to no tokens")
    return ids


def decode_prompt(loaded: LoadedModel, prompt: str, config: JacobiConfig, check_ar: bool = True) -> Trajectory:
    """Decode `prompt` with the decoder `config` selects (a JacobiConfig: plain Jacobi; see cllm.decoders);
    with check_ar also greedy AR, so the record says whether they match."""
    ids = encode_prompt(loaded, prompt)
    traj = decode(loaded.model, ids, config, loaded.eos_token_id)
    traj.meta.model = loaded.name
    traj.prompt = prompt
    _set_token_text(loaded, traj)
    if check_ar:
        check_against_ar(loaded, traj)
    return traj


def check_against_ar(loaded: LoadedModel, traj: Trajectory) -> Trajectory:
    """Add greedy AR's output to a Jacobi record of the same model (a separate step, so a viewer can
    show the trajectory while the check still runs)."""
    ar = greedy_decode(loaded.model, traj.prompt_ids, traj.meta.max_new_tokens, loaded.eos_token_id)
    traj.ar_tokens, traj.ar_seconds = ar.tokens, ar.seconds
    _set_token_text(loaded, traj)
    return traj


def decode_race(base: LoadedModel, cllm: LoadedModel, prompt: str, config: JacobiConfig, title: str = "") -> Race:
    """Both models' runs of one prompt, each checked against its greedy AR output."""
    runs = [decode_prompt(m, prompt, config, check_ar=True) for m in (base, cllm)]
    return Race(runs[0], runs[1], title or default_title(prompt))


def _set_token_text(loaded: LoadedModel, traj: Trajectory) -> None:
    drafted = [t for b in traj.blocks for pass_drafts in (b.drafts or []) for d in pass_drafts for t in d]
    used = traj.prompt_ids + [t for b in traj.blocks for s in b.states for t in s] + (traj.ar_tokens or []) + drafted
    traj.token_text = token_text(loaded.tokenizer, used)
