"""Decode a text prompt with a loaded model: the one code path the CLI, the bench and the app share."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import torch

from cllm.decoders import start_decode
from cllm.files import finite_or_none
from cllm.jacobi import BlockRun, JacobiConfig, greedy_decode
from cllm.models import LoadedModel, token_text, usable_cores
from cllm.prompts import MAX_PROMPT_CHARS, check_prompt, prompt_token_ids  # noqa: F401 (checks live with prompt files)
from cllm.race import Race, default_title
from cllm.stats import run_summary
from cllm.trajectory import Trajectory

T = TypeVar("T")
if TYPE_CHECKING:
    from cllm.shipped import Recent as GreedyMemo  # greedy_request -> (tokens, seconds)


def encode_prompt(loaded: LoadedModel, prompt: str) -> list[int]:
    """The ids decoded for `prompt`: raw, or wrapped in the chat template when the model is used as chat."""
    check_prompt(prompt)
    ids = prompt_token_ids(loaded.tokenizer, prompt, loaded.chat)
    if not ids:
        raise ValueError("the prompt encodes to no tokens")
    return ids


def decode_prompt(loaded: LoadedModel, prompt: str, config: JacobiConfig, check_ar: bool = True) -> Trajectory:
    """Decode `prompt` with the decoder `config` selects (a JacobiConfig: plain Jacobi; see cllm.decoders), as a
    user turn of the chat template when `loaded.chat`; with check_ar also greedy AR, so the record says whether
    they match."""
    traj = PromptRun.start(loaded, prompt, config).advance()
    if check_ar:
        check_against_ar(loaded, traj)
    return traj


@dataclass
class PromptRun:
    """A text prompt's decode in progress (cllm.jacobi.BlockRun), whose record so far reads as text: the app
    shows a live race's first block, then decodes the rest in a later turn, each block once."""
    loaded: LoadedModel
    prompt: str
    blocks: BlockRun

    @classmethod
    def start(cls, loaded: LoadedModel, prompt: str, config: JacobiConfig) -> PromptRun:
        return cls(loaded, prompt, start_decode(loaded.model, encode_prompt(loaded, prompt), config,
                                                 loaded.eos_token_id))

    def advance(self, blocks: int | None = None) -> Trajectory:
        """Decode up to `blocks` more blocks (all that are left when None); the record so far."""
        while not self.blocks.done and (blocks is None or blocks > 0):
            self.blocks.step()
            blocks = None if blocks is None else blocks - 1
        return self.trajectory()

    def park(self) -> None:
        """Between a race's turns: hold the model weakly (BlockRun.park), so one the model cache drops is freed."""
        self.blocks.park()
        self.loaded = replace(self.loaded, model=None)  # the name, chat flag and tokenizer stay

    def resume(self, loaded: LoadedModel) -> bool:
        """Go on with `loaded` after `park`: False when its model is not the run's (loaded again meanwhile)."""
        if not self.blocks.resume(loaded.model):
            return False
        self.loaded = loaded
        return True

    def trajectory(self) -> Trajectory:
        """The blocks decoded so far, labelled with the model, the prompt and token texts."""
        traj = self.blocks.trajectory()
        traj.meta.model, traj.meta.chat = self.loaded.name, self.loaded.chat
        traj.prompt = self.prompt
        _set_token_text(self.loaded, traj)
        return traj


def check_against_ar(loaded: LoadedModel, traj: Trajectory, checked: Trajectory | None = None,
                     memo: GreedyMemo | None = None) -> Trajectory:
    """Add greedy AR's output to a Jacobi record of the same model (a separate step, so a viewer can
    show the trajectory while the check still runs). `checked`: a run of the same model, prompt ids and
    budget already checked, whose greedy output is reused instead of decoding it again; `memo`: greedy outputs
    decoded before for the same request (a visitor trying another seed or n on one prompt), reused likewise
    and given this one's."""
    key = greedy_request(traj)
    if checked is not None and checked.ar_tokens is not None and greedy_request(checked) == key:
        found = tuple(checked.ar_tokens), checked.ar_seconds
    else:
        found = memo.get(key) if memo is not None else None
    if found is None:
        ar = greedy_decode(loaded.model, traj.prompt_ids, traj.meta.max_new_tokens, loaded.eos_token_id)
        found = tuple(ar.tokens), ar.seconds
        if memo is not None:
            memo.put(key, found)
    traj.ar_tokens, traj.ar_seconds = list(found[0]), found[1]
    _set_token_text(loaded, traj)
    return traj


