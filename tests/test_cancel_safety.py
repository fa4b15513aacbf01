"""Cancel-safety: a writer SIGKILLed at a random moment (a server killed during a save, a training run killed
while it checkpoints) leaves every target absent or whole and valid, never half a file; what was saved before
stays; temp files are hidden, never listed as results, and dropped once stale.

The writers run in a forked child that saves in a loop; the parent kills it after a random delay, so the kill
lands anywhere in a write (open, partial write, fsync, rename) over many trials. The child's disk is made slow
(each write goes out in small chunks with pauses), so that a kill lands inside a write as it would on a busy
disk; a plain open-and-write in place of the atomic writes fails these tests within a few trials."""
from __future__ import annotations

import builtins
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cllm.race import Race, add_to_gallery, list_gallery, load_race, save_race
from cllm.trajectory import (STALE_TEMP_SECONDS, Block, RunMeta, Trajectory, atomic_write_text, drop_stale_temps,
                             load_trajectory, save_trajectory)
from cllm.training.budget import resume_checkpoint

TRIALS = 60
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")


def big_trajectory(mark: int, blocks: int = 200) -> Trajectory:
    """~0.2 MB of JSON, so a write takes long enough for kills to land inside it; `mark` tells versions apart."""
    meta = RunMeta(model=f"version-{mark}", n=16, max_new_tokens=16 * blocks, vocab_size=1000)
    states = [[(mark + i + j) % 1000 for i in range(16)] for j in range(4)]
    return Trajectory(meta=meta, prompt_ids=[1, 2, 3], prompt="p", title=f"v{mark}",
                      blocks=[Block(states, [0.001] * 3) for _ in range(blocks)])


class SlowWriter:
    """A text file whose writes go out 4 KiB at a time with a pause between: a slow disk, for the child only."""

    def __init__(self, file):
        self.file = file

    def write(self, text):
        for i in range(0, len(text), 4096):
            self.file.write(text[i:i + 4096])
            self.file.flush()
            time.sleep(0.0005)
        return len(text)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def slow_disk() -> None:
    """In a forked child: every file opened for writing (os.fdopen or open) becomes a SlowWriter."""
    real_fdopen, real_open = os.fdopen, builtins.open

    def writing(mode) -> bool:
        return any(c in mode for c in "wax+") and "b" not in mode

    os.fdopen = lambda fd, mode="r", *a, **k: (SlowWriter if writing(mode) else lambda f: f)(real_fdopen(fd, mode, *a, **k))
    builtins.open = lambda file, mode="r", *a, **k: (SlowWriter if writing(mode) else lambda f: f)(real_open(file, mode, *a, **k))


def kill_during(write_forever, check, trials: int = TRIALS, max_delay: float = 0.05, seed: int = 0) -> None:
    """Fork a child running `write_forever()`; once it has started writing, SIGKILL it after a random delay;
    then `check()` what it left (before the next child writes over it)."""
    rng = random.Random(seed)
    for _ in range(trials):
        started, ready = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write until killed; never return into pytest
            try:
                slow_disk()
                os.write(ready, b"1")
                write_forever()
            finally:
                os._exit(0)
        os.close(ready)
        os.read(started, 1)  # the delay counts from the first write, however slow the fork was
        os.close(started)
        time.sleep(rng.uniform(0, max_delay))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        check()


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_killed_trajectory_saves_leave_the_old_or_the_new_file(tmp_path):
    path = tmp_path / "run.json"
    versions = {m: big_trajectory(m) for m in (1, 2)}
    save_trajectory(versions[1], path)
    texts = {path.read_bytes()}
    save_trajectory(versions[2], path)
    texts.add(path.read_bytes())

    def write_forever():
        while True:
            for traj in versions.values():
                save_trajectory(traj, path)

    def check():
        assert path.read_bytes() in texts  # byte for byte one of the two versions, never a mix or a prefix
        assert visible(tmp_path) == ["run.json"]  # leftovers are hidden temp files only

    kill_during(write_forever, check)
    assert load_trajectory(path).meta.model in ("version-1", "version-2")


def test_killed_gallery_saves_never_list_half_a_race_and_keep_the_old_ones(tmp_path):
    race = Race(big_trajectory(1), big_trajectory(1), "kept")
    add_to_gallery(race, tmp_path, "keep")
    kept = (tmp_path / "keep.json").read_bytes()
    counter = iter(range(10**9))

    def write_forever():
        while True:
            k = next(counter)
            try:
                add_to_gallery(race, tmp_path, "keep")  # refused: an existing name is never replaced
            except ValueError:
                pass
            add_to_gallery(Race(big_trajectory(k), big_trajectory(k), f"r{k}"), tmp_path, f"run-{os.getpid()}-{k}")

    def check():  # each child saves new names, so what earlier kills left stays to be seen at the end
        assert (tmp_path / "keep.json").read_bytes() == kept

    kill_during(write_forever, check)
    entries = list_gallery(tmp_path)
    assert [e.error for e in entries] == [""] * len(entries)  # every listed race is whole
    assert len(entries) == len(list(tmp_path.glob("*.json")))  # and nothing else looks like a result
    for path in tmp_path.glob("run-*.json"):
        race = load_race(path)
        assert race.title == f"r{path.stem.rsplit('-', 1)[1]}" and race.base.meta.model == race.cllm.meta.model


