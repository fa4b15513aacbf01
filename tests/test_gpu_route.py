"""The GPU route's wheel pieces (assets/recipes/smollm2/gpu-*.sh; README, "The GPU route"): a file split by
gpu-prepare.sh, carried one piece per call, gathers in one folder with each piece checked (gpu-piece.sh) and
joins back into the same bytes (gpu-piece.sh --join, as gpu.sh joins the wheel); a damaged or missing piece
fails at once with one clear line. Small fake files: no PyPI, no GPU."""
from __future__ import annotations

import hashlib
import random
import shutil
import subprocess

import pytest

from cllm.models import REPO_ROOT

RECIPES = REPO_ROOT / "assets" / "recipes" / "smollm2"
pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("bash", "split", "sha256sum")),
                                reason="needs bash and coreutils")


def sh(*argv, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", *map(str, argv)], env=env, capture_output=True, text=True, timeout=60)
    assert not check or done.returncode == 0, done.stderr
    return done


def test_pieces_carried_one_call_at_a_time_join_back_to_the_same_file(tmp_path):
    data = random.Random(0).randbytes(100_000)
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    wheel.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    env = {"PATH": "/usr/bin:/bin", "PIECE": "40k", "PIECES_DIR": str(tmp_path / "gathered")}
    split = tmp_path / "pieces"
    sh(RECIPES / "gpu-prepare.sh", "--split", wheel, split, env=env)
    pieces = sorted(split.glob("*.part*"))
    assert [p.name for p in pieces] == [f"{wheel.name}.part{i}" for i in range(3)]
    assert all(p.stat().st_size <= 40 * 1024 for p in pieces)

    device = tmp_path / "device"  # the working tree a call brings: the scripts, and the one piece carried
    shutil.copytree(RECIPES, device / "assets" / "recipes" / "smollm2")
    for piece in pieces:
        shutil.rmtree(device / ".whl", ignore_errors=True)
        (device / ".whl" / "pieces").mkdir(parents=True)
        for f in (piece, split / "SHA256SUMS"):
            shutil.copy(f, device / ".whl" / "pieces")
        assert piece.name in sh(device / "assets/recipes/smollm2/gpu-piece.sh", env=env).stdout
    joined = tmp_path / "wheels" / wheel.name
    sh(device / "assets/recipes/smollm2/gpu-piece.sh", "--join", wheel.name, joined, want, env=env)
    assert joined.read_bytes() == data

    (tmp_path / "gathered" / pieces[1].name).unlink()  # a call that never happened (the machine went cold)
    missing = sh(device / "assets/recipes/smollm2/gpu-piece.sh", "--join", wheel.name, joined, want, env=env, check=False)
    assert missing.returncode == 1 and "a piece is missing" in missing.stderr and not joined.exists()

    with open(tmp_path / "gathered" / pieces[0].name, "ab") as f:  # a damaged transfer
        f.write(b"x")
    damaged = sh(device / "assets/recipes/smollm2/gpu-piece.sh", env=env, check=False)
    assert damaged.returncode == 1 and "does not match SHA256SUMS" in damaged.stderr
