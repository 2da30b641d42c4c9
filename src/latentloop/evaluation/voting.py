"""Spending more compute at test time: several copies of each puzzle answer, and one answer is kept.

A copy is the puzzle under one of the task's validity-preserving augmentations (test-time augmentation, TTA), run by
one model of an ensemble; its answer is mapped back to the original puzzle exactly (`Augmentation.invert_answers`),
so the answers of all copies can be compared. Two ways to keep one:

* ``vote``: the answer most copies give wins; ties go to the higher mean halting confidence sigmoid(q_halt) of its
  voters, then to the smaller answer key, so the result never depends on the order the copies arrived in. This is
  the papers' ARC protocol (official TRM ``evaluators/arc.py``); ARC's evaluator (evaluation/arc.py) ranks with the
  same `Tally`.
* ``halt-first``: the copies run in lockstep and the first whose halting head fires answers (ties: the most
  confident, then the first copy); when none fires within the steps allowed, the most confident answers. This is
  the winner-take-all rule for several models (2026 "winner-take-all TRM" preprint).

The copies of a puzzle sit next to each other in the rows handed to the model, so they share its batches.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from latentloop.errors import ConfigError
from latentloop.evaluation.predict import Prediction
from latentloop.tasks.augmentation import Augmentation

COMBINE_MODES = ("vote", "halt-first")
CHUNK_PUZZLES = 1024   # puzzles whose copies are in memory at once (and per progress-bar update)

# Runs one model on token rows [R, seq_len] with their puzzle identifiers [R].
RowPredictor = Callable[[np.ndarray, np.ndarray], Prediction]


class Tally(dict):
    """Votes per question: {question: {answer key: [count, sum of halting confidences]}}. Only counts and sums are
    kept, so tallies over disjoint rows merge into the tally over all of them."""

    def add(self, question: Hashable, answer_key: str | bytes, halt: float) -> None:
        entry = self.setdefault(question, {}).setdefault(answer_key, [0, 0.0])
        entry[0] += 1
        entry[1] += float(halt)

    def merge(self, other: Tally) -> Tally:
        """Add another tally's votes to these; returns self."""
        for question, answers in other.items():
            mine = self.setdefault(question, {})
            for answer_key, (count, halt_sum) in answers.items():
                entry = mine.setdefault(answer_key, [0, 0.0])
                entry[0] += count
                entry[1] += halt_sum
        return self

    def ranked(self, question: Hashable) -> list[tuple[str | bytes, int, float]]:
        """(answer key, votes, mean halting confidence) of every distinct answer, best first: most votes, then
        highest mean confidence, then the smallest key."""
        answers = self.get(question, {})
        order = sorted(answers.items(), key=lambda kv: (-kv[1][0], -kv[1][1] / kv[1][0], kv[0]))
        return [(key, int(count), halt_sum / count) for key, (count, halt_sum) in order]


@dataclass
class Copies:
    """The answers of C copies of N puzzles, already mapped back to the original puzzles."""

    tokens: np.ndarray          # [N, C, seq_len]
    halt_probability: np.ndarray  # [N, C]
    steps: np.ndarray           # [N, C] supervision steps each copy ran
    halted: np.ndarray          # [N, C] whether the copy's halting head fired (False: it ran out of steps)


def tta_count(count: int, task, what: str = "--tta", seed: int = 0) -> list[Augmentation]:
    """The `count` transforms TTA uses for `task` (the identity first, the rest drawn with `seed`), or one line
    saying why there are none."""
    if count < 1:
        raise ConfigError(f"{what} takes the number of transforms per puzzle (1 = none), got {count}")
    if count == 1:
        return []
    if task is None:
        raise ConfigError(f"{what} {count} needs a task with augmentations; this data does not record its task "
                          f"(pass --task NAME)")
    available = task.augmentation_count()
    if available == 1:
        raise ConfigError(f"{what}: task {task.name!r} declares no augmentations of its token rows"
                          + (" (ARC's test split already holds augmented copies, and they vote: ARC/pass@K)"
                             if task.name == "arc" else ""))
    if count > available:
        raise ConfigError(f"{what} {count}: task {task.name!r} has only {available:,} distinct transforms "
                          f"(the identity included)")
    return task.augmentations(count, seed)


