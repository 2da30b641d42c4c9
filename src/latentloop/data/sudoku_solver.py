"""An exact Sudoku solver for any box shape, and the checks built on it (solution counts, rating, validity).

The solver works on Python ints, one candidate bitmask per cell (bit d-1 = digit d), with the precomputed peers and
units of `latentloop.data.sudoku_grid.geometry`, naked and hidden singles, and most-constrained-cell branching.
Numpy stays out of the inner loops because per-call overhead there dominates on 81-cell boards.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from latentloop.data.sudoku_grid import Geometry, SudokuShape, check_grid, geometry, to_string
from latentloop.errors import DataError


def initial_candidates(givens: list[int], geo: Geometry) -> tuple[list[int], list[int]] | None:
    """Candidate masks from the givens, and the blank cells that are already forced; None if givens conflict."""
    row_used = [0] * geo.size
    col_used = [0] * geo.size
    box_used = [0] * geo.size
    unit_of = geo.unit_of
    for cell, value in enumerate(givens):
        if value:
            bit = 1 << (value - 1)
            r, c, b = unit_of[cell]
            if (row_used[r] | col_used[c] | box_used[b]) & bit:
                return None
            row_used[r] |= bit
            col_used[c] |= bit
            box_used[b] |= bit
    full = geo.full
    cand = []
    forced = []
    for cell, value in enumerate(givens):
        if value:
            cand.append(1 << (value - 1))
        else:
            r, c, b = unit_of[cell]
            mask = full & ~(row_used[r] | col_used[c] | box_used[b])
            if not mask:
                return None
            if not mask & (mask - 1):
                forced.append(cell)
            cand.append(mask)
    return cand, forced


def propagate(cand: list[int], queue: list[int], peers: tuple[tuple[int, ...], ...]) -> bool:
    """Naked singles: remove each fixed cell's digit from its peers, cascading; False on a contradiction."""
    pop = queue.pop
    push = queue.append
    while queue:
        cell = pop()
        bit = cand[cell]
        for peer in peers[cell]:
            mask = cand[peer]
            if mask & bit:
                mask ^= bit
                if not mask:
                    return False
                cand[peer] = mask
                if not mask & (mask - 1):
                    push(peer)
    return True


def _hidden_singles(cand: list[int], geo: Geometry, queue: list[int]) -> bool:
    """Fix every digit that has one place left in some unit (queued for propagation); False on a contradiction."""
    full = geo.full
    for unit in geo.units:
        once = twice = fixed = 0
        for cell in unit:
            mask = cand[cell]
            twice |= once & mask
            once |= mask
            if not mask & (mask - 1):
                fixed |= mask
        if once != full:
            return False
        hidden = once & ~(twice | fixed)
        if hidden:
            for cell in unit:
                mask = cand[cell] & hidden
                if mask:
                    if mask & (mask - 1):
                        return False
                    cand[cell] = mask
                    queue.append(cell)
    return True


def search(
    cand: list[int],
    geo: Geometry,
    limit: int,
    found: list[list[int]],
    guesses: list[int],
    hidden: bool,
    order: list[list[int]] | None = None,
) -> None:
    """Depth-first search from a propagated state, appending up to ``limit`` solutions to ``found``.

    ``guesses[0]`` counts trial assignments (one per value tried at a branch). ``hidden`` adds hidden singles,
    which cut guesses sharply on hard puzzles but cost more than they save on the easy checks of the generator.
    ``order`` gives each cell's digit bits in trial order (random for grid generation); default is ascending.
    """
    peers = geo.peers
    if hidden:
        while True:
            queue: list[int] = []
            if not _hidden_singles(cand, geo, queue):
                return
            if not queue:
                break
            if not propagate(cand, queue, peers):
                return
    best = -1
    best_count = geo.size + 1
    for cell in range(geo.cells):
        mask = cand[cell]
        if mask & (mask - 1):
            count = mask.bit_count()
            if count < best_count:
                best, best_count = cell, count
                if count == 2:
                    break
    if best < 0:
        found.append(cand)
        return
    mask = cand[best]
    bits = [b for b in order[best] if mask & b] if order is not None else _bits(mask)
    for bit in bits:
        guesses[0] += 1
        trial = cand[:]
        trial[best] = bit
        if propagate(trial, [best], peers):
            search(trial, geo, limit, found, guesses, hidden, order)
            if len(found) >= limit:
                return


