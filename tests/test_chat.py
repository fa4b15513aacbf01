"""Instruct prompts: the chat template wraps a prompt as a user turn in decode and collect."""
from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer

from cllm.cli import main
from cllm.training.collect import CollectConfig, collect
from cllm.training.report import JobHooks
from cllm.training.dataset import DatasetError, read_shard_records, shard_paths
from cllm.models import load_model
from cllm.prompts import prompt_token_ids

TEMPLATE = ("{% for m in messages %}<|eos|>{{ m['role'] }}\n{{ m['content'] }}<|eos|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|eos|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-chat")
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    return folder


def test_chat_ids_are_the_template_around_the_prompt(chat_model_dir):
    tok = AutoTokenizer.from_pretrained(chat_model_dir)
    ids = prompt_token_ids(tok, "add two numbers", chat=True)
    assert tok.decode(ids) == "<|eos|>user\nadd two numbers<|eos|>\n<|eos|>assistant\n"
    assert prompt_token_ids(tok, "add two numbers") == tok("add two numbers").input_ids  # raw stays raw


def test_no_template_is_a_clear_error(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ValueError, match="no chat template"):
        prompt_token_ids(tok, "hello", chat=True)


def test_collect_with_chat_records_templated_prompts(chat_model_dir, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "def add(a, b):"}) + "\n")
    loaded = load_model(str(chat_model_dir), "cpu")
    meta = collect(loaded, prompts, tmp_path / "d", CollectConfig(n=4, max_new_tokens=8, chat=True), JobHooks(progress=False))
    assert meta["chat"] is True
    (record,) = read_shard_records(shard_paths(tmp_path / "d")[0])
    assert record["prompt_ids"] == prompt_token_ids(loaded.tokenizer, "def add(a, b):", chat=True)
    with pytest.raises(DatasetError, match="chat True -> False"):  # resuming must not mix the two encodings
        collect(loaded, prompts, tmp_path / "d", CollectConfig(n=4, max_new_tokens=8), JobHooks(progress=False))


def test_decode_cli_chat(chat_model_dir, capsys):
    assert main(["decode", "--model", str(chat_model_dir), "--prompt", "hi", "--chat", "--n", "4",
                 "--max-new-tokens", "6", "--json", "--check-ar"]) == 0
    out = json.loads(capsys.readouterr().out)
    tok = AutoTokenizer.from_pretrained(chat_model_dir)
    assert out["prompt"] == "hi" and out["prompt_ids"] == prompt_token_ids(tok, "hi", chat=True)
    assert out["matches_ar"] is True


def test_chat_runs_record_it_and_round_trip(chat_model_dir, tmp_path):
    from cllm.decode import decode_prompt
    from cllm.jacobi import JacobiConfig
    from cllm.trajectory import TrajectoryError, load_trajectory, save_trajectory

    loaded = load_model(str(chat_model_dir), "cpu")
    traj = decode_prompt(loaded.as_chat(), "hi", JacobiConfig(n=4, max_new_tokens=6))
    assert traj.meta.chat and not loaded.chat  # the cached model is not changed
    assert traj.prompt_ids == prompt_token_ids(loaded.tokenizer, "hi", chat=True)
    save_trajectory(traj, tmp_path / "t.json")
    assert load_trajectory(tmp_path / "t.json").meta.chat is True
    data = json.loads((tmp_path / "t.json").read_text())
    data["meta"]["chat"] = "yes"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(TrajectoryError, match="meta.chat must be true or false"):
        load_trajectory(tmp_path / "bad.json")


@pytest.mark.parametrize("command", ["bench", "stats"])
def test_bench_and_stats_pass_chat_to_every_model(chat_model_dir, tmp_path, monkeypatch, command):
    import cllm.bench
    import cllm.evaluate

    seen = []

    def capture(models, *args, **kwargs):
        seen.extend(models.values() if isinstance(models, dict) else models)
        raise ValueError("captured")
    monkeypatch.setattr(cllm.bench, "run_bench", capture)
    monkeypatch.setattr(cllm.evaluate, "compare_pair", lambda base, cllm, *a, **k: capture([base, cllm]))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    pair = ["--base", str(chat_model_dir)] + (["--cllm", str(chat_model_dir)] if command == "stats" else [])
    assert main([command, *pair, "--prompts", str(prompts), "--n", "4", "--max-new-tokens", "4", "--chat"]) == 2
    assert seen and all(m.chat for m in seen)
