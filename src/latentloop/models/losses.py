"""Losses of the official loss head (`ACTLossHead` in HRM/TRM `models/losses.py`): stablemax or softmax cross-entropy, a
per-sequence mean over supervised tokens, and 0.5 x the halting BCE (plus the Q-continue BCE for HRM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_LABEL = -100


def _stablemax_s(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of s(x_i) / sum_j s(x_j) with s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0): no exp, so no overflow."""
    s = _stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss in float64 (float32 on MPS, which has no float64); 0 where the label is ignored."""
    dtype = torch.float32 if logits.device.type == "mps" else torch.float64
    logp = log_stablemax(logits.to(dtype))
    valid = labels != IGNORE_LABEL
    picked = logp.gather(-1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token softmax cross-entropy in fp32; 0 where the label is ignored."""
    flat = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.long().reshape(-1),
                           ignore_index=IGNORE_LABEL, reduction="none")
    return flat.view(labels.shape)


LOSSES = {"stablemax_cross_entropy": stablemax_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy}


def supervision_weights(steps: torch.Tensor, N_sup: int, decay: float) -> torch.Tensor:
    """CGAR's hierarchical supervision weighting (Qasim & Zhang 2025, arXiv 2511.08653): the loss of a row at its
    s-th supervision step (`steps`, 1-based) is weighted by N_sup * decay^(s-1) / sum_{j=1..N_sup} decay^(j-1).

    The paper normalises the weights to sum to 1 over the N_sup steps; here they sum to N_sup, i.e. average 1 as
    the unweighted loss's weights do, so the loss keeps its scale and decay=1 weights every step by exactly 1. The
    extra factor N_sup is the same for every row and step, and AdamATan2, Muon and the puzzle embeddings' sign-SGD
    update independently of the loss scale, so training follows the paper's normalisation."""
    normaliser = sum(decay**j for j in range(N_sup))
    return decay ** (steps - 1).float() * (N_sup / normaliser)


def _weighted_sum(losses: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The sum of `losses` ([B] or [B, ...]) with each row's share scaled by its weight, when there are weights."""
    if weights is None:
        return losses.sum()
    return (losses.reshape(losses.shape[0], -1).sum(-1) * weights).sum()


def act_loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor, halted: torch.Tensor, steps: torch.Tensor,
             loss_fn=stablemax_cross_entropy, row_weights: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed (not averaged) loss over the local batch and metric sums over the rows that halted at this step.

    The caller divides the loss by the *global* batch size, so that summing gradients across ranks gives the mean.
    Metric values are sums; divide by metrics["count"] (or the global batch size for losses) to report them.
    `row_weights` ([B], e.g. supervision_weights) scales every loss term of each row; the logged losses are the
    weighted ones that are trained on.
    """
    logits = outputs["logits"]
    with torch.no_grad():
        mask = labels != IGNORE_LABEL
        counts = mask.sum(-1)
        divisor = counts.clamp_min(1).unsqueeze(-1)
        correct = mask & (logits.argmax(-1) == labels)
        seq_correct = correct.sum(-1) == counts
        valid = halted & (counts > 0)
        metrics = {
            "count": valid.sum(),
            "accuracy": torch.where(valid, (correct.float() / divisor).sum(-1), 0).sum(),
            "exact_accuracy": (valid & seq_correct).sum(),
            "q_halt_accuracy": (valid & ((outputs["q_halt_logits"] >= 0) == seq_correct)).sum(),
            "steps": torch.where(valid, steps, 0).sum(),
        }
    lm_loss = _weighted_sum(loss_fn(logits, labels) / divisor, row_weights)
    q_halt_loss = F.binary_cross_entropy_with_logits(outputs["q_halt_logits"], seq_correct.float(),
                                                     weight=row_weights, reduction="sum")
    total = lm_loss + 0.5 * q_halt_loss
    metrics["lm_loss"] = lm_loss.detach()
    metrics["q_halt_loss"] = q_halt_loss.detach()
    if "target_q_continue" in outputs:
        q_cont_loss = F.binary_cross_entropy_with_logits(outputs["q_continue_logits"], outputs["target_q_continue"],
                                                         weight=row_weights, reduction="sum")
        total = total + 0.5 * q_cont_loss
        metrics["q_continue_loss"] = q_cont_loss.detach()
    return total, metrics
