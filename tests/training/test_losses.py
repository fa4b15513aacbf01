"""The CLLM losses on made-up tensors and on a tiny model: zero at the fixed point, masking, stop-gradient."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cllm.training.losses import IGNORE, ar_loss, consistency_loss, first_difference, teachable_mask, total_loss
from conftest import VOCAB, tiny_model


def test_first_difference_and_teachable_mask():
    state = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [9, 2, 3, 4]])
    target = torch.tensor([[1, 2, 3, 4], [1, 2, 7, 4], [1, 2, 3, 4]])
    valid = torch.tensor([[True] * 4, [True] * 4, [True, True, True, False]])
    assert first_difference(state, target).tolist() == [4, 2, 0]
    assert teachable_mask(state, target, valid).tolist() == [
        [False] * 4,  # the state is the target: nothing to teach
        [False, False, False, True],  # positions <= 2 see the same prefix in both passes
        [False, True, True, False],  # the pad (last) position never counts
    ]


def test_zero_when_the_state_is_the_fixed_point():
    model = tiny_model("llama")
    context, fixed = [5, 6, 7], [1, 2, 3, 4]
    logits = model(input_ids=torch.tensor([context + fixed[:-1]])).logits[:, len(context) - 1:]  # (1, 4, V)
    state = torch.tensor([fixed])
    mask = teachable_mask(state, state, torch.ones(1, 4, dtype=torch.bool))
    assert not mask.any()
    assert consistency_loss(logits, logits, mask).item() == 0.0
    everywhere = torch.ones(1, 4, dtype=torch.bool)  # even unmasked, KL of a distribution with itself is 0
    assert abs(consistency_loss(logits, logits, everywhere).item()) < 1e-12


def test_masked_positions_do_not_count():
    gen = torch.Generator().manual_seed(0)
    student, target = torch.randn(2, 5, VOCAB, generator=gen), torch.randn(2, 5, VOCAB, generator=gen)
    mask = torch.tensor([[False, True, True, False, False], [False, False, False, True, False]])
    loss = consistency_loss(student, target, mask)
    changed = student.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), VOCAB, generator=gen)  # scramble masked-out positions
    assert torch.allclose(consistency_loss(changed, target, mask), loss)
    kl = F.kl_div(F.log_softmax(student, -1), F.log_softmax(target, -1), log_target=True, reduction="none").sum(-1)
    assert torch.allclose(loss, kl[mask].mean())  # forward KL(target || student), mean over masked-in positions
    assert consistency_loss(student, target, torch.zeros_like(mask)).item() == 0.0


def test_gradients_flow_only_through_the_student():
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(2, 3, VOCAB, generator=gen, requires_grad=True)
    target = torch.randn(2, 3, VOCAB, generator=gen, requires_grad=True)
    consistency_loss(student, target, torch.ones(2, 3, dtype=torch.bool)).backward()
    assert target.grad is None and student.grad.abs().sum() > 0
    # Same gradient as the authors' soft cross-entropy against the detached target.
    copy = student.detach().clone().requires_grad_()
    soft_ce = -(F.softmax(target.detach(), -1) * F.log_softmax(copy, -1)).sum(-1).mean()
    soft_ce.backward()
    assert torch.allclose(copy.grad, student.grad)


def test_gradients_reach_the_model_only_from_the_student_pass():
    """Through a model: the target pass (same model, detached) adds no gradient of its own."""
    model = tiny_model("qwen2")
    context, state, fixed = [3, 4], [9, 9, 9], [1, 2, 3]
    student = model(input_ids=torch.tensor([context + state[:-1]])).logits[:, 1:]
    target = model(input_ids=torch.tensor([context + fixed[:-1]])).logits[:, 1:]
    mask = teachable_mask(torch.tensor([state]), torch.tensor([fixed]), torch.ones(1, 3, dtype=torch.bool))
    consistency_loss(student, target, mask).backward()  # target still attached to the graph here
    as_given = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    student = model(input_ids=torch.tensor([context + state[:-1]])).logits[:, 1:]
    consistency_loss(student, target.detach(), mask).backward()  # target explicitly cut off
    assert all(torch.equal(a, p.grad) for a, p in zip(as_given, model.parameters()))
    assert any(a.abs().sum() > 0 for a in as_given)


def test_ar_loss_and_total():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, VOCAB, generator=gen, requires_grad=True)
    labels = torch.tensor([[3, 4, IGNORE, IGNORE], [IGNORE, 1, 2, 5]])
    loss = ar_loss(logits, labels)
    keep = labels != IGNORE
    assert torch.allclose(loss, F.cross_entropy(logits[keep], labels[keep]))
    assert ar_loss(logits, labels, label_smoothing=0.1).item() != loss.item()
    none = ar_loss(logits, torch.full((2, 4), IGNORE))
    assert none.item() == 0.0 and none.requires_grad
    assert total_loss(torch.tensor(1.5), torch.tensor(0.25), 10.0).item() == 4.0
