"""Held-out evaluation: run the inner model for a fixed number of supervision steps (the official protocol, N_sup)
or stop each sample when its halting head says so, and report accuracy after every step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from latentloop.data.format import DatasetMetadata, PuzzleSplit
from latentloop.data.sampler import test_batches
from latentloop.models.act import ACT
from latentloop.models.losses import IGNORE_LABEL, LOSSES


@dataclass
class EvalResult:
    exact_accuracy: float               # whole sequence right, at the step each sample stopped
    accuracy: float                     # per-token accuracy, averaged over samples
    q_halt_accuracy: float              # (q_halt >= 0) == (sequence correct), at the stopping step
    lm_loss: float                      # mean per-sequence loss at the stopping step
    steps: float                        # mean supervision steps used
    num_examples: int
    per_step_exact_accuracy: list[float] = field(default_factory=list)   # all samples stopped at step s (fixed-step mode)
    predictions: np.ndarray | None = None                               # [N, seq_len] token ids, if asked
    halt_probability: np.ndarray | None = None                          # [N] sigmoid(q_halt) at the stopping step

    def summary(self) -> dict[str, float]:
        return {"exact_accuracy": self.exact_accuracy, "accuracy": self.accuracy,
                "q_halt_accuracy": self.q_halt_accuracy, "lm_loss": self.lm_loss, "steps": self.steps,
                "num_examples": self.num_examples}


@torch.no_grad()
def evaluate(model: ACT, split: PuzzleSplit, metadata: DatasetMetadata, batch_size: int, device: torch.device,
             steps: int | None = None, halt_early: bool = False, max_examples: int = 0,
             loss: str = "stablemax_cross_entropy", keep_predictions: bool = False,
             progress: bool = False) -> EvalResult:
    """Evaluate `model` on a split. `steps` defaults to the model's N_sup; `halt_early` stops a sample at the first
    step where q_halt > 0 (its answer is frozen there) instead of always running every step."""
    was_training = model.training
    model.eval()
    inner = model.inner
    steps = steps or model.N_sup
    loss_fn = LOSSES[loss]
    sums = {"exact": 0.0, "acc": 0.0, "qacc": 0.0, "loss": 0.0, "steps": 0.0}
    per_step = np.zeros(steps)
    count = 0
    preds_all, halt_all = [], []
    total = min(split.num_examples, max_examples) if max_examples else split.num_examples
    bar = tqdm(total=total, desc="eval", unit="puzzle", disable=not progress, leave=False)
    for batch in test_batches(split, metadata, batch_size):
        n_valid = int(batch["num_valid"])
        if max_examples:
            n_valid = min(n_valid, max_examples - count)
        if n_valid <= 0:
            break
        inputs = torch.as_tensor(batch["inputs"][:n_valid], device=device)
        labels = torch.as_tensor(batch["labels"][:n_valid], device=device)
        ids = torch.as_tensor(batch["puzzle_identifiers"][:n_valid], device=device)
        mask = labels != IGNORE_LABEL
        counts = mask.sum(-1)
        state = inner.initial_state(n_valid, device)
        done = torch.zeros(n_valid, dtype=torch.bool, device=device)
        used = torch.full((n_valid,), steps, dtype=torch.long, device=device)
        final_logits = None
        final_q = torch.zeros(n_valid, device=device)
        for s in range(steps):
            state, out = inner(state, inputs, ids)
            correct = mask & (out.logits.argmax(-1) == labels)
            seq_correct = correct.sum(-1) == counts
            per_step[s] += seq_correct.sum().item()
            stop_now = ~done if s == steps - 1 else (~done & (out.q_halt > 0) if halt_early else torch.zeros_like(done))
            if final_logits is None:
                final_logits = out.logits.clone()
            final_logits[stop_now] = out.logits[stop_now]
            final_q[stop_now] = out.q_halt[stop_now]
            used[stop_now] = s + 1
            done |= stop_now
            if halt_early and bool(done.all()):
                break  # every sample has halted: later steps would change no reported answer
        correct = mask & (final_logits.argmax(-1) == labels)
        seq_correct = correct.sum(-1) == counts
        divisor = counts.clamp_min(1)
        sums["exact"] += seq_correct.sum().item()
        sums["acc"] += (correct.sum(-1) / divisor).sum().item()
        sums["qacc"] += ((final_q >= 0) == seq_correct).sum().item()
        sums["loss"] += (loss_fn(final_logits, labels).sum(-1) / divisor).sum().item()
        sums["steps"] += used.sum().item()
        if keep_predictions:
            preds_all.append(final_logits.argmax(-1).cpu().numpy())
            halt_all.append(torch.sigmoid(final_q).cpu().numpy())
        count += n_valid
        bar.update(n_valid)
    bar.close()
    model.train(was_training)
    n = max(count, 1)
    return EvalResult(
        exact_accuracy=sums["exact"] / n, accuracy=sums["acc"] / n, q_halt_accuracy=sums["qacc"] / n,
        lm_loss=sums["loss"] / n, steps=sums["steps"] / n, num_examples=count,
        per_step_exact_accuracy=[] if halt_early else (per_step / n).tolist(),
        predictions=np.concatenate(preds_all) if preds_all else None,
        halt_probability=np.concatenate(halt_all) if halt_all else None)
