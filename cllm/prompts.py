"""Prompt sets: JSON lines with a "prompt" field (other fields ignored), read with clear errors."""
from __future__ import annotations

import json
from pathlib import Path

from cllm.files import json_lines, read_capped_text
from cllm.models import REPO_ROOT
from cllm.trajectory import atomic_write_text

HELDOUT_PROMPTS = REPO_ROOT / "assets" / "prompts" / "heldout.jsonl"  # the bundled pair's held-out set
CODE_HELDOUT_PROMPTS = REPO_ROOT / "assets" / "prompts" / "code-heldout.jsonl"  # the real pair's
TRAIN_PROMPTS = REPO_ROOT / "assets" / "prompts" / "train.jsonl"  # the bundled CLLM's training prompts
MAX_PROMPT_FILE_BYTES = 5 * 1024 * 1024
MAX_PROMPT_CHARS = 20_000  # a typed prompt or one line of a prompt file; far beyond any bundled model's context


def check_prompt(prompt: str, where: str = "the prompt") -> None:
    """Cheap checks, worth doing before a model is loaded (a typed prompt and every prompt of a file)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where} is empty: type some text to continue")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"{where} is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes in argv, or "\ud800" in JSON
        raise ValueError(f"{where} is not valid text (it holds bytes that are not UTF-8 characters)") from None


def prompt_token_ids(tokenizer, prompt: str, chat: bool = False) -> list[int]:
    """The ids a model is fed for `prompt`: the text itself (raw completion), or with `chat` the tokenizer's
    chat template around it as one user turn, ending where the assistant's answer begins."""
    if not chat:
        return tokenizer(prompt).input_ids
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model's tokenizer has no chat template: turn the chat option off")
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids  # the template already holds the special tokens


def read_prompts(path: str | Path, limit: int | None = None) -> list[str]:
    path = Path(path)
    return parse_prompts(read_text(path), path.name, limit)


def write_prompts(path: Path, prompts) -> None:
    """JSON lines with a "prompt" field, as read_prompts reads them; written atomically."""
    write_prompt_records(path, [{"prompt": p} for p in prompts])


def write_prompt_records(path: Path, records: list[dict]) -> None:
    """JSON lines, each with a "prompt" field and any others (e.g. "source"); written atomically."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def read_prompt_file(path: str | Path, limit: int | None = None) -> list[str]:
    """An uploaded prompt set: JSON lines with "prompt" (.jsonl/.json), or plain text, one prompt per line."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_prompts(path, limit)
    lines = [(lineno, line) for lineno, line in enumerate(text_lines(read_text(path)), 1) if line.strip()][:limit]
    if not lines:
        raise ValueError(f"{path.name} holds no prompts")
    for lineno, line in lines:
        check_prompt(line, f"{path.name} line {lineno}")
    return [line for _, line in lines]


def read_text(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"no prompt file at {path}")
    return read_capped_text(path, MAX_PROMPT_FILE_BYTES)


def text_lines(text: str) -> list[str]:
    """Lines split at \\n only (dropping a \\r before it): str.splitlines also splits at form feeds, U+2028 and
    other characters that JSON strings and Python source may hold."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_prompts(text: str, name: str = "prompts", limit: int | None = None) -> list[str]:
    prompts = []
    for lineno, item in json_lines(text, name, expected='JSON (expected {"prompt": "..."})'):
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise ValueError(f"{name} line {lineno} needs a non-empty string field \"prompt\"")
        check_prompt(item["prompt"], f"{name} line {lineno}'s prompt")
        prompts.append(item["prompt"])
        if limit is not None and len(prompts) >= limit:
            break
    if not prompts:
        raise ValueError(f"{name} holds no prompts")
    return prompts
