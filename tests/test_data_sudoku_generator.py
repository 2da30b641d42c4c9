"""The minimal-puzzle generator: unique, minimal, seeded, independent of the worker count."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.data.sudoku_generator import generate_puzzles
from latentloop.data.sudoku_grid import SudokuShape
from latentloop.data.sudoku_solver import count_solutions, is_valid_solution, rating, solve



@pytest.fixture(scope="module")
def generated_9x9() -> list:
    return generate_puzzles(SudokuShape(3, 3), 4, seed=11, workers=1)


def assert_unique_and_minimal(puzzle: np.ndarray, solution: np.ndarray, shape: SudokuShape) -> None:
    assert is_valid_solution(solution, puzzle, shape)
    result = solve(puzzle, shape)
    assert len(result.solutions) == 1
    np.testing.assert_array_equal(result.solutions[0], solution)
    for r, c in np.argwhere(puzzle > 0):
        fewer = puzzle.copy()
        fewer[r, c] = 0
        assert count_solutions(fewer, shape) == 2, "a given could be removed: puzzle is not minimal"


@pytest.mark.parametrize(("shape", "count"), [(SudokuShape(2, 2), 10), (SudokuShape(2, 3), 10), (SudokuShape(3, 2), 5)])
def test_generated_small_puzzles_are_unique_and_minimal(shape: SudokuShape, count: int) -> None:
    puzzles = generate_puzzles(shape, count, seed=3, workers=1)
    assert len(puzzles) == count
    for puzzle, solution, guesses in puzzles:
        assert puzzle.shape == (shape.size, shape.size) and puzzle.dtype == np.int8
        assert guesses == rating(puzzle, shape)
        assert_unique_and_minimal(puzzle, solution, shape)


def test_generated_9x9_puzzles_are_unique_and_minimal(generated_9x9: list) -> None:
    for puzzle, solution, _ in generated_9x9:
        assert 17 <= int((puzzle > 0).sum()) <= 40
        assert_unique_and_minimal(puzzle, solution, SudokuShape(3, 3))


def test_generation_is_deterministic_for_any_worker_count() -> None:
    shape = SudokuShape(2, 3)
    one = generate_puzzles(shape, 12, seed=4, workers=1)
    two = generate_puzzles(shape, 12, seed=4, workers=2)
    tail = generate_puzzles(shape, 4, seed=4, workers=1, start=8)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.puzzle, b.puzzle)
        assert a.rating == b.rating
    for a, b in zip(one[8:], tail, strict=True):
        np.testing.assert_array_equal(a.puzzle, b.puzzle)
    other = generate_puzzles(shape, 12, seed=5, workers=1)
    assert any(not np.array_equal(a.puzzle, b.puzzle) for a, b in zip(one, other, strict=True))


def test_min_rating_is_respected() -> None:
    for item in generate_puzzles(SudokuShape(3, 3), 2, seed=0, min_rating=6, workers=1):
        assert item.rating >= 6 and rating(item.puzzle) == item.rating
