"""Validity-preserving Sudoku transforms: digit relabelling, band and row-within-band permutations, stack and
column-within-stack permutations, and (square boxes only) transposition. A solution stays a solution and a unique
puzzle stays unique, so the builders add them as training variants (as the official ``build_sudoku_dataset.py``
does) and the Sudoku task offers them for test-time voting.
"""

from __future__ import annotations

import numpy as np

from latentloop.data.sudoku_grid import SudokuShape, check_grid


def random_maps(shape: SudokuShape, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` validity-preserving relabellings: source cell per output cell ``[count, cells]`` and digit map
    ``[count, size+1]`` (0 stays 0). Bands are ``box_rows`` rows tall and stacks ``box_cols`` columns wide."""
    size, br, bc = shape.size, shape.box_rows, shape.box_cols

    def line_map(groups: int, width: int) -> np.ndarray:
        group_order = np.argsort(rng.random((count, groups)), axis=1)
        within = np.argsort(rng.random((count, groups, width)), axis=2)
        return (group_order[:, :, None] * width + within).reshape(count, size)

    rows = line_map(size // br, br)
    cols = line_map(size // bc, bc)
    straight = rows[:, :, None] * size + cols[:, None, :]
    # Transposing swaps box rows and columns, so it keeps boxes intact only for square boxes.
    if br == bc:
        transposed = cols[:, None, :] * size + rows[:, :, None]
        flip = rng.random(count) < 0.5
        straight = np.where(flip[:, None, None], transposed, straight)
    digits = np.zeros((count, size + 1), dtype=np.int8)
    digits[:, 1:] = np.argsort(rng.random((count, size)), axis=1) + 1
    return straight.reshape(count, -1), digits


def augment_batch(
    puzzles: np.ndarray, solutions: np.ndarray, shape: SudokuShape, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply an independent random relabelling to each pair of ``[N, size, size]`` arrays (same map within a pair)."""
    count = puzzles.shape[0]
    cells, digits = random_maps(shape, rng, count)
    out = []
    for grids in (puzzles, solutions):
        moved = np.take_along_axis(grids.reshape(count, -1).astype(np.int64), cells, axis=1)
        out.append(np.take_along_axis(digits, moved, axis=1).reshape(grids.shape))
    return out[0], out[1]


def augment(
    puzzle: np.ndarray, solution: np.ndarray, shape: SudokuShape | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random validity-preserving transform of a puzzle and its solution: digit permutation, band and row
    permutations, stack and column permutations, and a transposition with p=0.5 when the boxes are square."""
    puzzle = np.asarray(puzzle)
    shape = check_grid(puzzle, shape)
    new_puzzle, new_solution = augment_batch(puzzle[None], np.asarray(solution)[None], shape, rng)
    return new_puzzle[0], new_solution[0]