def greedy_request(traj: Trajectory) -> tuple:
    """What fixes a run's greedy AR output: the weights as loaded (name, dtype, device), prompt ids, budget."""
    meta = traj.meta
    return meta.model, meta.dtype, meta.device, tuple(traj.prompt_ids), meta.max_new_tokens


def both_sides(models: Sequence[LoadedModel], calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of `calls`, one per side of a race (models[i]'s): at once, a thread each, when
    parallel_sides says each has a core to itself, else one after the other."""
    if not parallel_sides(models):
        return [call() for call in calls]
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def parallel_sides(models: Sequence[LoadedModel]) -> bool:
    """Whether a race's sides may decode at once: different models (one module used from two threads would
    share its train/eval switch), on a CPU with a core for each side's intra-op threads. The app decodes with
    one such thread, so on a 2-core CPU the second core sat idle: a 64-token race of the real pair took 17 s
    instead of 28 s with its sides at once, each side ~20 % slower (they share the memory bus), measured here."""
    if len({id(m.model) for m in models}) < len(models) or any(m.model.device.type != "cpu" for m in models):
        return False
    return torch.get_num_threads() * len(models) <= usable_cores()


def start_race(models: Sequence[LoadedModel], prompt: str, configs: Sequence[JacobiConfig]) -> list[PromptRun]:
    """Both sides' runs of a race (models[i] with configs[i]), prefilled, to advance with advance_race."""
    return both_sides(models, [lambda m=m, c=c: PromptRun.start(m, prompt, c) for m, c in zip(models, configs)])


def advance_race(models: Sequence[LoadedModel], runs: Sequence[PromptRun], blocks: int | None = None) -> Race:
    """The race so far after up to `blocks` more blocks of each side (all that are left when None), both sides
    at once where parallel_sides allows. Its greedy check is apart (check_against_ar)."""
    trajs = both_sides(models, [lambda r=r: r.advance(blocks) for r in runs])
    return Race(*trajs, title=default_title(runs[0].prompt))


def decode_race(base: LoadedModel, cllm: LoadedModel, prompt: str, config: JacobiConfig, title: str = "") -> Race:
    """Both models' runs of one prompt, each checked against its greedy AR output."""
    runs = [decode_prompt(m, prompt, config, check_ar=True) for m in (base, cllm)]
    return Race(runs[0], runs[1], title or default_title(prompt))


def _set_token_text(loaded: LoadedModel, traj: Trajectory) -> None:
    drafted = [t for b in traj.blocks for pass_drafts in (b.drafts or []) for d in pass_drafts for t in d]
    used = traj.prompt_ids + [t for b in traj.blocks for s in b.states for t in s] + (traj.ar_tokens or []) + drafted
    traj.token_text = token_text(loaded.tokenizer, used)


def decode_json(traj: Trajectory) -> dict:
    """A run as `decode --json` prints it."""
    summary = run_summary(traj)
    out = {
        "model": traj.meta.model, "prompt": traj.prompt, "prompt_ids": traj.prompt_ids, "tokens": traj.tokens,
        "text": traj.text_of(traj.tokens), "decoder": traj.meta.decoder, "options": traj.meta.options,
        "chat": traj.meta.chat, "n": traj.meta.n, "seed": traj.meta.seed, "init": traj.meta.init,
        "device": traj.meta.device, "dtype": traj.meta.dtype,
        "forward_passes": summary["forward_passes"], "tpf": summary["tpf"],
        "eos_token_id": traj.meta.eos_token_id,
        # the surplus: tokens beyond the first each pass commits, summed (plain model ≈ 0)
        "fast_forwarded": summary["fast_forwarded"],
        "ff_rate": finite_or_none(summary["ff_rate"]),  # the paper's per-pass rate, Table 3's quantity (plain model ≈ 1.0)
        "stationary": summary["stationary"],
        "decode_seconds": summary["decode_seconds"],
        "blocks": [{"states": b.states, "fixed_point": b.fixed_point, "iteration_seconds": b.iteration_seconds}
                   | ({"drafts": b.drafts, "winners": b.winners, "gains": b.gains} if b.drafts is not None else {})
                   for b in traj.blocks],
    }
    if traj.ar_tokens is not None:
        out |= {"ar_tokens": traj.ar_tokens, "matches_ar": traj.matches_ar, "ar_seconds": traj.ar_seconds}
    return out
