"""CLLMs trained in the app: a folder of HF-format models (runs/trained/<name>/, or CLLM_TRAINED_DIR), each
with its model card and training record (cllm_training.json: base model, block size n, TPF before/after).
The Explore tab offers every one of them as a pair with its base. Names follow the gallery's rule (a plain
word: no path parts), and a saved model is never overwritten.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cllm.training.checkpoint import save_pretrained_atomic
from cllm.files import read_capped_text
from cllm.models import REPO_ROOT
from cllm.race import check_name
from cllm.training.cards import RECORD_SCHEMA, TRAINING_RECORD, model_card, training_record
from cllm.training.report import FitReport

TRAINED_DIR = REPO_ROOT / "runs" / "trained"  # runs/ is gitignored: user models never end up in git
MAX_RECORD_BYTES = 64 * 1024


@dataclass(frozen=True)
class TrainedModel:
    name: str  # the folder's name
    path: Path
    base_model: str  # as it was named when training started (registry name, folder or hub id)
    n: int  # the block size it was trained for
    tpf_before: float | None
    tpf_after: float | None


def trained_dir() -> Path:
    return Path(os.environ.get("CLLM_TRAINED_DIR") or TRAINED_DIR)


def trained_path(name: str, folder: Path | None = None) -> Path:
    """Where the model called `name` lives; the name is checked first (a RaceError says why not)."""
    return (folder or trained_dir()) / check_name(name)


def save_trained(model, tokenizer, name: str, report: FitReport, folder: Path | None = None) -> Path:
    """Save atomically (weights, tokenizer, card, training record) under a new name; an existing one is refused."""
    out = trained_path(name, folder)
    try:
        return save_pretrained_atomic(model, tokenizer, out, model_card(report), {TRAINING_RECORD: training_record(report)},
                                      replace=False)
    except FileExistsError:
        raise ValueError(f"a trained model named {out.name!r} already exists; choose another name") from None


def read_trained(path: Path) -> TrainedModel:
    """A trained model's folder, checked: it has a config and a readable training record (ValueError if not)."""
    record_path = path / TRAINING_RECORD
    if not (path / "config.json").is_file() or not record_path.is_file():
        raise ValueError(f"{path} holds no model trained by this project")
    try:
        record = json.loads(read_capped_text(record_path, MAX_RECORD_BYTES))
    except (json.JSONDecodeError, RecursionError):
        raise ValueError(f"{record_path} is not valid JSON") from None
    ok = (isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA and isinstance(record.get("base_model"), str)
          and isinstance(record.get("n"), int) and record["n"] >= 1)
    if not ok:
        raise ValueError(f"{record_path} is not a training record (needs schema, base_model and n)")
    return TrainedModel(path.name, path, record["base_model"], record["n"], _tpf(record.get("before")),
                        _tpf(record.get("after")))


def trained_note(model: str) -> str:
    """One line on a model saved from the Train tab, named by its folder (as the Explore pair picker names it);
    "" for anything else. Only folders directly under trained_dir() are read: the name may come from a file."""
    path = Path(model)
    try:
        if path.parent.resolve() != trained_dir().resolve():
            return ""
        t = read_trained(path)
    except (ValueError, OSError):
        return ""
    tpf = f", held-out TPF {t.tpf_before:.2f} → {t.tpf_after:.2f}" if t.tpf_before and t.tpf_after else ""
    return f"a CLLM trained in this app's Train tab from {t.base_model} (n = {t.n}{tpf})"


def list_trained(folder: Path | None = None) -> list[TrainedModel]:
    """Every valid trained model in the folder, by name; folders that are not one are left out."""
    folder = folder or trained_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found.append(read_trained(path))
        except (ValueError, OSError):
            continue
    return found


def _tpf(measured) -> float | None:
    value = measured.get("tpf") if isinstance(measured, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
