"""collect under torchrun: disjoint shares, one shard series per rank, rank 0's meta; the same records as
one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from cllm.training.collect import CollectConfig, Ranks, collect
from cllm.training.report import JobHooks
from cllm.training.dataset import read_meta, read_shard_records, shard_paths
from cllm.models import load_model

PROMPTS = ["def add(a, b):", "for i in range(", "class Point:", "print(", "import os", "while True:", "x = [", "if x:"]


def records(folder):
    return sorted((r for p in shard_paths(folder) for r in read_shard_records(p)), key=lambda r: r["prompt_index"])


def test_ranks_share_prompts_disjointly():
    shares = [[k for k in range(10) if Ranks(r, 3).owns(k)] for r in range(3)]
    assert sorted(sum(shares, [])) == list(range(10)) and shares[1] == [1, 4, 7]


def test_two_process_collect_records_each_prompt_once(tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    single = tmp_path / "single"
    collect(load_model(str(tiny_model_dir), "cpu"), prompts, single, CollectConfig(n=4, max_new_tokens=10,
                                                                                 batch_size=2), JobHooks(progress=False))
    multi = tmp_path / "multi"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "cllm", "collect", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(multi),
           "--block-size", "4", "--max-new-tokens", "10", "--batch-size", "2", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in shard_paths(multi))
    assert names == ["shard-00000-r0.jsonl", "shard-00000-r1.jsonl"]
    meta = read_meta(multi)
    assert meta["world_size"] == 2 and meta["counts"]["per_rank"] == {"0": 4, "1": 4}
    assert meta["counts"]["prompts"] == len(PROMPTS)
    assert records(multi) == records(single)  # prompt k's guesses are seeded with seed + k, wherever it runs


def test_two_process_train_writes_one_model(tiny_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    data = tmp_path / "data"
    collect(load_model(str(tiny_model_dir), "cpu"), prompts, data, CollectConfig(n=4, max_new_tokens=10), JobHooks(progress=False))
    out = tmp_path / "trained"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29534",
           "-m", "cllm", "train", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out),
           "--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--device", "cpu", "--eval-count", "2",
           "--eval-max-new-tokens", "4", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    infos = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".trained")]  # no second, half-written copy
    assert len(infos) == 1 and infos[0]["steps"] == 2  # the main process reports; the other rank is silent
