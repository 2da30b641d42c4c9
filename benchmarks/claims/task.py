"""Why the claims' Sudoku needs multi-step reasoning: how many rounds of parallel "singles" deductions a puzzle needs.

One round fills, all at once, every blank cell that is forced by the cells known at the start of the round (a cell
with one candidate left, or the only place for a digit in a row, column or box). A model that makes one such round of
deductions per layer application needs at least that many applications; puzzles that singles cannot finish need
search or longer chains (pairs, x-wings...).

    python benchmarks/claims/task.py data/claims-cpu-sudoku6-19200-500/test
"""

from __future__ import annotations

import argparse
import collections
import math
import sys

import numpy as np

from latentloop.data import sudoku_grid
from latentloop.data.format import read_split


def _units(shape: sudoku_grid.SudokuShape) -> np.ndarray:
    """Each row, column and box as a list of flat cell indices ``[3*size, size]``."""
    s, index = shape.size, np.arange(shape.cells).reshape(shape.size, shape.size)
    boxes = [index[r:r + shape.box_rows, c:c + shape.box_cols].ravel()
             for r in range(0, s, shape.box_rows) for c in range(0, s, shape.box_cols)]
    return np.concatenate([index, index.T, np.stack(boxes)])


def singles_rounds(grid: np.ndarray, shape: sudoku_grid.SudokuShape) -> int:
    """Rounds of parallel naked and hidden singles that solve a puzzle ``[size, size]`` (0 = blank); -1 when
    they stall before the grid is full."""
    units = _units(shape)
    cell_units = [np.flatnonzero((units == c).any(axis=1)) for c in range(shape.cells)]
    values = grid.ravel().astype(int).copy()
    rounds = 0
    while (values == 0).any():
        candidates = np.ones((shape.cells, shape.size + 1), dtype=bool)
        candidates[:, 0] = False
        for c in range(shape.cells):
            seen = values[units[cell_units[c]]].ravel()
            candidates[c, seen] = False
        candidates[values > 0] = False
        forced = {c: int(np.flatnonzero(candidates[c])[0]) for c in np.flatnonzero(candidates.sum(1) == 1)}
        for unit in units:
            for digit in range(1, shape.size + 1):
                places = unit[candidates[unit, digit]]
                if len(places) == 1:
                    forced[int(places[0])] = digit
        if not forced:
            return -1
        for cell, digit in forced.items():
            values[cell] = digit
        rounds += 1
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", help="a split folder of a Sudoku dataset, e.g. data/.../test")
    args = parser.parse_args()
    split, _ = read_split(args.split)
    shape = sudoku_grid.shape_for_size(math.isqrt(split.inputs.shape[1]))
    grids = sudoku_grid.from_tokens(split.inputs, shape)
    counts = collections.Counter(singles_rounds(g, shape) for g in grids)
    givens = (grids > 0).reshape(len(grids), -1).sum(1)
    print(f"{len(grids)} puzzles, {givens.mean():.1f} givens on average")
    for rounds in sorted(counts):
        name = "singles stall (search needed)" if rounds < 0 else f"{rounds} rounds"
        print(f"  {name}: {counts[rounds] / len(grids):.1%}")


if __name__ == "__main__":
    sys.exit(main())
