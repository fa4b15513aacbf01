"""Unlikelihood fine-tuning: which tokens are flagged, what the loss pushes, and a run end to end."""
from __future__ import annotations

from dataclasses import replace

import torch

from cllm.models import load_model
from cllm.training.unlikelihood import (UnlikelihoodConfig, continuation_loss, left_padded, repeated_line_flags,
                               run_unlikelihood, unlikelihood_loss, until_eos)


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


def test_continuation_loss_with_left_padding_equals_the_unpadded_rows(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), "cpu")
    model, pad = loaded.model, loaded.eos_token_id
    prompts = [loaded.tokenizer("def add(a, b):\n    return").input_ids, loaded.tokenizer("for").input_ids]
    cont = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    flags = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    ids, mask = left_padded(prompts, pad, "cpu")
    batched = continuation_loss(model, ids, mask, cont, flags)
    rows = []
    for i, p in enumerate(prompts):  # each row alone, no padding: per-row sums add up to the batch's mean
        one_ids, one_mask = left_padded([p], pad, "cpu")
        rows.append(continuation_loss(model, one_ids, one_mask, cont[i:i + 1], flags[i:i + 1]) * flags[i].sum())
    assert torch.allclose(batched, sum(rows) / flags.sum(), atol=1e-5)
    assert batched.item() > 0
    batched.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_continuation_loss_reads_the_logits_that_predict_each_token(tiny_model_dir):
    """Against a direct computation: the token at continuation position k is predicted at input position P-1+k."""
    loaded = load_model(str(tiny_model_dir), "cpu")
    prompt = loaded.tokenizer("class Point:").input_ids
    cont, flags = torch.tensor([[7, 3, 9]]), torch.tensor([[0.0, 0.0, 1.0]])
    ids, mask = left_padded([prompt], loaded.eos_token_id, "cpu")
    with torch.no_grad():
        got = continuation_loss(loaded.model, ids, mask, cont, flags)
        logits = loaded.model(input_ids=torch.tensor([prompt + [7, 3, 9]])).logits[0]
        p = logits[len(prompt) + 1].softmax(-1)[9]  # the logit row that predicts the third continuation token
    assert torch.allclose(got, -torch.log(1 - p), atol=1e-5)


def test_run_changes_the_weights_and_skips_unlikelihood_updates_with_nothing_flagged(tiny_model_dir, monkeypatch):
    import cllm.training.unlikelihood as ul

    text_ids = load_model(str(tiny_model_dir), "cpu").tokenizer("def add(a, b):\n    return a + b\n" * 20).input_ids
    text = torch.tensor(text_ids)
    config = UnlikelihoodConfig(steps=1, batch_size=2, text_tokens=16, new_tokens=8, lr=1e-3)
    prompts = [[1, 2, 3], [4, 5]]
    one = load_model(str(tiny_model_dir), "cpu")
    before = [p.detach().clone() for p in one.model.parameters()]
    run_unlikelihood(one, text, prompts, config)  # one MLE update
    assert any(not torch.equal(a, b) for a, b in zip(before, one.model.parameters()))
    assert not one.model.training
    monkeypatch.setattr(ul, "unlikelihood_step_loss", lambda *a: None)  # nothing loops
    two = load_model(str(tiny_model_dir), "cpu")
    seen = []
    result = run_unlikelihood(two, text, prompts, replace(config, steps=2), progress=lambda d, t: seen.append((d, t)))
    assert result["skipped"] == 1 and seen[-1] == (2, 2)
    assert [h["kind"] for h in result["history"]] == ["mle"]
    # the skipped update moved nothing: AdamW's momentum from the MLE step was not applied again
    assert all(torch.equal(a, b) for a, b in zip(one.model.parameters(), two.model.parameters()))


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


def test_the_cards_command_line_parses_back_to_its_config():
    """The model card's command is the config spelled as flags: run again, it means the same settings."""
    import shlex
    from types import SimpleNamespace

    from cllm.cli import build_parser
    from cllm.options import given
    from cllm.training.unlikelihood import UnlikelihoodConfig
    from cllm.training.unlikelihood_run import command_line
    config = UnlikelihoodConfig(steps=7, lr=3e-5, alpha=0.25, batch_size=4, seed=2)
    line = command_line(SimpleNamespace(model="m", out="o", text="t.txt", prompts="p.jsonl", heldout="h.jsonl"), config)
    args = build_parser().parse_args(shlex.split(line)[3:])
    assert UnlikelihoodConfig(**given(args, UnlikelihoodConfig)) == config
    assert (args.model, args.out, args.text, args.prompts, args.heldout) == ("m", "o", "t.txt", "p.jsonl", "h.jsonl")
