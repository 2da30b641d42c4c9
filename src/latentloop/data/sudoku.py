"""Sudoku of any box shape: parsing, an exact bitmask solver, a minimal-puzzle generator, augmentation, builders.

Token encoding (the official one for 9x9): 0 = PAD, 1 = blank, 2..size+1 = digits 1..size, so a 9x9 board has
vocab 11 and seq_len 81, a 6x6 board vocab 8 and seq_len 36. Labels are the full solution (no PAD), so every cell
is supervised, givens included; ``ignore_label_id`` is 0.

Grids are ``int8 [size, size]`` arrays with 0 for a blank. The solver works on Python ints, one candidate bitmask
per cell (bit d-1 = digit d), with precomputed peers and units, naked and hidden singles, and most-constrained-cell
branching. Numpy stays out of the inner loops because per-call overhead there dominates on 81-cell boards.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from latentloop.data.format import (
    BLANK_IDENTIFIER_NAME,
    DatasetMetadata,
    PuzzleSplit,
    write_identifiers,
    write_split,
)
from latentloop.data.puzzle_csv import read_rows
from latentloop.errors import DataError
from latentloop.paths import check_output_dir

DIGIT_CHARS = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BLANK_CHARS = ".0_"
SEPARATOR_CHARS = "|+-"
PAD_TOKEN = 0
BLANK_TOKEN = 1
MAX_RATING_ATTEMPTS = 1000


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


def _shape_for_cells(cells: int, where: str) -> SudokuShape:
    """Infer the board from a cell count; only square counts with a box shape qualify."""
    size = math.isqrt(cells)
    if size * size != cells or size < 4:
        raise DataError(f"{where} has {cells} cells; expected a square board such as 16, 36 or 81 cells")
    return shape_for_size(size)


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
        shape = _shape_for_cells(len(chars), where)
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
    geo = _geometry(shape.box_rows, shape.box_cols)
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
    shape = _check_grid(grid, shape)
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


def _check_grid(grid: np.ndarray, shape: SudokuShape | None) -> SudokuShape:
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


# ----------------------------------------------------------------------------------------------------------------
# Solver core: Python ints as candidate bitmasks


@dataclass(frozen=True)
class _Geometry:
    """Precomputed tables for one box shape; tuples because the hot loops only index them."""

    size: int
    cells: int
    full: int
    peers: tuple[tuple[int, ...], ...]
    units: tuple[tuple[int, ...], ...]  # rows, then columns, then boxes
    unit_of: tuple[tuple[int, int, int], ...]  # (row, column, box) of each cell


@cache
def _geometry(box_rows: int, box_cols: int) -> _Geometry:
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
    return _Geometry(size, size * size, (1 << size) - 1, tuple(peers), tuple(rows + cols + boxes), tuple(unit_of))


def _initial(givens: list[int], geo: _Geometry) -> tuple[list[int], list[int]] | None:
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


def _propagate(cand: list[int], queue: list[int], peers: tuple[tuple[int, ...], ...]) -> bool:
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


def _hidden_singles(cand: list[int], geo: _Geometry, queue: list[int]) -> bool:
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


def _search(
    cand: list[int],
    geo: _Geometry,
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
            if not _propagate(cand, queue, peers):
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
        if _propagate(trial, [best], peers):
            _search(trial, geo, limit, found, guesses, hidden, order)
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


def _solve_flat(givens: list[int], geo: _Geometry, limit: int) -> tuple[list[list[int]], int]:
    """Solutions (as digit lists, at most ``limit``) and the guesses spent; hidden singles on, ascending order."""
    start = _initial(givens, geo)
    if start is None:
        return [], 0
    cand, forced = start
    if not _propagate(cand, forced, geo.peers):
        return [], 0
    found: list[list[int]] = []
    guesses = [0]
    _search(cand, geo, limit, found, guesses, hidden=True)
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
    shape = _check_grid(grid, shape)
    geo = _geometry(shape.box_rows, shape.box_cols)
    solutions, guesses = _solve_flat(grid.reshape(-1).tolist(), geo, limit)
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
    shape = _check_grid(grid, shape)
    solutions, guesses = _solve_flat(grid.reshape(-1).tolist(), _geometry(shape.box_rows, shape.box_cols), 1)
    if not solutions:
        raise DataError(f"cannot rate a puzzle without a solution: {to_string(grid)}")
    return guesses


def is_valid_solution(grid: np.ndarray, puzzle: np.ndarray, shape: SudokuShape | None = None) -> bool:
    """True when ``grid`` is complete, obeys every row/column/box rule and keeps all givens of ``puzzle``."""
    grid = np.asarray(grid)
    puzzle = np.asarray(puzzle)
    if grid.shape != puzzle.shape:
        return False
    shape = _check_grid(grid, shape)
    flat = grid.reshape(-1).astype(np.int64)
    givens = puzzle.reshape(-1)
    if np.any((givens != 0) & (givens != flat)):
        return False
    units = np.array(_geometry(shape.box_rows, shape.box_cols).units)
    return bool(np.array_equal(np.sort(flat[units], axis=1), np.tile(np.arange(1, shape.size + 1), (len(units), 1))))


# ----------------------------------------------------------------------------------------------------------------
# Generator of minimal unique-solution puzzles


class GeneratedPuzzle(NamedTuple):
    """A minimal puzzle, its unique solution and its ``rating``."""

    puzzle: np.ndarray
    solution: np.ndarray
    rating: int


def _random_solution(geo: _Geometry, rng: np.random.Generator) -> list[int]:
    """A random complete grid: search from the empty board trying each cell's digits in a random order."""
    perms = rng.permuted(np.tile(np.arange(geo.size), (geo.cells, 1)), axis=1).tolist()
    order = [[1 << d for d in row] for row in perms]
    found: list[list[int]] = []
    _search([geo.full] * geo.cells, geo, 1, found, [0], hidden=False, order=order)
    return [mask.bit_length() for mask in found[0]]


