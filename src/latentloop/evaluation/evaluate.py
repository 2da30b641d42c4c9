"""Held-out evaluation: run every sample for a fixed number of supervision steps (the official protocol, N_sup), or
stop each sample when its halting head says so (continuous batching), and report accuracy."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from latentloop.data.format import DatasetMetadata, PuzzleSplit
from latentloop.data.sampler import test_batches
from latentloop.evaluation.predict import Prediction, predict, predict_halting, predict_trajectories
from latentloop.evaluation.voting import RowPredictor, combine, run_copies
from latentloop.models.act import ACT
from latentloop.models.losses import IGNORE_LABEL, LOSSES
from latentloop.tasks.augmentation import Augmentation

# Sees every evaluated batch: puzzle identifiers, input tokens, predicted tokens, sigmoid(q_halt) (e.g. ARC voting).
BatchObserver = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


@dataclass
class EvalResult:
    exact_accuracy: float               # whole sequence right, at the step each sample stopped
    accuracy: float                     # per-token accuracy, averaged over samples
    q_halt_accuracy: float              # (q_halt >= 0) == (sequence correct), at the stopping step
    lm_loss: float                      # mean per-sequence loss at the stopping step
    steps: float                        # mean supervision steps used
    num_examples: int
    seconds: float = 0.0                # wall time of the model work
    per_step_exact_accuracy: list[float] = field(default_factory=list)   # all samples stopped at step s (fixed mode)
    prediction: Prediction | None = None    # the answers themselves, when asked for (keep_predictions)
    metrics: dict[str, float] = field(default_factory=dict)   # task-level scores added by the caller (ARC pass@K)

    @property
    def examples_per_second(self) -> float:
        return self.num_examples / self.seconds if self.seconds else float("nan")

    def summary(self) -> dict[str, float]:
        return {"exact_accuracy": self.exact_accuracy, "accuracy": self.accuracy,
                "q_halt_accuracy": self.q_halt_accuracy, "lm_loss": self.lm_loss, "steps": self.steps,
                "num_examples": self.num_examples, **self.metrics}


def _sequence_scores(preds: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: all supervised tokens right, and the share of supervised tokens right. A sequence with nothing
    supervised (an unlabelled ARC competition input) cannot be right, rather than vacuously right."""
    mask = labels != IGNORE_LABEL
    counts = mask.sum(-1)
    correct = (mask & (preds == labels)).sum(-1)
    return (correct == counts) & (counts > 0), correct / counts.clamp_min(1)


@torch.no_grad()
def evaluate(model: ACT, split: PuzzleSplit, metadata: DatasetMetadata, batch_size: int, device: torch.device,
             steps: int | None = None, halt_early: bool = False, max_examples: int = 0,
             loss: str = "stablemax_cross_entropy", progress: bool = False, threshold: float = 0.5,
             trajectories: int = 1, noise: float = 0.0, seed: int = 0, keep_predictions: bool = False,
             on_batch: BatchObserver | None = None, augmentations: Sequence[Augmentation] = (),
             ensemble: Sequence[ACT] = (), combine_mode: str = "vote") -> EvalResult:
    """Evaluate `model` on a split. `steps` defaults to the model's N_sup; `halt_early` stops a sample at the first
    step where sigmoid(q_halt) > threshold (the answer is taken there) instead of always running every step;
    `trajectories` > 1 runs that many noisy copies per sample and keeps the most confident (predict_trajectories).
    With `augmentations` (test-time augmentation) and/or further models in `ensemble`, every puzzle also runs under
    each transform through each model and one answer is kept by `combine_mode` (evaluation/voting.py); the answers
    are then scored like any other, the loss is not (nan), and `metrics` says how many copies ran, how many
    supervision steps a puzzle cost over all of them, and how often a copy agreed with the answer kept.
    `on_batch` receives the answers as they are made, so task scorers need not keep all of them in memory."""
    models = [model, *ensemble]
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    steps = steps or model.N_sup
    loss_fn = LOSSES[loss]
    batches = list(examples(split, metadata, batch_size, max_examples))
    start = time.perf_counter()
    copies = len(models) * max(1, len(augmentations))
    if halt_early or trajectories > 1 or copies > 1:
        inputs, labels, ids = (np.concatenate([b[k] for b in batches]) for k in ("inputs", "labels", "ids"))
        agreement = None
        if copies > 1:
            predictors = [row_predictor(m, steps, batch_size, halt_early, threshold, trajectories, noise, seed)
                          for m in models]
            pred, agreement = combine(run_copies(predictors, inputs, ids, augmentations, progress), combine_mode)
        elif trajectories > 1:
            pred = predict_trajectories(model, inputs, ids, steps, batch_size, trajectories, noise, seed)
        else:
            pred = predict_halting(model, inputs, ids, steps, batch_size, labels=labels, loss_fn=loss_fn,
                                   threshold=threshold)
        if on_batch is not None:
            on_batch(ids, inputs, pred.tokens, pred.halt_probability)
        exact, acc = _sequence_scores(torch.as_tensor(pred.tokens), torch.as_tensor(labels))
        q_right = (torch.as_tensor(pred.halt_probability) >= 0.5) == exact
        result = EvalResult(exact_accuracy=exact.float().mean().item(), accuracy=acc.mean().item(),
                            q_halt_accuracy=q_right.float().mean().item(),
                            lm_loss=float(pred.loss.mean()) if pred.loss is not None else float("nan"),
                            steps=float(pred.steps.mean()) / copies, num_examples=len(inputs),
                            prediction=pred if keep_predictions else None)
        if agreement is not None:
            result.metrics.update({"tta": float(max(1, len(augmentations))), "models": float(len(models)),
                                   "agreement": float(agreement.mean())})
        if agreement is not None or trajectories > 1:   # every copy and every trajectory costs its steps
            result.metrics["steps_per_puzzle"] = float(pred.steps.mean()) * trajectories
    else:
        result = _evaluate_fixed(model, batches, steps, loss_fn, device, progress, keep_predictions, on_batch)
    result.seconds = time.perf_counter() - start
    for m, mode in zip(models, was_training):
        m.train(mode)
    return result


