"""A seeded generator of minimal Sudoku puzzles with unique solutions, for any box shape, over a process pool.

Each puzzle is drawn from its own seed (the stream seed and the puzzle's index), so the output never depends on the
number of workers or their scheduling.
"""

from __future__ import annotations

import multiprocessing
from functools import partial
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from latentloop.data.sudoku_grid import Geometry, SudokuShape, geometry
from latentloop.data.sudoku_solver import initial_candidates, propagate, search, solve_flat
from latentloop.errors import DataError

MAX_RATING_ATTEMPTS = 1000


class GeneratedPuzzle(NamedTuple):
    """A minimal puzzle, its unique solution and its ``rating``."""

    puzzle: np.ndarray
    solution: np.ndarray
    rating: int


def _random_solution(geo: Geometry, rng: np.random.Generator) -> list[int]:
    """A random complete grid: search from the empty board trying each cell's digits in a random order."""
    perms = rng.permuted(np.tile(np.arange(geo.size), (geo.cells, 1)), axis=1).tolist()
    order = [[1 << d for d in row] for row in perms]
    found: list[list[int]] = []
    search([geo.full] * geo.cells, geo, 1, found, [0], hidden=False, order=order)
    return [mask.bit_length() for mask in found[0]]


def _has_other_solution(givens: list[int], cell: int, value: int, geo: Geometry) -> bool:
    """Whether the givens (with ``cell`` blank) admit a solution with ``cell`` != ``value``.

    The puzzle with the cell restored has a unique solution, so this is exactly "removing the cell breaks
    uniqueness", and it needs one satisfiability search instead of counting two solutions.
    """
    start = initial_candidates(givens, geo)
    assert start is not None, "givens drawn from a solution cannot conflict"
    cand, forced = start
    mask = cand[cell] & ~(1 << (value - 1))
    if not mask:
        return False
    cand[cell] = mask
    if not mask & (mask - 1):
        forced.append(cell)
    if not propagate(cand, forced, geo.peers):
        return False
    found: list[list[int]] = []
    search(cand, geo, 1, found, [0], hidden=False)
    return bool(found)


def _minimal_puzzle(solution: list[int], geo: Geometry, rng: np.random.Generator) -> list[int]:
    """Blank cells in random order whenever uniqueness survives; one pass suffices for minimality, because a given
    that had to stay can only become more necessary as other givens go."""
    givens = solution[:]
    for cell in rng.permutation(geo.cells).tolist():
        value = givens[cell]
        givens[cell] = 0
        if _has_other_solution(givens, cell, value, geo):
            givens[cell] = value
    return givens


def _generate_one(
    box_rows: int, box_cols: int, seed: int, min_rating: int, index: int
) -> tuple[bytes, bytes, int]:
    """Puzzle ``index`` of the stream ``seed``; attempts are re-seeded so the result never depends on scheduling."""
    geo = geometry(box_rows, box_cols)
    for attempt in range(MAX_RATING_ATTEMPTS):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index, attempt)))
        solution = _random_solution(geo, rng)
        givens = _minimal_puzzle(solution, geo, rng)
        _, guesses = solve_flat(givens, geo, 1)
        if guesses >= min_rating:
            return bytes(givens), bytes(solution), guesses
    raise DataError(
        f"no minimal puzzle with rating >= {min_rating} in {MAX_RATING_ATTEMPTS} attempts; lower min_rating"
    )


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork where available: workers then need no importable ``__main__``, so plain scripts and notebooks work."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def generate_puzzles(
    shape: SudokuShape,
    count: int,
    seed: int,
    min_rating: int = 0,
    workers: int = 2,
    progress: bool = False,
    start: int = 0,
) -> list[GeneratedPuzzle]:
    """Generate ``count`` minimal puzzles with unique solutions (puzzles ``start`` .. ``start+count-1`` of ``seed``).

    Each puzzle is seeded from (seed, index), so the output is identical for any ``workers``; ``workers > 1`` uses
    a process pool. Minimal means no given can be removed without losing uniqueness.
    """
    if count < 0 or seed < 0 or start < 0:
        raise DataError(f"count, seed and start must be non-negative (got {count}, {seed}, {start})")
    task = partial(_generate_one, shape.box_rows, shape.box_cols, seed, min_rating)
    indices = range(start, start + count)
    bar = tqdm(total=count, desc=f"generating {shape.size}x{shape.size} puzzles", disable=not progress)
    results: list[GeneratedPuzzle] = []

    def collect(raw: tuple[bytes, bytes, int]) -> None:
        puzzle, solution, guesses = raw
        results.append(
            GeneratedPuzzle(
                np.frombuffer(puzzle, dtype=np.int8).reshape(shape.size, shape.size).copy(),
                np.frombuffer(solution, dtype=np.int8).reshape(shape.size, shape.size).copy(),
                guesses,
            )
        )
        bar.update()

    with bar:
        if workers > 1 and count > 1:
            chunk = max(1, min(64, count // (workers * 8)))
            with _pool_context().Pool(workers) as pool:
                for raw in pool.imap(task, indices, chunksize=chunk):
                    collect(raw)
        else:
            for index in indices:
                collect(task(index))
    return results