def _has_other_solution(givens: list[int], cell: int, value: int, geo: _Geometry) -> bool:
    """Whether the givens (with ``cell`` blank) admit a solution with ``cell`` != ``value``.

    The puzzle with the cell restored has a unique solution, so this is exactly "removing the cell breaks
    uniqueness", and it needs one satisfiability search instead of counting two solutions.
    """
    start = _initial(givens, geo)
    assert start is not None, "givens drawn from a solution cannot conflict"
    cand, forced = start
    mask = cand[cell] & ~(1 << (value - 1))
    if not mask:
        return False
    cand[cell] = mask
    if not mask & (mask - 1):
        forced.append(cell)
    if not _propagate(cand, forced, geo.peers):
        return False
    found: list[list[int]] = []
    _search(cand, geo, 1, found, [0], hidden=False)
    return bool(found)


def _minimal_puzzle(solution: list[int], geo: _Geometry, rng: np.random.Generator) -> list[int]:
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
    geo = _geometry(box_rows, box_cols)
    for attempt in range(MAX_RATING_ATTEMPTS):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index, attempt)))
        solution = _random_solution(geo, rng)
        givens = _minimal_puzzle(solution, geo, rng)
        _, guesses = _solve_flat(givens, geo, 1)
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


# ----------------------------------------------------------------------------------------------------------------
# Augmentation


