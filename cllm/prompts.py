"""Prompt sets: JSON lines with a "prompt" field (other fields ignored), read with clear errors."""
from __future__ import annotations

import json
from pathlib import Path

from cllm.models import REPO_ROOT

HELDOUT_PROMPTS = REPO_ROOT / "assets" / "prompts" / "heldout.jsonl"
TRAIN_PROMPTS = REPO_ROOT / "assets" / "prompts" / "train.jsonl"  # the bundled CLLM's training prompts
MAX_PROMPT_FILE_BYTES = 5 * 1024 * 1024


def read_prompts(path: str | Path, limit: int | None = None) -> list[str]:
    path = Path(path)
    return parse_prompts(read_text(path), path.name, limit)


def read_prompt_file(path: str | Path, limit: int | None = None) -> list[str]:
    """An uploaded prompt set: JSON lines with "prompt" (.jsonl/.json), or plain text, one prompt per line."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_prompts(path, limit)
    prompts = [line for line in read_text(path).splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"{path.name} holds no prompts")
    return prompts[:limit] if limit else prompts


def read_text(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"no prompt file at {path}")
    if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_PROMPT_FILE_BYTES // 2**20} MiB")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text") from None


def parse_prompts(text: str, name: str = "prompts", limit: int | None = None) -> list[str]:
    prompts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError(f"{name} line {lineno} is not JSON (expected {{\"prompt\": \"...\"}})") from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise ValueError(f"{name} line {lineno} needs a non-empty string field \"prompt\"")
        prompts.append(item["prompt"])
        if limit is not None and len(prompts) >= limit:
            break
    if not prompts:
        raise ValueError(f"{name} holds no prompts")
    return prompts