def test_killed_race_overwrites_and_shards(tmp_path):
    """save_race (replacing) and a dataset shard written by atomic_write_text: old or new, whole."""
    race_path, shard = tmp_path / "r.json", tmp_path / "shard-00000.jsonl"
    races = [Race(big_trajectory(m), big_trajectory(m), f"t{m}") for m in (1, 2)]
    lines = ["".join(json.dumps({"prompt_index": i, "output": [m] * 500}) + "\n" for i in range(200)) for m in (1, 2)]
    save_race(races[0], race_path)
    atomic_write_text(shard, lines[0])

    def write_forever():
        while True:
            for race, text in zip(races, lines):
                save_race(race, race_path)
                atomic_write_text(shard, text)

    def check():
        assert load_race(race_path).title in ("t1", "t2") and shard.read_text() in lines

    kill_during(write_forever, check, seed=1)


def test_stale_temp_files_are_dropped_and_fresh_ones_kept(tmp_path):
    target = tmp_path / "run.json"
    stale, fresh, other = (tmp_path / ".run.json.aaa.tmp", tmp_path / ".run.json.bbb.tmp", tmp_path / ".x.json.ccc.tmp")
    for p in (stale, fresh, other):
        p.write_text("partial")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    drop_stale_temps(target)
    assert not stale.exists() and fresh.exists() and other.exists()  # only this target's, only stale ones


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    """The Trainer writes trainer_state.json last: a checkpoint without a whole one was killed mid-save."""
    for step, state in ((100, '{"global_step": 100}'), (200, '{"global_st'), (300, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert resume_checkpoint(tmp_path) == str(tmp_path / "checkpoint-100")
    assert visible(tmp_path) == ["checkpoint-100"]  # the Trainer's rotation must not count the broken ones
    assert resume_checkpoint(tmp_path / "missing") is None


CHECKPOINT_WORKER = r"""
import json, os, random, signal, sys, time
import torch
torch.set_num_threads(1)  # forked children run torch ops: keep the parent's OpenMP pool unused
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging
from cllm.training.checkpoint import recover_interrupted_swap, save_pretrained_atomic

# tqdm guards its bars with a lock shared across fork; a child killed holding it would hang this parent (an
# artefact of forking, not of a killed server), so no progress bars here.
logging.disable_progress_bar()

src, out, trials = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
model, tok = AutoModelForCausalLM.from_pretrained(src), AutoTokenizer.from_pretrained(src)
first = next(model.parameters())

def save(version):  # the weights carry the version too, so a card from one save with weights of another shows
    with torch.no_grad():
        first.fill_(version)
    save_pretrained_atomic(model, tok, out, f"version {version}")

save(0)
rng = random.Random(0)
for trial in range(trials):
    started, ready = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(ready, b"1")
            for v in range(1, 10**6):
                save(trial * 1000 + v)
        finally:
            os._exit(0)
    os.close(ready)
    os.read(started, 1)
    os.close(started)
    time.sleep(rng.uniform(0.0, 0.4))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    recover_interrupted_swap(out)  # what the next save does first
    card = (out / "README.md").read_text()
    loaded = AutoModelForCausalLM.from_pretrained(out)
    weight = next(loaded.parameters()).flatten()[0].item()
    AutoTokenizer.from_pretrained(out)
    assert card == f"version {int(weight)}", (card, weight)
    print(json.dumps({"trial": trial, "version": int(weight)}), flush=True)
print(json.dumps({"leftovers": sorted(p.name for p in out.parent.iterdir() if p.name != out.name)}))
"""


def test_killed_checkpoint_saves_leave_a_whole_model(tiny_model_dir, tmp_path):
    """save_pretrained_atomic (the train and pretrain checkpoints) killed at random moments, 10 times: the
    folder always loads, and its weights and model card come from the same save."""
    out = tmp_path / "ckpt" / "model"
    proc = subprocess.run([sys.executable, "-c", CHECKPOINT_WORKER, str(tiny_model_dir), str(out), "10"],
                          capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 11  # every trial checked: loadable, weights and card of one and the same save
    assert all(name.startswith(".") for name in rows[-1]["leftovers"])  # only hidden temp folders remain
