"""Sudoku boards of any box shape: the shape, its units and peers, text and token conversion, grid checks.

Token encoding (the official one for 9x9): 0 = PAD, 1 = blank, 2..size+1 = digits 1..size, so a 9x9 board has
vocab 11 and seq_len 81, a 6x6 board vocab 8 and seq_len 36. Labels are the full solution (no PAD), so every cell
is supervised, givens included; ``ignore_label_id`` is 0.

Grids are ``int8 [size, size]`` arrays with 0 for a blank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from latentloop.errors import DataError

DIGIT_CHARS = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK_CHARS = ".0_"
SEPARATOR_CHARS = "|+-"
PAD_TOKEN = 0
BLANK_TOKEN = 1


@dataclass(frozen=True)
class SudokuShape:
    """Box geometry: boxes are ``box_rows`` x ``box_cols``; the board is ``size`` x ``size``, size = their product."""

    box_rows: int
    box_cols: int

    def __post_init__(self) -> None:
        if self.box_rows < 1 or self.box_cols < 1:
            raise DataError(f"box shape {self.box_rows}x{self.box_cols} needs at least one row and one column")
        if self.size > len(DIGIT_CHARS):
            raise DataError(f"a {self.size}x{self.size} Sudoku is too large; at most {len(DIGIT_CHARS)} digits")

    @property
    def size(self) -> int:
        return self.box_rows * self.box_cols

    @property
    def cells(self) -> int:
        return self.size * self.size

    @property
    def vocab_size(self) -> int:
        """PAD, blank and one token per digit."""
        return self.size + 2

    @property
    def seq_len(self) -> int:
        return self.cells

    def __str__(self) -> str:
        return f"{self.size}x{self.size} ({self.box_rows}x{self.box_cols} boxes)"


def shape_for_size(size: int, box: tuple[int, int] | None = None) -> SudokuShape:
    """The usual box shape for a board size (4: 2x2, 6: 2x3, 9: 3x3, 12: 3x4, ...), or an explicit ``box``."""
    if box is not None:
        shape = SudokuShape(*box)
        if shape.size != size:
            raise DataError(f"box {box[0]}x{box[1]} gives a {shape.size}x{shape.size} board, not {size}x{size}")
        return shape
    rows = max((d for d in range(2, math.isqrt(max(size, 0)) + 1) if size % d == 0), default=None)
    if rows is None:
        raise DataError(f"size {size} has no box shape with at least 2 rows and columns; give the box explicitly")
    return SudokuShape(rows, size // rows)


def shape_for_cells(cells: int, where: str) -> SudokuShape:
    """Infer the board from a cell count; only square counts with a box shape qualify."""
    size = math.isqrt(cells)
    if size * size != cells or size < 4:
        raise DataError(f"{where} has {cells} cells; expected a square board such as 16, 36 or 81 cells")
    return shape_for_size(size)


@dataclass(frozen=True)
class Geometry:
    """Precomputed tables for one box shape; tuples because the solver's hot loops only index them."""

    size: int
    cells: int
    full: int
    peers: tuple[tuple[int, ...], ...]
    units: tuple[tuple[int, ...], ...]  # rows, then columns, then boxes
    unit_of: tuple[tuple[int, int, int], ...]  # (row, column, box) of each cell