def run_copies(predictors: Sequence[RowPredictor], inputs: np.ndarray, ids: np.ndarray,
               augmentations: Sequence[Augmentation] = (), progress: bool = False,
               chunk: int = CHUNK_PUZZLES) -> Copies:
    """Every puzzle under every transform (the identity when there are none), through every model, `chunk` puzzles
    at a time; answers mapped back. Copy c = model c // K under transform c % K."""
    transforms = list(augmentations) or [Augmentation()]
    k, (n, length) = len(transforms), np.shape(inputs)
    parts = []
    bar = tqdm(total=n, desc=f"eval x{k * len(predictors)} copies", unit="puzzle", disable=not progress, leave=False)
    for lo in range(0, n, chunk):
        block = np.asarray(inputs[lo:lo + chunk])
        m = len(block)
        rows = np.stack([t.puzzles(block) for t in transforms], axis=1).reshape(m * k, length)
        row_ids = np.repeat(np.asarray(ids[lo:lo + chunk]), k)
        per_model = []
        for predictor in predictors:
            pred = predictor(rows, row_ids)
            answers = pred.tokens.reshape(m, k, length)
            mapped = np.stack([t.invert_answers(answers[:, i]) for i, t in enumerate(transforms)], axis=1)
            halted = pred.halted if pred.halted is not None else pred.halt_probability > 0.5
            per_model.append((mapped, *(np.asarray(a).reshape(m, k)
                                        for a in (pred.halt_probability, pred.steps, halted))))
        parts.append([np.concatenate([p[i] for p in per_model], axis=1) for i in range(4)])
        bar.update(m)
    bar.close()
    return Copies(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


def vote(copies: Copies) -> tuple[Prediction, np.ndarray]:
    """The majority answer of each puzzle's copies, and the share of copies that gave it."""
    n, c, _ = copies.tokens.shape
    tally = Tally()
    first_row: dict[tuple[int, bytes], np.ndarray] = {}
    for i in range(n):
        for j in range(c):
            key = copies.tokens[i, j].tobytes()
            first_row.setdefault((i, key), copies.tokens[i, j])
            tally.add(i, key, copies.halt_probability[i, j])
    winners = [tally.ranked(i)[0] for i in range(n)]
    tokens = np.stack([first_row[(i, key)] for i, (key, _, _) in enumerate(winners)])
    halt = np.array([mean for _, _, mean in winners], dtype=np.float32)
    agreement = np.array([votes / c for _, votes, _ in winners])
    return Prediction(tokens=tokens, halt_probability=halt, steps=copies.steps.sum(1)), agreement


def halt_first(copies: Copies) -> tuple[Prediction, np.ndarray]:
    """Per puzzle, the copy that halted at the fewest steps (then the most confident, then the first); when none
    halted, the most confident. Compute is counted as all copies running in lockstep until that step."""
    n, c, _ = copies.tokens.shape
    never = copies.steps.max() + 1
    when = np.where(copies.halted, copies.steps, never)
    order = np.lexsort((np.arange(c)[None].repeat(n, 0), -copies.halt_probability, when), axis=1)
    best = order[:, 0]
    rows = np.arange(n)
    answered_at = np.where(copies.halted[rows, best], copies.steps[rows, best], copies.steps.max(1))
    chosen = copies.tokens[rows, best]
    agreement = (copies.tokens == chosen[:, None]).all(-1).mean(1)
    return Prediction(tokens=chosen, halt_probability=copies.halt_probability[rows, best].astype(np.float32),
                      steps=answered_at * c), agreement


def combine(copies: Copies, mode: str) -> tuple[Prediction, np.ndarray]:
    """One answer per puzzle from its copies (see the module docstring), and the share of copies agreeing with it.
    `Prediction.steps` counts the supervision steps spent on the puzzle over all its copies."""
    if mode not in COMBINE_MODES:
        raise ConfigError(f"unknown way to combine copies {mode!r}; use one of {', '.join(COMBINE_MODES)}")
    return vote(copies) if mode == "vote" else halt_first(copies)
