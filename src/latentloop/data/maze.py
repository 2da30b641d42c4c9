"""Maze-Hard: parsing, breadth-first search, a seeded hard-maze generator, dihedral augmentation, builders.

Token encoding (the official one): 0 = PAD, then the charset ``"# SGo"``: 1 wall, 2 open, 3 start, 4 goal, 5 path,
so vocab 6 and seq_len size*size (900 for 30x30). Labels are the full answer grid, so every cell is supervised;
``ignore_label_id`` is 0. Grids are ``uint8 [size, size]`` arrays holding these tokens directly.

Path length means moves from S to G (the BFS distance); the label marks the distance-1 cells in between with 'o'.
The generator follows the published recipe (Lehnert et al. 2024, with HRM's length filter) re-implemented from its
description: no border walls, 4-connected moves, a wall count drawn uniformly from a density range, then a start and
goal that are connected and more than ``min_path`` moves apart. Random pairs almost never qualify, so candidates
come from a double sweep (BFS from a random cell, then from the farthest cell it found), about 10x more productive.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentloop.data.format import (
    BLANK_IDENTIFIER_NAME,
    DatasetMetadata,
    PuzzleSplit,
    write_identifiers,
    write_split,
)
from latentloop.data.grids import NUM_DIHEDRAL, dihedral
from latentloop.data.puzzle_csv import CSV_COLUMNS, read_rows
from latentloop.errors import DataError
from latentloop.paths import check_output_dir, ensure_output_file

CHARSET = "# SGo"
PAD, WALL, OPEN, START, GOAL, PATH = range(6)
VOCAB_SIZE = 6
OPEN_ALIAS = "."                     # accepted for open cells, and used by format_maze, so text files survive editors
MAX_GENERATED_SIZE = 64              # one uint64 bitboard word per row
CHUNK = 1024                         # candidate mazes per seeded chunk: the unit of determinism
MAX_FRUITLESS_CHUNKS = 200           # give up when this many chunks in a row yield nothing


# ----------------------------------------------------------------------------------------------------------------
# Text and token conversion


def parse_maze(text: str, size: int | None = None, where: str = "maze", answer: bool = False,
               check_reachable: bool = True) -> np.ndarray:
    """Parse a one-line ``size*size``-character maze or a multi-line grid into tokens ``uint8 [size, size]``.

    Open cells are ' ' (official) or '.'. A question may not contain path cells 'o'; an ``answer`` may. Every
    problem (non-square or ragged grid, unknown character, missing or repeated S/G, G unreachable from S) raises a
    one-line DataError.
    """
    lines = text.replace("\r", "").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    while lines and lines[0] == "":
        lines.pop(0)
    if not lines:
        raise DataError(f"{where} is empty")
    if len(lines) == 1:
        cells = len(lines[0])
        side = math.isqrt(cells)
        if side * side != cells or (size is not None and side != size):
            need = f"{size * size} ({size}x{size})" if size else "a square number such as 900 (30x30)"
            raise DataError(f"{where} has {cells} characters on one line; a maze needs {need}")
        rows = [lines[0][r * side:(r + 1) * side] for r in range(side)]
    else:
        rows = lines
        widths = [len(row) for row in rows]
        if len(set(widths)) > 1:
            r = next(i for i, w in enumerate(widths) if w != widths[0])
            raise DataError(f"{where} is ragged: row {r + 1} has {widths[r]} characters, row 1 has {widths[0]} "
                            f"(write open cells as '.' so editors keep trailing ones)")
        if widths[0] != len(rows):
            raise DataError(f"{where} is {len(rows)} rows x {widths[0]} columns; mazes must be square")
        if size is not None and len(rows) != size:
            raise DataError(f"{where} is {len(rows)}x{len(rows)}; this model solves {size}x{size} mazes")
    side = len(rows)
    table = _char_table()
    raw = "".join(rows)
    codes = table[np.frombuffer(raw.encode("ascii"), dtype=np.uint8)] if raw.isascii() else None
    if codes is None or np.any(codes == PAD) or (not answer and np.any(codes == PATH)):
        bad = next(i for i, ch in enumerate(raw) if ch not in CHARSET + OPEN_ALIAS or (ch == "o" and not answer))
        r, c = divmod(bad, side)
        if raw[bad] == "o":
            raise DataError(f"{where} already has a path cell 'o' at row {r + 1}, column {c + 1}; give the bare maze")
        raise DataError(f"{where} has an unknown character {raw[bad]!r} at row {r + 1}, column {c + 1}; "
                        f"use '#' wall, ' ' or '.' open, 'S' start, 'G' goal" + (", 'o' path" if answer else ""))
    grid = codes.reshape(side, side).astype(np.uint8)
    for token, name in ((START, "start 'S'"), (GOAL, "goal 'G'")):
        count = int(np.sum(grid == token))
        if count != 1:
            raise DataError(f"{where} has {'no' if count == 0 else count} {name}; exactly one is needed")
    if check_reachable and shortest_lengths(grid[None])[0] < 0:
        raise DataError(f"{where}: the goal G cannot be reached from the start S")
    return grid


def _char_table() -> np.ndarray:
    """Byte -> token lookup (PAD for anything outside the charset), for vectorised parsing."""
    table = np.full(256, PAD, dtype=np.uint8)
    for token, ch in enumerate(CHARSET, start=1):
        table[ord(ch)] = token
    table[ord(OPEN_ALIAS)] = OPEN
    return table


def to_string(grid: np.ndarray) -> str:
    """The official one-line form (the CSV's 900-character strings); PAD shows as '?'."""
    return "".join(("?" + CHARSET)[t] for t in np.asarray(grid).reshape(-1).tolist())


def format_maze(grid: np.ndarray) -> str:
    """One row per line with '.' for open cells; ``parse_maze`` reads it back."""
    grid = np.asarray(grid)
    side = grid.shape[-1]
    return "\n".join(to_string(grid[r]).replace(" ", OPEN_ALIAS) for r in range(side))


def to_tokens(grids: np.ndarray) -> np.ndarray:
    """Grids ``[..., size, size]`` to flat tokens ``uint8 [..., size*size]`` (grids already hold tokens)."""
    grids = np.asarray(grids)
    return grids.reshape(*grids.shape[:-2], grids.shape[-2] * grids.shape[-1]).astype(np.uint8)


def from_tokens(tokens: np.ndarray, size: int) -> np.ndarray:
    """Flat tokens back to grids; out-of-vocabulary model outputs become PAD so they fail every check."""
    tokens = np.asarray(tokens)
    tokens = np.where((tokens >= 0) & (tokens < VOCAB_SIZE), tokens, PAD).astype(np.uint8)
    return tokens.reshape(*tokens.shape[:-1], size, size)


# ----------------------------------------------------------------------------------------------------------------
# Breadth-first search on batches of boolean grids


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """Cells 4-adjacent to any cell of ``mask [N, H, W]``; the grid edge is the boundary."""
    out = np.zeros_like(mask)
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def bfs(passable: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Distances ``int32 [N, H, W]`` from the ``start`` cells through ``passable`` cells; -1 where unreachable."""
    dist = np.full(passable.shape, -1, dtype=np.int32)
    frontier = start & passable
    dist[frontier] = 0
    visited = frontier.copy()
    level = 0
    while frontier.any():
        level += 1
        frontier = _neighbours(frontier) & passable & ~visited
        dist[frontier] = level
        visited |= frontier
    return dist


def _at(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The value of each grid at its single marked cell (S or G)."""
    n = values.shape[0]
    return values.reshape(n, -1)[np.arange(n), mask.reshape(n, -1).argmax(axis=1)]


def shortest_lengths(grids: np.ndarray) -> np.ndarray:
    """Moves on a shortest S-to-G path through non-wall cells, per grid ``[N, size, size]``; -1 if unreachable."""
    grids = np.asarray(grids)
    return _at(bfs(grids != WALL, grids == START), grids == GOAL)


def label_paths(grids: np.ndarray) -> np.ndarray:
    """Answers: each question with one shortest path marked 'o'. Walking back from G, ties go to the first of
    up, left, down, right, so the label is a fixed function of the maze (learnable) rather than a coin flip."""
    grids = np.asarray(grids)
    n, side = grids.shape[0], grids.shape[1]
    dist = bfs(grids != WALL, grids == START)
    length = _at(dist, grids == GOAL)
    if np.any(length < 0):
        raise DataError(f"maze {int(np.argmax(length < 0))}: the goal G cannot be reached from the start S")
    padded = np.full((n, side + 2, side + 2), -2, dtype=np.int32)
    padded[:, 1:-1, 1:-1] = dist
    pos = np.stack(np.unravel_index((grids == GOAL).reshape(n, -1).argmax(axis=1), (side, side)), axis=1) + 1
    answers = grids.copy()
    rows = np.arange(n)
    for remaining in range(int(length.max()) - 1, 0, -1):
        walking = length > remaining
        chosen = np.zeros(n, dtype=bool)
        step = pos.copy()
        for dr, dc in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            ok = walking & ~chosen & (padded[rows, pos[:, 0] + dr, pos[:, 1] + dc] == remaining)
            step[ok] = pos[ok] + (dr, dc)
            chosen |= ok
        pos = step
        answers[rows[walking], pos[walking, 0] - 1, pos[walking, 1] - 1] = PATH
    return answers


# ----------------------------------------------------------------------------------------------------------------
# Generator: seeded chunks of candidates, double-sweep BFS on bitboards


def _sweep(open_bits: np.ndarray, start_bits: np.ndarray, far_after: int | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BFS on bitboards (one uint64 per row, bit c = column c) from one cell per maze.

    Returns each maze's eccentricity from the start, its farthest cells, and (when ``far_after`` is given) the cells
    more than ``far_after`` moves away. Mazes whose wavefront died are dropped from the working set as they finish,
    so the long tail of deep mazes costs little.
    """
    n = open_bits.shape[0]
    ecc = np.zeros(n, dtype=np.int32)
    last = start_bits.copy()
    far = np.zeros_like(start_bits)
    idx = np.arange(n)
    passable, visited, frontier = open_bits, start_bits.copy(), start_bits.copy()
    level = 0
    while idx.size:
        level += 1
        nxt = (frontier << np.uint64(1)) | (frontier >> np.uint64(1))
        nxt[:, 1:] |= frontier[:, :-1]
        nxt[:, :-1] |= frontier[:, 1:]
        nxt &= passable & ~visited
        alive = nxt.any(axis=1)
        if far_after is not None and level > far_after:
            far[idx] |= nxt
        ecc[idx[alive]] = level
        last[idx[alive]] = nxt[alive]
        if not alive.all():
            idx, passable, visited, nxt = idx[alive], passable[alive], visited[alive], nxt[alive]
        visited |= nxt
        frontier = nxt
    return ecc, last, far


def _bits_to_bool(bits: np.ndarray, size: int) -> np.ndarray:
    return ((bits[:, :, None] >> np.arange(size, dtype=np.uint64)) & np.uint64(1)).astype(bool)


def _bool_to_bits(mask: np.ndarray) -> np.ndarray:
    return (mask.astype(np.uint64) << np.arange(mask.shape[-1], dtype=np.uint64)).sum(axis=-1, dtype=np.uint64)


def _pick(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random marked cell per grid of ``mask [N, H, W]`` (each has at least one), as a one-hot mask."""
    n, cells = mask.shape[0], mask.shape[1] * mask.shape[2]
    keys = np.where(mask.reshape(n, cells), rng.random((n, cells)), -1.0)
    one_hot = np.zeros((n, cells), dtype=bool)
    one_hot[np.arange(n), keys.argmax(axis=1)] = True
    return one_hot.reshape(mask.shape)


def _generate_chunk(size: int, min_path: int, density: tuple[float, float], seed: int, chunk: int
                    ) -> list[tuple[bytes, bytes, int]]:
    """The qualifying mazes among the ``CHUNK`` candidates of chunk ``chunk`` of stream ``seed``.

    Everything is drawn from the chunk's own generator, so a chunk's output never depends on which process ran it.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk,)))
    cells = size * size
    walls = rng.integers(round(density[0] * cells), round(density[1] * cells) + 1, size=CHUNK)
    keys = rng.random((CHUNK, cells))
    threshold = np.take_along_axis(np.sort(keys, axis=1), np.minimum(walls, cells - 1)[:, None], axis=1)
    open_ = (keys >= threshold).reshape(CHUNK, size, size)   # exactly `walls` cells fall below the threshold
    open_ &= (walls < cells)[:, None, None]
    usable = open_.reshape(CHUNK, -1).any(axis=1)
    open_ = open_[usable]
    open_bits = _bool_to_bits(open_)
    ecc, last, _ = _sweep(open_bits, _bool_to_bits(_pick(open_, rng)), None)
    # d(u, v) <= d(u, s0) + d(s0, v) <= 2 ecc(s0): mazes failing this cannot contain a long enough path from u.
    keep = 2 * ecc > min_path
    open_, open_bits, last = open_[keep], open_bits[keep], last[keep]
    u = _pick(_bits_to_bool(last, size), rng)
    _, _, far = _sweep(open_bits, _bool_to_bits(u), min_path)
    hit = far.any(axis=1)
    if not hit.any():
        return []
    open_, u = open_[hit], u[hit]
    v = _pick(_bits_to_bool(far[hit], size), rng)
    swap = (rng.random(len(u)) < 0.5)[:, None, None]
    grids = np.where(open_, OPEN, WALL).astype(np.uint8)
    grids[np.where(swap, v, u)] = START
    grids[np.where(swap, u, v)] = GOAL
    answers = label_paths(grids)
    lengths = shortest_lengths(grids)
    return [(q.tobytes(), a.tobytes(), int(d)) for q, a, d in zip(grids, answers, lengths)]


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork where available: workers then need no importable ``__main__``, so plain scripts and notebooks work."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


@dataclass
class Mazes:
    """Questions and answers ``uint8 [N, size, size]`` and ratings (shortest-path moves) ``int64 [N]``."""

    questions: np.ndarray
    answers: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return len(self.ratings)

    def rows(self, selection: np.ndarray | slice) -> Mazes:
        return Mazes(self.questions[selection], self.answers[selection], self.ratings[selection])


def generate_mazes(count: int, size: int = 30, min_path: int = 110, seed: int = 0,
                   density: tuple[float, float] = (0.3, 0.5), workers: int = 2, progress: bool = False) -> Mazes:
    """``count`` distinct mazes whose shortest S-G path has more than ``min_path`` moves, each labelled.

    Chunks of candidates are seeded from (seed, chunk index) and consumed in index order, so the result is identical
    for any ``workers``; extra chunks a pool computes ahead are discarded.
    """
    if not 2 <= size <= MAX_GENERATED_SIZE:
        raise DataError(f"maze size must be 2 to {MAX_GENERATED_SIZE} for generation, got {size}")
    if count < 0 or seed < 0 or min_path < 0:
        raise DataError(f"count, seed and min_path must be non-negative (got {count}, {seed}, {min_path})")
    if not 0 <= density[0] <= density[1] < 1:
        raise DataError(f"wall density range must satisfy 0 <= low <= high < 1, got {density[0]}-{density[1]}")
    task = partial(_generate_chunk, size, min_path, density, seed)
    found: dict[bytes, tuple[bytes, bytes, int]] = {}
    next_chunk = fruitless = 0
    bar = tqdm(total=count, desc=f"generating {size}x{size} mazes", disable=not progress)
    pool = _pool_context().Pool(workers) if workers > 1 else None
    try:
        while len(found) < count:
            rate = len(found) / next_chunk if found else 0.0
            want = math.ceil((count - len(found)) / rate * 1.1) if rate else 2 * max(workers, 1)
            batch = range(next_chunk, next_chunk + max(workers, min(want, 16 * max(workers, 1))))
            results = pool.imap(task, batch) if pool else map(task, batch)
            for mazes in results:
                next_chunk += 1
                fruitless = 0 if mazes else fruitless + 1
                for item in mazes:
                    if len(found) < count and item[0] not in found:
                        found[item[0]] = item
                        bar.update()
                if len(found) >= count:
                    break
                if fruitless >= MAX_FRUITLESS_CHUNKS:
                    raise DataError(f"no {size}x{size} maze with a path over {min_path} moves in "
                                    f"{fruitless * CHUNK:,} candidates; lower min_path or raise the size")
    finally:
        bar.close()
        if pool:
            pool.terminate()
    items = list(found.values())
    shape = (len(items), size, size)
    return Mazes(np.frombuffer(b"".join(q for q, _, _ in items), dtype=np.uint8).reshape(shape).copy(),
                 np.frombuffer(b"".join(a for _, a, _ in items), dtype=np.uint8).reshape(shape).copy(),
                 np.array([d for _, _, d in items], dtype=np.int64))


# ----------------------------------------------------------------------------------------------------------------
# Checks and augmentation


def path_problems(questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Per pair, 0 when the answer is the question plus one shortest S-G path of 'o' cells; else a reason code:
    1 changes a wall, S, G or leaves PAD, 2 the path does not connect S and G, 3 it is longer than the shortest."""
    q = np.asarray(questions)
    a = np.asarray(answers)
    fixed = (q != OPEN)
    changed = np.any((fixed & (a != q)) | (~fixed & (a != OPEN) & (a != PATH)), axis=(1, 2))
    on_path = (a == PATH) | (a == START) | (a == GOAL)
    along = _at(bfs(on_path & ~changed[:, None, None], a == START), q == GOAL)
    shortest = shortest_lengths(q)
    cells = on_path.sum(axis=(1, 2))
    return np.select([changed, along < 0, (along != shortest) | (cells != shortest + 1)], [1, 2, 3], 0)


def is_shortest_path(questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """True where the answer marks exactly one shortest S-G path and changes nothing else (batch ``[N, s, s]``).

    A path of shortest length along 'o' cells plus exactly shortest+1 marked cells means no stray 'o' anywhere.
    """
    return path_problems(questions, answers) == 0


def has_several_shortest_paths(questions: np.ndarray) -> np.ndarray:
    """True where more than one shortest S-G path exists, so exact match against one label undercounts.

    A cell lies on some shortest path iff d(S, cell) + d(cell, G) = d(S, G); the path is unique iff there are
    exactly d + 1 such cells (one per distance).
    """
    q = np.asarray(questions)
    passable = q != WALL
    from_s = bfs(passable, q == START)
    from_g = bfs(passable, q == GOAL)
    d = _at(from_s, q == GOAL)
    on = (from_s >= 0) & (from_g >= 0) & (from_s + from_g == d[:, None, None])
    return on.sum(axis=(1, 2)) > d + 1


# ----------------------------------------------------------------------------------------------------------------
# CSV input and output (the official maze-30x30-hard-1k layout)


def read_csv(path: str | Path, size: int | None = None) -> tuple[Mazes, list[str]]:
    """Read ``source,question,answer,rating`` rows (one-line grids). Every question needs one S and one G, every
    answer must be its question with one shortest path marked; DataError names the file and line otherwise."""
    path = Path(path)
    rows = read_rows(path, "maze")
    texts = list(zip(rows.questions, rows.answers))
    ratings, sources, lines = rows.ratings, rows.sources, rows.lines
    if size is None:
        size = math.isqrt(len(texts[0][0]))
        if size * size != len(texts[0][0]):
            parse_maze(texts[0][0], where=f"{path}:{lines[0]}: question")  # raises: not a square grid
    questions = _grids_from_strings([q for q, _ in texts], size, path, lines, "question")
    answers = _grids_from_strings([a for _, a in texts], size, path, lines, "answer")
    problems = path_problems(questions, answers)
    bad = np.flatnonzero(problems)
    if bad.size:
        i = int(bad[0])
        if shortest_lengths(questions[i:i + 1])[0] < 0:
            raise DataError(f"{path}:{lines[i]}: question: the goal G cannot be reached from the start S")
        reason = {1: "changes a wall, S or G of its question", 2: "has no path of 'o' cells joining S and G",
                  3: "is not one shortest path (too long, or stray 'o' cells)"}[int(problems[i])]
        raise DataError(f"{path}:{lines[i]}: answer {reason}")
    return Mazes(questions, answers, np.array(ratings, dtype=np.int64)), sources


def _grids_from_strings(texts: list[str], size: int, path: Path, lines: list[int], column: str) -> np.ndarray:
    """Vectorised parse of one-line grids; the first bad row is re-parsed by ``parse_maze`` for its exact reason."""
    cells = size * size
    ok_length = all(len(t) == cells for t in texts)
    raw = "".join(texts)
    if ok_length and raw.isascii():
        grids = _char_table()[np.frombuffer(raw.encode("ascii"), dtype=np.uint8)].reshape(len(texts), size, size)
        counts_ok = ((grids == START).sum(axis=(1, 2)) == 1) & ((grids == GOAL).sum(axis=(1, 2)) == 1)
        bad_chars = np.any(grids == PAD, axis=(1, 2)) | (column == "question") & np.any(grids == PATH, axis=(1, 2))
        bad = np.flatnonzero(bad_chars | ~counts_ok)
        if not bad.size:
            return grids
        suspects = [int(bad[0])]
    else:
        suspects = range(len(texts))
    for i in suspects:
        parse_maze(texts[i], size, where=f"{path}:{lines[i]}: {column}", answer=column == "answer",
                   check_reachable=False)
    raise AssertionError("a row failed the vectorised parse but passed parse_maze")


def write_csv(path: str | Path, mazes: Mazes, source: str = "generated") -> Path:
    """Write the official CSV layout (one-line grids, ``rating`` = shortest-path moves); ``read_csv`` reads it."""
    path = ensure_output_file(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for q, a, r in zip(mazes.questions, mazes.answers, mazes.ratings.tolist()):
            writer.writerow([source, to_string(q), to_string(a), r])
    return path


# ----------------------------------------------------------------------------------------------------------------
# Dataset builders (official layout)


@dataclass
class BuildSummary:
    """What a builder wrote, for the CLI to print."""

    out_dir: Path
    size: int
    train_mazes: int
    train_puzzles: int
    test_puzzles: int
    augmented: bool
    mean_train_rating: float
    mean_test_rating: float
    test_several_shortest: float

    def __str__(self) -> str:
        variants = NUM_DIHEDRAL if self.augmented else 1
        return "\n".join([
            f"wrote {self.out_dir} ({self.size}x{self.size} mazes, vocab {VOCAB_SIZE}, seq_len {self.size ** 2})",
            f"  train: {self.train_mazes} mazes x {variants} variants = {self.train_puzzles} examples, "
            f"mean shortest path {self.mean_train_rating:.1f} moves  -> {self.out_dir / 'train'}",
            f"  test:  {self.test_puzzles} examples, mean shortest path {self.mean_test_rating:.1f} moves, "
            f"{self.test_several_shortest:.1%} with more than one shortest path  -> {self.out_dir / 'test'}",
        ])


def _write_maze_split(split_dir: Path, mazes: Mazes, augment: bool) -> int:
    """Each maze is one group: a single puzzle, or its 8 dihedral images as 8 puzzles (the official ``--aug``)."""
    variants = NUM_DIHEDRAL if augment else 1
    q = np.stack([dihedral(mazes.questions, t) for t in range(variants)], axis=1)
    a = np.stack([dihedral(mazes.answers, t) for t in range(variants)], axis=1)
    total = len(mazes) * variants
    split = PuzzleSplit.from_counts(
        inputs=to_tokens(q).reshape(total, -1),
        labels=to_tokens(a).reshape(total, -1),
        puzzle_identifiers=np.zeros(total, dtype=np.int32),
        examples_per_puzzle=np.ones(total, dtype=np.int64),
        puzzles_per_group=np.full(len(mazes), variants, dtype=np.int64),
    )
    metadata = DatasetMetadata.for_split(split, vocab_size=VOCAB_SIZE, num_puzzle_identifiers=1, pad_id=PAD,
                                         ignore_label_id=0, task="maze", task_params={"size": q.shape[-1]})
    write_split(split_dir, split, metadata)
    return total


def _write_dataset(out_dir: str | Path, train: Mazes, test: Mazes, augment: bool) -> BuildSummary:
    """Write train/ (optionally augmented), test/ (never augmented) and identifiers.json."""
    out_dir = Path(out_dir)
    if len(train) == 0:
        raise DataError("no training mazes")
    size = train.questions.shape[1]
    train_total = _write_maze_split(out_dir / "train", train, augment)
    test_total = _write_maze_split(out_dir / "test", test, False)
    write_identifiers(out_dir, [BLANK_IDENTIFIER_NAME])
    several = has_several_shortest_paths(test.questions) if len(test) else np.zeros(0, dtype=bool)
    return BuildSummary(out_dir, size, len(train), train_total, test_total, augment,
                        float(train.ratings.mean()), float(test.ratings.mean()) if len(test) else 0.0,
                        float(several.mean()) if len(test) else 0.0)


def build_from_csv(train_csv: str | Path, test_csv: str | Path, out_dir: str | Path,
                   augment: bool = False) -> BuildSummary:
    """Build the official layout from ``maze-30x30-hard-1k``-style CSVs (the papers' dataset when the official
    files are given); ``augment`` adds the 8 dihedral images of every training maze, as the official ``--aug``."""
    check_output_dir(out_dir)
    train, _ = read_csv(train_csv)
    test, _ = read_csv(test_csv, size=train.questions.shape[1])
    return _write_dataset(out_dir, train, test, augment)


def build_generated(out_dir: str | Path, num_train: int = 1000, num_test: int = 1000, size: int = 30,
                    min_path: int = 110, seed: int = 0, augment: bool = False, workers: int = 2,
                    density: tuple[float, float] = (0.3, 0.5), progress: bool = False) -> BuildSummary:
    """Generate a Maze-Hard-like set and write it in the official layout, plus ``train.csv``/``test.csv`` in the
    official CSV layout. No maze appears twice or in both splits; the first ``num_test`` mazes of the seed's stream
    are the test split, so growing ``num_train`` keeps the test set unchanged."""
    if num_train <= 0 or num_test < 0:
        raise DataError(f"need num_train > 0 and num_test >= 0, got {num_train} and {num_test}")
    check_output_dir(out_dir)  # before generating
    mazes = generate_mazes(num_test + num_train, size, min_path, seed, density, workers, progress)
    test, train = mazes.rows(slice(0, num_test)), mazes.rows(slice(num_test, None))
    write_csv(Path(out_dir) / "train.csv", train)
    write_csv(Path(out_dir) / "test.csv", test)
    return _write_dataset(out_dir, train, test, augment)
