"""Test-time augmentation voting, halt-first and the shared tally, on real puzzles of every task with
augmentations: an oracle answers every transformed copy right and voting keeps it; wrong copies are outvoted;
ties are decided by the rule, not by arrival order; and the bad requests give one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.errors import ConfigError
from latentloop.evaluation.predict import Prediction
from latentloop.evaluation.voting import Copies, Tally, combine, halt_first, run_copies, tta_count, vote
from latentloop.tasks import Task, get_task
from latentloop.tasks.augmentation import IDENTITY
from test_tasks_augmentation import TASKS, real_rows


def oracle(task: Task, inputs: np.ndarray, labels: np.ndarray, augmentations, wrong_copies: set[int] = frozenset()):
    """A model that knows every transformed puzzle's answer (copies in `wrong_copies` answer all-ones instead),
    halting confidently after 2 steps."""
    answers = {}
    for index, augmentation in enumerate(augmentations):
        for puzzle, answer in zip(augmentation.puzzles(inputs), augmentation.answers(labels)):
            answers[puzzle.tobytes()] = np.ones_like(answer) if index in wrong_copies else answer

    def predictor(rows: np.ndarray, ids: np.ndarray) -> Prediction:
        assert len(ids) == len(rows)
        tokens = np.stack([answers[row.tobytes()] for row in rows])
        return Prediction(tokens=tokens, halt_probability=np.full(len(rows), 0.9, dtype=np.float32),
                          steps=np.full(len(rows), 2), halted=np.ones(len(rows), dtype=bool))
    return predictor


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_an_oracle_scores_every_puzzle_under_tta(task: Task) -> None:
    inputs, labels = real_rows(task)
    augmentations = task.augmentations(min(8, task.augmentation_count()), seed=3)
    copies = run_copies([oracle(task, inputs, labels, augmentations)], inputs, np.zeros(len(inputs)), augmentations)
    assert copies.tokens.shape == (len(inputs), len(augmentations), inputs.shape[1])
    assert (copies.tokens == labels[:, None]).all()   # every copy, mapped back, is the original answer
    for mode in ("vote", "halt-first"):
        pred, agreement = combine(copies, mode)
        np.testing.assert_array_equal(pred.tokens, labels)
        assert (agreement == 1).all()
    assert (vote(copies)[0].steps == 2 * len(augmentations)).all()   # compute: every copy's steps
    chunked = run_copies([oracle(task, inputs, labels, augmentations)], inputs, np.zeros(len(inputs)), augmentations,
                         chunk=4)
    assert all(np.array_equal(a, b) for a, b in zip(vars(chunked).values(), vars(copies).values()))


def test_the_majority_outvotes_wrong_copies_and_a_lone_right_copy_loses() -> None:
    task = get_task("sudoku", {"size": 4})
    inputs, labels = real_rows(task)
    augmentations = task.augmentations(5, seed=0)
    copies = run_copies([oracle(task, inputs, labels, augmentations, wrong_copies={0, 3})], inputs,
                        np.zeros(len(inputs)), augmentations)
    pred, agreement = vote(copies)
    np.testing.assert_array_equal(pred.tokens, labels)
    np.testing.assert_allclose(agreement, 3 / 5)
    outvoted = run_copies([oracle(task, inputs, labels, augmentations, wrong_copies={1, 2, 3, 4})], inputs,
                          np.zeros(len(inputs)), augmentations)
    assert (vote(outvoted)[0].tokens == 1).all()


def test_ties_break_by_confidence_then_answer_key_whatever_the_order() -> None:
    for order in ([("b", 0.9), ("a", 0.9), ("c", 0.2), ("c", 0.2)], [("c", 0.2), ("a", 0.9), ("c", 0.2), ("b", 0.9)]):
        tally = Tally()
        for answer, halt in order:
            tally.add("q", answer, halt)
        assert [key for key, _, _ in tally.ranked("q")] == ["c", "a", "b"]   # 2 votes; then a < b at equal mean
    one, two = Tally(), Tally()
    one.add("q", "a", 0.1)
    two.add("q", "b", 0.8)
    assert [key for key, _, _ in one.merge(two).ranked("q")] == ["b", "a"]   # equal votes: b is more confident


def synthetic(tokens, halt, steps, halted) -> Copies:
    return Copies(np.array(tokens)[:, :, None], np.array(halt, dtype=np.float32), np.array(steps),
                  np.array(halted))


def test_halt_first_takes_the_earliest_halting_copy_else_the_most_confident() -> None:
    copies = synthetic(tokens=[[1, 2, 3], [1, 2, 3], [4, 5, 6]],
                       halt=[[0.6, 0.9, 0.7], [0.2, 0.3, 0.1], [0.8, 0.8, 0.4]],
                       steps=[[5, 3, 3], [8, 8, 8], [2, 2, 6]],
                       halted=[[True, True, True], [False, False, False], [True, True, True]])
    pred, agreement = halt_first(copies)
    assert pred.tokens[:, 0].tolist() == [2, 2, 4]   # step 3 (most confident of two); none: most confident; tie: first
    assert pred.steps.tolist() == [3 * 3, 8 * 3, 2 * 3]   # lockstep until the answering step, or every step
    np.testing.assert_allclose(agreement, 1 / 3)


def test_tta_requests_that_cannot_be_met_say_why() -> None:
    sudoku = get_task("sudoku", {"size": 4})
    assert tta_count(1, sudoku) == []
    transforms = tta_count(6, sudoku)
    assert transforms[0] is IDENTITY and len(transforms) == 6
    assert [t.key() for t in tta_count(6, sudoku, seed=0)] == [t.key() for t in transforms]   # seeded
    assert [t.key() for t in tta_count(6, sudoku, seed=1)][1:] != [t.key() for t in transforms][1:]   # --tta-seed
    for count, task, message in ((0, sudoku, "number of transforms"), (10 ** 6, sudoku, "only"),
                                 (2, None, "does not record its task"), (2, get_task("arc", {}), "no augmentations")):
        with pytest.raises(ConfigError, match=message):
            tta_count(count, task)
    with pytest.raises(ConfigError, match="unknown way"):
        combine(synthetic([[1]], [[0.5]], [[1]], [[True]]), "median")
