"""Sudoku augmentation: validity and uniqueness kept, seeded, transposition only for square boxes."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.data.sudoku_augment import augment
from latentloop.data.sudoku_generator import generate_puzzles
from latentloop.data.sudoku_grid import SudokuShape
from latentloop.data.sudoku_solver import is_valid_solution, solve


SHAPES = [SudokuShape(2, 2), SudokuShape(2, 3), SudokuShape(3, 3)]


@pytest.mark.parametrize("shape", [*SHAPES, SudokuShape(3, 2), SudokuShape(2, 4)])
def test_augmentation_preserves_validity_and_uniqueness(shape: SudokuShape) -> None:
    rng = np.random.default_rng(0)
    puzzle, solution, _ = generate_puzzles(shape, 1, seed=2, workers=1)[0]
    changed = 0
    for _ in range(8):
        new_puzzle, new_solution = augment(puzzle, solution, shape, rng)
        assert is_valid_solution(new_solution, new_puzzle, shape)
        result = solve(new_puzzle, shape)
        assert len(result.solutions) == 1
        np.testing.assert_array_equal(result.solutions[0], new_solution)
        assert (new_puzzle > 0).sum() == (puzzle > 0).sum()
        changed += not np.array_equal(new_puzzle, puzzle)
    assert changed >= 7


def test_augmentation_is_seeded_and_transposes_only_square_boxes() -> None:
    shape = SudokuShape(3, 3)
    puzzle, solution, _ = generate_puzzles(shape, 1, seed=2, workers=1)[0]
    a = augment(puzzle, solution, shape, np.random.default_rng(7))
    b = augment(puzzle, solution, shape, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # A tracer whose value is the source row: after a map, constant rows mean "not transposed", constant columns
    # mean "transposed". 9x9 must show both; 6x6 with 2x3 boxes must never transpose.
    rng = np.random.default_rng(1)
    for shape, expect_transposed in ((SudokuShape(3, 3), True), (SudokuShape(2, 3), False)):
        tracer = np.repeat(np.arange(1, shape.size + 1, dtype=np.int8)[:, None], shape.size, axis=1)
        transposed = 0
        for _ in range(40):
            moved, _ = augment(tracer, tracer, shape, rng)
            rows_constant = bool(np.all(moved == moved[:, :1]))
            assert rows_constant != bool(np.all(moved == moved[:1, :]))
            transposed += not rows_constant
        assert (transposed > 0) == expect_transposed