def _bits(mask: int) -> list[int]:
    """The set bits of a mask, lowest first."""
    bits = []
    while mask:
        low = mask & -mask
        bits.append(low)
        mask ^= low
    return bits


def solve_flat(givens: list[int], geo: Geometry, limit: int) -> tuple[list[list[int]], int]:
    """Solutions (as digit lists, at most ``limit``) and the guesses spent; hidden singles on, ascending order."""
    start = initial_candidates(givens, geo)
    if start is None:
        return [], 0
    cand, forced = start
    if not propagate(cand, forced, geo.peers):
        return [], 0
    found: list[list[int]] = []
    guesses = [0]
    search(cand, geo, limit, found, guesses, hidden=True)
    return [[mask.bit_length() for mask in sol] for sol in found], guesses[0]


# ----------------------------------------------------------------------------------------------------------------
# Public solver API


class SolveResult(NamedTuple):
    """Solutions found (at most the requested limit) and the trial assignments the search made in total."""

    solutions: list[np.ndarray]
    guesses: int


def solve(grid: np.ndarray, shape: SudokuShape | None = None, limit: int = 2) -> SolveResult:
    """Find up to ``limit`` solutions; the default of 2 is enough to tell unique from ambiguous puzzles."""
    grid = np.asarray(grid)
    shape = check_grid(grid, shape)
    geo = geometry(shape.box_rows, shape.box_cols)
    solutions, guesses = solve_flat(grid.reshape(-1).tolist(), geo, limit)
    return SolveResult([np.array(s, dtype=np.int8).reshape(shape.size, shape.size) for s in solutions], guesses)


def count_solutions(grid: np.ndarray, shape: SudokuShape | None = None, limit: int = 2) -> int:
    """Number of solutions, counted up to ``limit`` (so 2 means "two or more")."""
    return len(solve(grid, shape, limit).solutions)


def rating(grid: np.ndarray, shape: SudokuShape | None = None) -> int:
    """Difficulty: the trial assignments this solver makes before reaching the first solution.

    In the spirit of tdoku's guess count used by Sudoku-Extreme's ``rating`` column: 0 means naked and hidden
    singles alone solve the puzzle. The branching is deterministic (most-constrained cell, lowest index first,
    digits ascending), so the rating of a given board is reproducible; it changes when the board is relabelled or
    permuted, and it is not numerically equal to tdoku's (tdoku propagates more before guessing).
    """
    grid = np.asarray(grid)
    shape = check_grid(grid, shape)
    solutions, guesses = solve_flat(grid.reshape(-1).tolist(), geometry(shape.box_rows, shape.box_cols), 1)
    if not solutions:
        raise DataError(f"cannot rate a puzzle without a solution: {to_string(grid)}")
    return guesses


def is_valid_solution(grid: np.ndarray, puzzle: np.ndarray, shape: SudokuShape | None = None) -> bool:
    """True when ``grid`` is complete, obeys every row/column/box rule and keeps all givens of ``puzzle``."""
    grid = np.asarray(grid)
    puzzle = np.asarray(puzzle)
    if grid.shape != puzzle.shape:
        return False
    shape = check_grid(grid, shape)
    flat = grid.reshape(-1).astype(np.int64)
    givens = puzzle.reshape(-1)
    if np.any((givens != 0) & (givens != flat)):
        return False
    units = np.array(geometry(shape.box_rows, shape.box_cols).units)
    return bool(np.array_equal(np.sort(flat[units], axis=1), np.tile(np.arange(1, shape.size + 1), (len(units), 1))))
