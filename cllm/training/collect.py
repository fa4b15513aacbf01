"""Collect consistency data: Jacobi-decode a prompt set with the target model (batched) and record every
block's trajectory, cleaned and augmented as in the CLLM paper. The folder format is in cllm/training/dataset.py.

Resumable: meta.json (with the options) is written before the first shard; prompts are decoded in shards
of `shard_prompts`; each shard is written whole and atomically, then meta.json is rebuilt from the shards.
A rerun with the same options skips the prompts already in a shard. Prompt k's initial guesses are seeded
with seed + k, so the data does not depend on the batch size or on where a run was interrupted.

A caller that shows progress (the app's Train tab) passes `on_progress`, called after every batch with the
running counts, and `stop`, a threading.Event checked before every batch: a stopped collection writes the
prompts decoded so far as a shard and returns, so it can be trained on (or resumed) like any other.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cllm.training.dataset import (FORMAT_NOTE, META, SCHEMA, SCHEMA_VERSION, DatasetError, read_meta, read_shard_records,
                          shard_name, shard_paths)
from cllm.jacobi import INITS, JacobiConfig, check_inputs, check_seed, context_limit
from cllm.jacobi_batch import jacobi_decode_batch
from cllm.models import LoadedModel
from cllm.options import Flags
from cllm.training.report import JobHooks
from cllm.prompts import prompt_token_ids, read_prompts
from cllm.stats import has_repeat
from cllm.trajectory import Trajectory, atomic_write_text

# Options that must not change between a run and its resumption (they change what a record means).
FIXED_OPTIONS = ("model", "n", "max_new_tokens", "init", "seed", "clean", "augment", "repeat_run", "repeat_period",
                 "prompts_file", "chat", "dtype")
LATER_OPTIONS = {"chat": False, "dtype": "float32"}  # added after datasets existed: a meta without one was collected with this value
# `python -m cllm collect`'s spelling of the fields whose flags are not --field-name
COLLECT_FLAGS = Flags(names={"n": ("--n", "--block-size"), "repeat_period": ("--clean-period",)},
                      choices={"init": INITS}, skip=("repeat_run", "shard_prompts"))


@dataclass(frozen=True)
class CollectConfig:
    # A field's trailing comment is its `collect --help` (cllm.options); comment lines above it say why.
    n: int = 16  # block size (the CLLM is trained for this n)
    max_new_tokens: int = 256  # tokens generated per prompt (64 keeps a CPU collection fast)
    batch_size: int = 8  # prompts Jacobi-decoded together (cllm.jacobi_batch)
    seed: int = 0  # prompt k's initial guesses use seed + k
    init: str = "prompt"  # initial guess of each block (the authors draw from the prompt)
    clean: bool = True  # drop blocks stuck in repetition (10 equal tokens in a row; see has_repeat)
    # augmentation adds, per state, one state with a random half of its wrong tokens corrected
    augment: bool = True  # add extra states with half the wrong tokens corrected
    repeat_run: int = 10  # the authors' cleaning threshold: 10 tokens
    # 4 also drops loops such as "#\n#\n#\n..." or "name, name, name" (a small model's greedy text is full of them)
    repeat_period: int = 1  # also drop 10-token loops of period up to P (1: the authors' rule)
    shard_prompts: int = 64  # prompts per shard: the unit of atomic writes and of resuming
    chat: bool = False  # wrap each prompt in the chat template (instruct models)
    limit: int | None = None  # use the first K prompts (later training rounds take the next ones)

    def __post_init__(self):
        for name in ("n", "max_new_tokens", "batch_size", "repeat_run", "repeat_period", "shard_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}")
        check_seed(self.seed)


def augment_states(states: list[list[int]], rng: random.Random) -> list[list[int]]:
    """Per intermediate state with >= 2 wrong tokens: a copy with a random half of them set to the fixed
    point's. New states only (none equal to a recorded one)."""
    fixed, seen, out = states[-1], {tuple(s) for s in states}, []
    for state in states[:-1]:
        wrong = [i for i, (a, b) in enumerate(zip(state, fixed)) if a != b]
        if len(wrong) < 2:
            continue
        new = list(state)
        for i in rng.sample(wrong, len(wrong) // 2):
            new[i] = fixed[i]
        if tuple(new) not in seen:
            seen.add(tuple(new))
            out.append(new)
    return out


def trajectory_record(index: int, traj: Trajectory, config: CollectConfig) -> dict:
    """One prompt's shard line: its output and its blocks, cleaned and augmented per the config."""
    output, blocks, start, dropped = traj.tokens, [], 0, 0
    for b, block in enumerate(traj.blocks):
        context = traj.prompt_ids + output[:start]
        if config.clean and has_repeat(context + block.fixed_point, config.repeat_run, config.repeat_period):
            dropped += 1
        else:
            rng = random.Random(f"{config.seed}:{index}:{b}")  # str seeds hash stably across runs
            extra = augment_states(block.states, rng) if config.augment else []
            blocks.append({"start": start, "states": block.states, "augmented": extra})
        start += block.width
    return {"prompt_index": index, "prompt_ids": traj.prompt_ids, "output": output, "blocks": blocks,
            "dropped": dropped}


def _decode_shard(loaded: LoadedModel, prompts: dict[int, str], config: CollectConfig,
                  report: Callable[[list[dict]], None], stop: threading.Event | None = None) -> list[dict]:
    """Records of the given prompts (index -> text), decoded in batches; `report` gets each batch's records.
    A set `stop` ends it before the next batch (the records so far are returned)."""
    jconfig = JacobiConfig(n=config.n, max_new_tokens=config.max_new_tokens, seed=config.seed, init=config.init)
    records, ready = [], []
    for k, text in prompts.items():
        try:
            ids = prompt_token_ids(loaded.tokenizer, text, config.chat)
            check_inputs(loaded.model, ids, config.max_new_tokens)
            ready.append((k, ids))
        except ValueError as e:  # too long for the context, or encodes to nothing: recorded, not fatal
            records.append({"prompt_index": k, "skipped": str(e)})
            report(records[-1:])
    for i in range(0, len(ready), config.batch_size):
        if stop is not None and stop.is_set():
            break
        batch = ready[i: i + config.batch_size]
        trajs = jacobi_decode_batch(loaded.model, [ids for _, ids in batch], jconfig, loaded.eos_token_id,
                                    seeds=[config.seed + k for k, _ in batch])
        done = [trajectory_record(k, t, config) for (k, _), t in zip(batch, trajs)]
        records += done
        report(done)
    return sorted(records, key=lambda r: r["prompt_index"])


class _Counter:
    """The tqdm bar and the running counts handed to `on_progress` after every batch."""

    def __init__(self, bar, total: int, done: int, on_progress: Callable[[dict], None] | None):
        self.bar, self.on_progress = bar, on_progress
        self.counts = {"prompts_done": done, "prompts_total": total, "blocks": 0, "states": 0, "augmented_states": 0}

    def __call__(self, records: list[dict]) -> None:
        self.bar.update(len(records))
        c = self.counts
        c["prompts_done"] += len(records)
        for block in (b for r in records for b in r.get("blocks", [])):
            c["blocks"], c["states"] = c["blocks"] + 1, c["states"] + len(block["states"])
            c["augmented_states"] += len(block["augmented"])
        if self.on_progress is not None:
            self.on_progress(dict(c))


def collect(loaded: LoadedModel, prompts_file: str | Path, out: str | Path, config: CollectConfig,
            hooks: JobHooks | None = None) -> dict:
    """Collect (or resume collecting) a dataset into `out`; returns its meta (with this run's figures).
    `hooks.on_collect` gets {prompts_done, prompts_total, blocks, states, augmented_states} (this run's blocks
    and states) after every batch; a set `hooks.stop` ends the collection after the current batch ("stopped":
    True); `hooks.progress` shows a progress bar."""
    from tqdm.auto import tqdm

    hooks = hooks or JobHooks()
    stop = hooks.stop

    prompts, out = read_prompts(prompts_file, config.limit), Path(out)
    context = context_limit(loaded.model)
    if context is not None and config.max_new_tokens >= context:  # every prompt would be skipped: write nothing
        raise ValueError(f"max-new-tokens {config.max_new_tokens} leaves no room for a prompt in the model's "
                         f"context of {context} tokens")
    options, ranks = _options(loaded, prompts_file, config), Ranks.from_env()
    old = _start(out, options | {"limit": config.limit}, ranks)
    done = {r["prompt_index"] for p in shard_paths(out) for r in read_shard_records(p)}
    todo = [k for k in range(len(prompts)) if k not in done and ranks.owns(k)]
    t0, tokens = time.perf_counter(), 0
    with tqdm(total=len(prompts), initial=len(prompts) - len(todo), unit="prompt", disable=not hooks.progress,
              desc="collect") as bar:
        report = _Counter(bar, len(prompts), len(prompts) - len(todo), hooks.on_collect)
        for i in range(0, len(todo), config.shard_prompts):
            if stop is not None and stop.is_set():
                break
            chunk = {k: prompts[k] for k in todo[i: i + config.shard_prompts]}
            records = _decode_shard(loaded, chunk, config, report, stop)
            tokens += sum(len(r.get("output", [])) for r in records)
            if records:
                _write_shard(out, records, ranks)
            seconds = old.get("collect_seconds", 0.0) + time.perf_counter() - t0
            if ranks.world == 1:  # with several processes rank 0 writes meta.json once all are done
                _write_meta(out, options | {"limit": config.limit, "collect_seconds": seconds})
    if ranks.world > 1:
        ranks.barrier()
        if ranks.rank == 0:
            _write_meta(out, options | {"limit": config.limit, "world_size": ranks.world,
                                        "collect_seconds": old.get("collect_seconds", 0.0) + time.perf_counter() - t0})
        ranks.barrier()
    meta = read_meta(out)
    if meta["counts"]["blocks"] == 0:
        raise DatasetError(f"collected no training blocks into {out}: every prompt was skipped or cleaned out "
                           f"({meta['counts']['skipped_prompts']} skipped, {meta['counts']['dropped_blocks']} blocks dropped)")
    run_seconds, run_prompts = time.perf_counter() - t0, report.counts["prompts_done"] - (len(prompts) - len(todo))
    return meta | {"stopped": run_prompts < len(todo), "this_run": {
        "prompts": run_prompts, "tokens": tokens, "seconds": run_seconds,
        "tokens_per_s": tokens / run_seconds if run_seconds > 0 else 0.0}}


def _options(loaded: LoadedModel, prompts_file, config: CollectConfig) -> dict:
    model = loaded.model
    return {"model": loaded.name, "n": config.n, "max_new_tokens": config.max_new_tokens, "init": config.init,
            "seed": config.seed, "clean": config.clean, "augment": config.augment, "repeat_run": config.repeat_run,
            "repeat_period": config.repeat_period, "chat": config.chat,
            "prompts_file": str(Path(prompts_file).resolve()), "vocab_size": model.get_output_embeddings().weight.shape[0],
            "eos_token_id": loaded.eos_token_id, "device": str(model.device),
            "dtype": str(model.dtype).removeprefix("torch.")}


def _check_resumable(out: Path, options: dict) -> dict:
    """The old meta when `out` is a dataset collected with the same options; {} for a new folder."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} exists and is not a folder")
    if not (out / META).exists():
        if out.exists() and any(out.iterdir()):
            raise DatasetError(f"{out} is not empty and holds no {META}: choose a new --out folder")
        return {}
    old = read_meta(out)
    changed = [f"{k} {old.get(k)!r} -> {options[k]!r}" for k in FIXED_OPTIONS
               if old.get(k, LATER_OPTIONS.get(k)) != options[k]]
    if changed:
        raise DatasetError(f"{out} was collected with other options ({'; '.join(changed)}); use a new --out folder")
    return old


def _start(out: Path, options: dict, ranks: "Ranks") -> dict:
    """The old meta of a resumed dataset ({} for a new one), after checking the options match; a new folder
    gets meta.json with the options before any shard. With several processes rank 0 does this while the
    others wait, then every rank checks."""
    if ranks.rank == 0:
        old = _check_resumable(out, options) or _write_meta(out, options)
    ranks.barrier()
    return _check_resumable(out, options) if ranks.rank else old


def _write_shard(out: Path, records: list[dict], ranks: "Ranks") -> None:
    """The next shard of this process; several processes each number their own (shard-NNNNN-rR.jsonl)."""
    mine = [p for p in shard_paths(out) if ranks.world == 1 or p.stem.endswith(f"-r{ranks.rank}")]
    number = max((int(p.stem.split("-")[1]) for p in mine), default=-1) + 1
    name = shard_name(number) if ranks.world == 1 else shard_name(number).replace(".jsonl", f"-r{ranks.rank}.jsonl")
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    atomic_write_text(out / name, text)


@dataclass(frozen=True)
class Ranks:
    """This process's place under torchrun / accelerate launch (RANK, WORLD_SIZE): prompt k belongs to rank
    k mod world, so the ranks decode disjoint shares and together every prompt exactly once."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Ranks":
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    def owns(self, k: int) -> bool:
        return k % self.world == self.rank

    def barrier(self) -> None:
        """Wait for every rank (a gloo process group, made on first need: collection needs no GPU collective)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        dist.barrier()


def _write_meta(out: Path, options: dict) -> dict:
    """meta.json from the options and the shards on disk (the shards are the truth)."""
    by_shard = {p: read_shard_records(p) for p in shard_paths(out)}
    records = [r for shard in by_shard.values() for r in shard]
    kept = [r for r in records if "skipped" not in r]
    blocks = [b for r in kept for b in r["blocks"]]
    counts = {
        "prompts": len(kept), "skipped_prompts": len(records) - len(kept), "blocks": len(blocks),
        "dropped_blocks": sum(r.get("dropped", 0) for r in kept), "states": sum(len(b["states"]) for b in blocks),
        "augmented_states": sum(len(b["augmented"]) for b in blocks),
        "generated_tokens": sum(len(r["output"]) for r in kept),
    }
    if options.get("world_size", 1) > 1:  # prompts recorded by each rank (from its shards' names)
        counts["per_rank"] = {str(r): sum(len(shard) for p, shard in by_shard.items() if p.stem.endswith(f"-r{r}"))
                              for r in range(options["world_size"])}
    meta = {"schema": SCHEMA, "version": SCHEMA_VERSION} | options | {
        "counts": counts, "shards": [p.name for p in by_shard], "format": FORMAT_NOTE}
    atomic_write_text(out / META, json.dumps(meta, indent=1))
    return meta
