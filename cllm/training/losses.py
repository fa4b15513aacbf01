"""CLLM losses as pure tensor functions (no model, no Trainer): testable on CPU with made-up logits.

Consistency (global or local): at each block position i the student sees the state y (its logits come from
the model on [context, y_<i]); the target is the same model on the target sequence z ([context, z_<i]):
z = y* (global) or z = the next state y^(j+1) (local). D is the forward KL(target || student), with the
target detached (stop-gradient), so only the student side learns. Forward KL has the same gradient as the
authors' soft cross-entropy, and is exactly 0 when student and target agree, which makes it readable.

Masking: pad positions (narrow last blocks, padded batch rows) and every position whose input prefix already
equals the target's (i <= first index where y and z differ): there the two passes see the same tokens, so
the KL is 0 by construction; masking them makes the mean count only positions that can teach something.

AR loss: cross-entropy of the fixed point's tokens (the model's own greedy output, plus its context if the
caller labels it), optional label smoothing. Total = consistency + w * AR.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # label of positions the AR loss skips (PyTorch's cross_entropy convention)
LOSSES = ("global", "local")  # consistency target: the fixed point, or the next state of the trajectory
AR_SCOPES = ("sequence", "block")  # AR labels: context + fixed point, or the fixed point only


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits are upcast for the softmax; float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def first_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row, the first index where a and b differ, or their width if none. a, b: (B, W) -> (B,)"""
    differs = a != b  # (B, W)
    width = torch.full((a.shape[0],), a.shape[1], device=a.device)
    return torch.where(differs.any(-1), differs.int().argmax(-1), width)


def teachable_mask(state: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Positions where the student's input prefix differs from the target's: i > first difference.
    state, target: (B, W) block token ids; valid: (B, W) bool (False on pads). Returns (B, W) bool."""
    positions = torch.arange(state.shape[1], device=state.device)[None]  # (1, W)
    return valid & (positions > first_difference(state, target)[:, None])


def consistency_loss(student_logits: torch.Tensor, target_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean forward KL(softmax(target) || softmax(student)) over masked-in positions.
    student_logits, target_logits: (B, W, V); mask: (B, W) bool. The target is detached here, whatever
    the caller passes. 0 (still attached to the graph) when nothing is masked in."""
    target = F.log_softmax(_at_least_float32(target_logits.detach()), dim=-1)  # (B, W, V)
    student = F.log_softmax(_at_least_float32(student_logits), dim=-1)
    kl = (target.exp() * (target - student)).sum(-1)  # (B, W)
    weights = mask.to(kl.dtype)
    return (kl * weights).sum() / weights.sum().clamp(min=1.0)


def ar_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Next-token cross-entropy. logits: (B, T, V) at input positions; labels: (B, T), the token each
    position should predict (already shifted), IGNORE where skipped. 0 when every label is IGNORE."""
    if not (labels != IGNORE).any():
        return logits.sum() * 0.0
    return F.cross_entropy(_at_least_float32(logits).flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                           label_smoothing=label_smoothing)


def total_loss(consistency: torch.Tensor, ar: torch.Tensor, ar_weight: float,
               text_ar: torch.Tensor | None = None, text_weight: float = 0.0) -> torch.Tensor:
    """L = L_consistency + w * L_AR (the paper's weighting; w = 10 there) [+ w_text * L_AR on real text]."""
    total = consistency + ar_weight * ar
    return total if text_ar is None else total + text_weight * text_ar