def _random_maps(shape: SudokuShape, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
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
    cells, digits = _random_maps(shape, rng, count)
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
    shape = _check_grid(puzzle, shape)
    new_puzzle, new_solution = augment_batch(puzzle[None], np.asarray(solution)[None], shape, rng)
    return new_puzzle[0], new_solution[0]


# ----------------------------------------------------------------------------------------------------------------
# CSV input (Sudoku-Extreme layout)


def read_csv(
    path: str | Path, shape: SudokuShape | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read ``source,question,answer,rating`` rows into (questions, answers ``int8 [N, size, size]``, ratings
    ``int64 [N]``, sources). The board size is inferred from the first question unless given. Each answer must be a
    valid complete grid that keeps its question's givens; any problem raises DataError naming file and line."""
    path = Path(path)
    rows = read_rows(path, "puzzle")
    questions = [q.strip() for q in rows.questions]
    answers = [a.strip() for a in rows.answers]
    ratings, sources, lines = rows.ratings, rows.sources, rows.lines
    if shape is None:
        shape = _shape_for_cells(len(questions[0]), f"{path}:{lines[0]}: question")
    q = _grids_from_strings(questions, shape, path, lines, "question")
    a = _grids_from_strings(answers, shape, path, lines, "answer")
    _check_answers(q, a, shape, path, lines)
    return q, a, np.array(ratings, dtype=np.int64), sources


def _char_table() -> np.ndarray:
    """Byte -> digit lookup (0 for blanks, -1 for anything else), for vectorised parsing of many puzzles."""
    table = np.full(256, -1, dtype=np.int8)
    for ch in BLANK_CHARS:
        table[ord(ch)] = 0
    for value, ch in enumerate(DIGIT_CHARS, start=1):
        table[ord(ch)] = value
        table[ord(ch.lower())] = value
    return table


def _grids_from_strings(
    texts: list[str], shape: SudokuShape, path: Path, lines: list[int], column: str
) -> np.ndarray:
    """Vectorised parse of one-line puzzles, reporting the first bad row through ``parse_puzzle``'s messages."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    bad = np.flatnonzero(lengths != shape.cells)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}:{lines[i]}: {column} has {lengths[i]} cells; "
            f"a {shape.size}x{shape.size} Sudoku needs {shape.cells}"
        )
    try:
        raw = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        i = next(k for k, t in enumerate(texts) if not t.isascii())
        raise DataError(f"{path}:{lines[i]}: {column} contains a non-ASCII character") from None
    values = _char_table()[raw].reshape(len(texts), shape.cells)
    bad = np.flatnonzero(np.any((values < 0) | (values > shape.size), axis=1))
    if bad.size:
        i = int(bad[0])
        parse_puzzle(texts[i], shape, where=f"{path}:{lines[i]}: {column}")  # raises with the precise reason
    return values.reshape(len(texts), shape.size, shape.size)


def _check_answers(q: np.ndarray, a: np.ndarray, shape: SudokuShape, path: Path, lines: list[int]) -> None:
    """Answers must be complete, keep the givens and satisfy every unit, or training targets would be wrong."""
    n = q.shape[0]
    qf = q.reshape(n, -1)
    af = a.reshape(n, -1).astype(np.int64)
    units = np.array(_geometry(shape.box_rows, shape.box_cols).units)
    checks = (
        (np.any(af == 0, axis=1), "answer has blank cells"),
        (np.any((qf != 0) & (qf != af), axis=1), "answer changes a given of the question"),
        (
            np.any(np.sort(af[:, units], axis=2) != np.arange(1, shape.size + 1), axis=(1, 2)),
            "answer breaks a row, column or box rule",
        ),
    )
    for failed, message in checks:
        bad = np.flatnonzero(failed)
        if bad.size:
            raise DataError(f"{path}:{lines[int(bad[0])]}: {message}")


# ----------------------------------------------------------------------------------------------------------------
# Dataset builders (official layout)


Puzzles = tuple[np.ndarray, np.ndarray, np.ndarray]  # questions, answers, ratings


def _rows(puzzles: Puzzles, selection: np.ndarray) -> Puzzles:
    """The same rows (index array or boolean mask) of questions, answers and ratings."""
    return puzzles[0][selection], puzzles[1][selection], puzzles[2][selection]


@dataclass
class BuildSummary:
    """What a builder wrote, for the CLI to print."""

    out_dir: Path
    shape: SudokuShape
    train_groups: int
    train_puzzles: int
    test_puzzles: int
    num_aug: int
    mean_train_rating: float
    mean_test_rating: float

    def __str__(self) -> str:
        return "\n".join([
            f"wrote {self.out_dir} ({self.shape}, vocab {self.shape.vocab_size}, seq_len {self.shape.seq_len})",
            f"  train: {self.train_groups} puzzles x {1 + self.num_aug} variants = {self.train_puzzles} examples, "
            f"mean rating {self.mean_train_rating:.2f}  -> {self.out_dir / 'train'}",
            f"  test:  {self.test_puzzles} examples, mean rating {self.mean_test_rating:.2f}  "
            f"-> {self.out_dir / 'test'}",
        ])


def _write_sudoku_split(
    split_dir: Path,
    puzzles: np.ndarray,
    solutions: np.ndarray,
    shape: SudokuShape,
    num_aug: int,
    rng: np.random.Generator,
    progress: bool,
) -> int:
    """Write one split: each original puzzle becomes one group of ``1 + num_aug`` single-example puzzles (the
    official rule), all with identifier 0. Returns the number of examples."""
    n = puzzles.shape[0]
    variants = 1 + num_aug
    all_puzzles = np.repeat(puzzles[:, None], variants, axis=1)
    all_solutions = np.repeat(solutions[:, None], variants, axis=1)
    if num_aug:
        chunk = max(1, 50_000 // num_aug)  # originals per chunk, bounding the index maps to ~50k boards
        for lo in tqdm(range(0, n, chunk), desc=f"augmenting {split_dir.name}", disable=not progress):
            hi = min(n, lo + chunk)
            aug_p, aug_s = augment_batch(
                all_puzzles[lo:hi, 1:].reshape(-1, shape.size, shape.size),
                all_solutions[lo:hi, 1:].reshape(-1, shape.size, shape.size),
                shape,
                rng,
            )
            all_puzzles[lo:hi, 1:] = aug_p.reshape(hi - lo, num_aug, shape.size, shape.size)
            all_solutions[lo:hi, 1:] = aug_s.reshape(hi - lo, num_aug, shape.size, shape.size)
    total = n * variants
    split = PuzzleSplit.from_counts(
        inputs=to_tokens(all_puzzles).reshape(total, shape.cells),
        labels=to_tokens(all_solutions).reshape(total, shape.cells),
        puzzle_identifiers=np.zeros(total, dtype=np.int32),
        examples_per_puzzle=np.ones(total, dtype=np.int64),
        puzzles_per_group=np.full(n, variants, dtype=np.int64),
    )
    metadata = DatasetMetadata.for_split(
        split, vocab_size=shape.vocab_size, num_puzzle_identifiers=1, pad_id=PAD_TOKEN, ignore_label_id=0,
        task="sudoku", task_params={"size": shape.size, "box": [shape.box_rows, shape.box_cols]},
    )
    write_split(split_dir, split, metadata)
    return total


def _write_dataset(
    out_dir: str | Path,
    shape: SudokuShape,
    train: Puzzles,
    test: Puzzles,
    num_aug: int,
    rng: np.random.Generator,
    progress: bool,
) -> BuildSummary:
    """Write train/ (augmented), test/ (never augmented) and identifiers.json."""
    out_dir = Path(out_dir)
    train_total = _write_sudoku_split(out_dir / "train", train[0], train[1], shape, num_aug, rng, progress)
    test_total = _write_sudoku_split(out_dir / "test", test[0], test[1], shape, 0, rng, progress)
    write_identifiers(out_dir, [BLANK_IDENTIFIER_NAME])
    return BuildSummary(
        out_dir=out_dir,
        shape=shape,
        train_groups=int(train[0].shape[0]),
        train_puzzles=train_total,
        test_puzzles=test_total,
        num_aug=num_aug,
        mean_train_rating=float(train[2].mean()) if train[2].size else 0.0,
        mean_test_rating=float(test[2].mean()) if test[2].size else 0.0,
    )


def build_from_csv(
    train_csv: str | Path,
    out_dir: str | Path,
    test_csv: str | Path | None = None,
    test_fraction: float = 0.1,
    subsample_size: int | None = None,
    num_aug: int = 0,
    min_rating: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> BuildSummary:
    """Build the official layout from Sudoku-Extreme-style CSVs, reproducibly for a ``seed``.

    Without ``test_csv`` a seeded ``test_fraction`` of the train CSV becomes the test split. ``min_rating`` filters
    both splits (like ``--min-difficulty``); ``subsample_size`` and ``num_aug`` apply to train only, as in the
    official builder, whose 1k recipe is ``subsample_size=1000, num_aug=1000``.
    """
    if num_aug < 0:
        raise DataError(f"num_aug must be non-negative, got {num_aug}")
    check_output_dir(out_dir)
    rng = np.random.default_rng(seed)
    q, a, r, _ = read_csv(train_csv)
    shape = shape_for_size(q.shape[1])
    if test_csv is not None:
        tq, ta, tr, _ = read_csv(test_csv)
        if tq.shape[1:] != q.shape[1:]:
            raise DataError(f"{test_csv}: puzzles are {tq.shape[1]}x{tq.shape[1]}, unlike {train_csv}")
        train, test = (q, a, r), (tq, ta, tr)
    else:
        if not 0 <= test_fraction < 1:
            raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
        order = rng.permutation(q.shape[0])
        n_test = round(q.shape[0] * test_fraction)
        train, test = _rows((q, a, r), np.sort(order[n_test:])), _rows((q, a, r), np.sort(order[:n_test]))
    if min_rating is not None:
        train, test = _rows(train, train[2] >= min_rating), _rows(test, test[2] >= min_rating)
    if subsample_size is not None and subsample_size < train[0].shape[0]:
        train = _rows(train, np.sort(rng.choice(train[0].shape[0], size=subsample_size, replace=False)))
    if train[0].shape[0] == 0:
        raise DataError(f"{train_csv}: no training puzzles left after filtering")
    return _write_dataset(out_dir, shape, train, test, num_aug, rng, progress)


def build_generated(
    out_dir: str | Path,
    shape: SudokuShape,
    num_train: int,
    num_test: int,
    seed: int,
    num_aug: int = 0,
    min_rating: int = 0,
    workers: int = 2,
    progress: bool = False,
) -> BuildSummary:
    """Build the official layout from freshly generated minimal puzzles; no puzzle appears twice or in both splits.

    The first ``num_test`` distinct puzzles of the seed's stream form the test split, so growing ``num_train``
    keeps the test set unchanged.
    """
    if num_train <= 0 or num_test < 0 or num_aug < 0:
        raise DataError(f"need num_train > 0, num_test >= 0 and num_aug >= 0, got {num_train}, {num_test}, {num_aug}")
    check_output_dir(out_dir)  # before generating
    wanted = num_test + num_train
    distinct: dict[bytes, GeneratedPuzzle] = {}
    next_index = 0
    while len(distinct) < wanted:
        need = wanted - len(distinct)
        batch = generate_puzzles(shape, need, seed, min_rating, workers, progress, start=next_index)
        next_index += need
        before = len(distinct)
        for item in batch:
            distinct.setdefault(item.puzzle.tobytes(), item)
        if len(distinct) == before:
            raise DataError(f"found only {before} distinct {shape} puzzles; ask for fewer")
    items = list(distinct.values())[:wanted]

    def stack(part: Sequence[GeneratedPuzzle]) -> Puzzles:
        empty = np.zeros((0, shape.size, shape.size), dtype=np.int8)
        return (
            np.stack([p.puzzle for p in part]) if part else empty,
            np.stack([p.solution for p in part]) if part else empty,
            np.array([p.rating for p in part], dtype=np.int64),
        )

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    return _write_dataset(out_dir, shape, stack(items[num_test:]), stack(items[:num_test]), num_aug, rng, progress)
