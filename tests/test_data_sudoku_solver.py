"""The exact Sudoku solver: solution counts, rating, validity."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.data.sudoku_generator import generate_puzzles
from latentloop.data.sudoku_grid import SudokuShape, parse_puzzle
from latentloop.data.sudoku_solver import count_solutions, is_valid_solution, rating, solve
from latentloop.errors import DataError


EASY = "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"


def test_solver_counts_known_totals() -> None:
    assert count_solutions(np.zeros((4, 4), dtype=np.int8), limit=1000) == 288  # all 4x4 Sudoku grids
    grid = parse_puzzle(EASY)
    result = solve(grid)
    assert len(result.solutions) == 1 and is_valid_solution(result.solutions[0], grid)
    bad = grid.copy()
    bad[0, 1] = bad[0, 0]
    assert count_solutions(bad) == 0
    assert count_solutions(np.zeros((9, 9), dtype=np.int8)) == 2


def test_rating_is_deterministic_and_counts_guesses() -> None:
    grid = parse_puzzle(EASY)
    assert rating(grid) == rating(grid.copy())
    assert rating(solve(grid).solutions[0]) == 0
    assert solve(grid, limit=1).guesses == rating(grid)
    with pytest.raises(DataError, match="without a solution"):
        rating(np.array([[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]))


def test_is_valid_solution_checks_rules_and_givens() -> None:
    puzzle, solution, _ = generate_puzzles(SudokuShape(3, 3), 1, seed=11, workers=1)[0]
    assert is_valid_solution(solution, puzzle)
    swapped = solution.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]
    assert not is_valid_solution(swapped, puzzle)
    other_givens = puzzle.copy()
    cell = np.argwhere(puzzle > 0)[0]
    other_givens[tuple(cell)] = solution[tuple(cell)] % 9 + 1
    assert not is_valid_solution(solution, other_givens)
    assert not is_valid_solution(np.where(puzzle > 0, solution, 0), puzzle)