@cache
def geometry(box_rows: int, box_cols: int) -> Geometry:
    """Units (rows, columns, boxes), each cell's peers and units, and the all-digits bitmask of a box shape."""
    size = box_rows * box_cols
    rows = [tuple(r * size + c for c in range(size)) for r in range(size)]
    cols = [tuple(r * size + c for r in range(size)) for c in range(size)]
    boxes = [
        tuple((r0 + i) * size + c0 + j for i in range(box_rows) for j in range(box_cols))
        for r0 in range(0, size, box_rows)
        for c0 in range(0, size, box_cols)
    ]
    unit_of = []
    peers = []
    for cell in range(size * size):
        r, c = divmod(cell, size)
        b = (r // box_rows) * box_rows + c // box_cols
        unit_of.append((r, c, b))
        peers.append(tuple(sorted((set(rows[r]) | set(cols[c]) | set(boxes[b])) - {cell})))
    return Geometry(size, size * size, (1 << size) - 1, tuple(peers), tuple(rows + cols + boxes), tuple(unit_of))


# ----------------------------------------------------------------------------------------------------------------
# Text and token conversion


def parse_puzzle(text: str, shape: SudokuShape | None = None, where: str = "puzzle") -> np.ndarray:
    """Parse an 81/36/16-character string or a multi-line grid into ``int8 [size, size]`` (0 = blank).

    Blanks are '.', '0' or '_'; whitespace and the box separators '|', '+', '-' of ``format_grid`` are ignored, so
    its output parses back. Wrong length, a bad character, a digit out of range, or givens that already conflict
    raise DataError naming the problem.
    """
    chars = [ch for ch in text if not ch.isspace() and ch not in SEPARATOR_CHARS]
    if shape is None:
        shape = shape_for_cells(len(chars), where)
    elif len(chars) != shape.cells:
        raise DataError(f"{where} has {len(chars)} cells; a {shape.size}x{shape.size} Sudoku needs {shape.cells}")
    values = np.zeros(shape.cells, dtype=np.int8)
    # Decimal digits beyond the board are "out of range"; letters only count as digits on boards above 9x9.
    alphabet = DIGIT_CHARS[:max(shape.size, 9)]
    for i, ch in enumerate(chars):
        if ch in BLANK_CHARS:
            continue
        digit = alphabet.find(ch.upper()) + 1
        row, col = divmod(i, shape.size)
        if digit == 0:
            raise DataError(f"{where} has an invalid character {ch!r} at row {row + 1}, column {col + 1}")
        if digit > shape.size:
            raise DataError(
                f"{where} has digit {ch} at row {row + 1}, column {col + 1}; "
                f"a {shape.size}x{shape.size} Sudoku uses 1-{DIGIT_CHARS[shape.size - 1]}"
            )
        values[i] = digit
    grid = values.reshape(shape.size, shape.size)
    conflict = _first_conflict(grid, shape)
    if conflict:
        raise DataError(f"{where} givens conflict: {conflict}")
    return grid


def _first_conflict(grid: np.ndarray, shape: SudokuShape) -> str | None:
    """Describe the first unit holding a digit twice, or None when the givens are consistent."""
    flat = grid.reshape(-1)
    geo = geometry(shape.box_rows, shape.box_cols)
    for u, unit in enumerate(geo.units):
        digits = flat[list(unit)]
        digits = digits[digits > 0]
        values, counts = np.unique(digits, return_counts=True)
        if np.any(counts > 1):
            kind, index = ("row", "column", "box")[u // shape.size], u % shape.size + 1
            return f"digit {DIGIT_CHARS[int(values[counts > 1][0]) - 1]} appears twice in {kind} {index}"
    return None


def to_string(grid: np.ndarray) -> str:
    """The one-line form used by the CSVs: digits row by row, '.' for blanks."""
    return "".join("." if v == 0 else DIGIT_CHARS[v - 1] for v in np.asarray(grid).reshape(-1).tolist())


def format_grid(grid: np.ndarray, shape: SudokuShape | None = None) -> str:
    """A human-readable board with box separators; ``parse_puzzle`` reads it back."""
    grid = np.asarray(grid)
    shape = check_grid(grid, shape)
    line = "+".join("-" * (2 * shape.box_cols + 1) for _ in range(shape.box_rows))
    out = []
    for r in range(shape.size):
        if r and r % shape.box_rows == 0:
            out.append(line)
        row = to_string(grid[r])
        stacks = [" ".join(row[c:c + shape.box_cols]) for c in range(0, shape.size, shape.box_cols)]
        out.append(" " + " | ".join(stacks))
    return "\n".join(out)


def to_tokens(grids: np.ndarray) -> np.ndarray:
    """Grids ``[..., size, size]`` (0 = blank) to flat tokens ``uint8 [..., size*size]`` (blank 1, digit d -> d+1)."""
    grids = np.asarray(grids)
    return (grids.reshape(*grids.shape[:-2], grids.shape[-2] * grids.shape[-1]) + BLANK_TOKEN).astype(np.uint8)


def from_tokens(tokens: np.ndarray, shape: SudokuShape) -> np.ndarray:
    """Flat tokens back to ``int8`` grids; PAD and blank both become 0, so model outputs decode safely."""
    tokens = np.asarray(tokens).astype(np.int16)
    values = np.where(tokens > BLANK_TOKEN, tokens - BLANK_TOKEN, 0).astype(np.int8)
    return values.reshape(*tokens.shape[:-1], shape.size, shape.size)


def check_grid(grid: np.ndarray, shape: SudokuShape | None) -> SudokuShape:
    """Validate a grid array against (or infer) its shape and return the shape."""
    if grid.ndim != 2 or grid.shape[0] != grid.shape[1]:
        raise DataError(f"a Sudoku grid must be a square 2-D array, got shape {grid.shape}")
    if not np.issubdtype(grid.dtype, np.integer):
        raise DataError(f"a Sudoku grid must hold integers, got dtype {grid.dtype}")
    if shape is None:
        shape = shape_for_size(grid.shape[0])
    if grid.shape[0] != shape.size:
        raise DataError(f"grid is {grid.shape[0]}x{grid.shape[1]} but the shape is {shape}")
    if grid.size and (int(grid.min()) < 0 or int(grid.max()) > shape.size):
        raise DataError(f"grid values must be 0 (blank) to {shape.size}")
    return shape
