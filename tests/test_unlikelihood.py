"""Unlikelihood fine-tuning: which tokens are flagged, what the loss pushes, and a run end to end."""
from __future__ import annotations

import torch

from cllm.models import load_model
from cllm.unlikelihood import (UnlikelihoodConfig, repeated_line_flags, run_unlikelihood, unlikelihood_loss,
                               unlikelihood_step_loss, until_eos)


def test_flags_the_tokens_of_lines_that_repeat_an_earlier_line():
    pieces = ["x", " = 1", "\n", "y", "\n", "  x", " = 1\n", "\n", "x = 1", "\n", "y"]
    # line "x = 1" (tokens 0-2), "y" (3-4), "x = 1" again (5-6), a blank line (7), "x = 1" (8-9), "y" unclosed (10)
    assert repeated_line_flags(pieces) == [0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1]


def test_no_flags_without_repeats_and_blank_lines_never_flag():
    assert repeated_line_flags(["a", "\n", "b", "\n", "c"]) == [0] * 5
    assert repeated_line_flags(["\n", "  \n", "\n"]) == [0, 0, 0]
    assert repeated_line_flags([]) == []


def test_until_eos_keeps_the_eos_and_drops_what_follows():
    assert until_eos([5, 6, 2, 7, 2], 2) == [5, 6, 2]
    assert until_eos([5, 6], 2) == [5, 6]
    assert until_eos([5, 6], None) == [5, 6]


def test_loss_pushes_down_only_flagged_targets():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 10, requires_grad=True)
    targets = torch.tensor([[1, 2, 3, 4]])
    flags = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    unlikelihood_loss(logits, targets, flags).backward()
    grad = logits.grad[0]
    assert grad[1, 2] > 0  # gradient descent lowers the flagged target's logit
    assert torch.all(grad[[0, 2, 3]] == 0)  # unflagged positions get no push at all
    assert unlikelihood_loss(logits, targets, torch.zeros(1, 4)).item() == 0.0


def test_loss_grows_as_the_flagged_token_becomes_likely():
    targets, flags = torch.tensor([[0]]), torch.tensor([[1.0]])
    unlikely = unlikelihood_loss(torch.tensor([[[-5.0, 0.0]]]), targets, flags)
    likely = unlikelihood_loss(torch.tensor([[[5.0, 0.0]]]), targets, flags)
    assert 0 < unlikely < 0.01 < likely


def test_step_loss_is_finite_and_reaches_the_weights_exactly_when_something_is_flagged(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), "cpu")
    config = UnlikelihoodConfig(new_tokens=24, alpha=1.0)
    prompts = [loaded.tokenizer("def add(a, b):\n").input_ids, loaded.tokenizer("for i in").input_ids]
    loss = unlikelihood_step_loss(loaded, prompts, config)
    assert torch.isfinite(loss) and loss.item() >= 0
    loss.backward()  # differentiable through the model
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in loaded.model.parameters()) == (loss.item() > 0)


def test_run_changes_the_weights_and_records_both_kinds_of_update(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), "cpu")
    before = [p.detach().clone() for p in loaded.model.parameters()]
    text = torch.tensor(loaded.tokenizer("def add(a, b):\n    return a + b\n" * 20).input_ids)
    prompts = [loaded.tokenizer("def add(a, b):\n").input_ids, loaded.tokenizer("class Point:").input_ids]
    config = UnlikelihoodConfig(steps=4, batch_size=2, text_tokens=16, new_tokens=8, lr=1e-3)
    seen = []
    result = run_unlikelihood(loaded, text, prompts, config, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4, 4)
    assert [h["kind"] for h in result["history"]] == ["mle", "unlikelihood"]  # steps 0 and 3 (the last)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result["history"])
    assert any(not torch.equal(a, b) for a, b in zip(before, loaded.model.parameters()))
    assert not loaded.model.training


def test_cli_saves_a_loadable_model_whose_card_says_what_was_done(tiny_model_dir, tmp_path, capsys):
    from cllm.cli import main

    (tmp_path / "text.txt").write_text("def add(a, b):\n    return a + b\n" * 30, encoding="utf-8")
    (tmp_path / "p.jsonl").write_text('{"prompt": "def add(a, b):"}\n{"prompt": "for i in"}\n', encoding="utf-8")
    out = tmp_path / "out"
    code = main(["unlikelihood", "--model", str(tiny_model_dir), "--out", str(out), "--steps", "2", "--batch-size", "2",
                 "--text", str(tmp_path / "text.txt"), "--prompts", str(tmp_path / "p.jsonl"),
                 "--heldout", str(tmp_path / "p.jsonl"), "--device", "cpu"])
    assert code == 0
    assert "2 updates" in capsys.readouterr().out
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Unlikelihood fine-tuning" in card and "--steps 2" in card and "### Samples after fine-tuning" in card
    assert load_model(str(out), "cpu").model.config.vocab_size == load_model(str(tiny_model_dir), "cpu").model.config.vocab_size