def format_rate(per_second: float) -> str:
    """Puzzles per second for a report: whole numbers, but two significant digits below 10 (a paper-size model on
    a CPU answers well under one puzzle a second, which would print as 0)."""
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.2g}"


def row_predictor(model: ACT, steps: int, batch_size: int, halt_early: bool = False, threshold: float = 0.5,
                  trajectories: int = 1, noise: float = 0.0, seed: int = 0) -> RowPredictor:
    """`model` answering token rows the way `evaluate` would without copies: every step, halting per sample, or
    the most confident of noisy trajectories."""
    def run(inputs: np.ndarray, ids: np.ndarray) -> Prediction:
        if trajectories > 1:
            return predict_trajectories(model, inputs, ids, steps, batch_size, trajectories, noise, seed)
        if halt_early:
            return predict_halting(model, inputs, ids, steps, batch_size, threshold=threshold)
        return predict(model, inputs, ids, steps=steps, batch_size=batch_size)
    return run


def examples(split, metadata, batch_size: int, max_examples: int):
    """The test split as unpadded numpy batches, cut at max_examples."""
    seen = 0
    for batch in test_batches(split, metadata, batch_size):
        n = int(batch["num_valid"])
        if max_examples:
            n = min(n, max_examples - seen)
        if n <= 0:
            return
        seen += n
        yield {"inputs": batch["inputs"][:n], "labels": batch["labels"][:n], "ids": batch["puzzle_identifiers"][:n]}


def _evaluate_fixed(model: ACT, batches, steps: int, loss_fn, device, progress: bool,
                    keep_predictions: bool, on_batch: BatchObserver | None = None) -> EvalResult:
    """Every sample runs `steps` supervision steps; accuracy is also recorded after each step."""
    inner = model.inner
    sums = {"exact": 0.0, "acc": 0.0, "qacc": 0.0, "loss": 0.0}
    per_step = np.zeros(steps)
    count = 0
    tokens, halts = [], []
    bar = tqdm(total=sum(len(b["inputs"]) for b in batches), desc="eval", unit="puzzle", disable=not progress,
               leave=False)
    for batch in batches:
        inputs = torch.as_tensor(batch["inputs"], device=device)
        labels = torch.as_tensor(batch["labels"], device=device)
        ids = torch.as_tensor(batch["ids"], device=device)
        state = inner.initial_state(len(inputs), device)
        for s in range(steps):
            state, out = inner(state, inputs, ids)
            preds = out.logits.argmax(-1)
            exact, acc = _sequence_scores(preds, labels)
            per_step[s] += exact.sum().item()
        divisor = (labels != IGNORE_LABEL).sum(-1).clamp_min(1)
        sums["exact"] += exact.sum().item()
        sums["acc"] += acc.sum().item()
        sums["qacc"] += ((out.q_halt >= 0) == exact).sum().item()
        sums["loss"] += (loss_fn(out.logits, labels).sum(-1) / divisor).sum().item()
        if keep_predictions or on_batch is not None:
            answers = preds.cpu().numpy()
        if keep_predictions:
            tokens.append(answers)
            halts.append(torch.sigmoid(out.q_halt).cpu().numpy())
        if on_batch is not None:  # float64 (on the CPU: MPS has none), as the official ARC evaluator ranks by it
            on_batch(batch["ids"], batch["inputs"], answers, torch.sigmoid(out.q_halt.cpu().double()).numpy())
        count += len(inputs)
        bar.update(len(inputs))
    bar.close()
    n = max(count, 1)
    return EvalResult(exact_accuracy=sums["exact"] / n, accuracy=sums["acc"] / n, q_halt_accuracy=sums["qacc"] / n,
                      lm_loss=sums["loss"] / n, steps=float(steps), num_examples=count,
                      per_step_exact_accuracy=(per_step / n).tolist(),
                      prediction=Prediction(tokens=np.concatenate(tokens), halt_probability=np.concatenate(halts),
                                            steps=np.full(count, steps)) if keep_predictions else None)
