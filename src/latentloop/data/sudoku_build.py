"""Sudoku datasets in the official layout: read from Sudoku-Extreme style CSVs, or generated; augmented train split.

Each original puzzle becomes one group of ``1 + num_aug`` single-example puzzles with puzzle identifier 0, as the
official ``build_sudoku_dataset.py`` writes them; the test split is never augmented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from latentloop.data.puzzle_csv import read_rows
from latentloop.data.sudoku_augment import augment_batch
from latentloop.data.sudoku_generator import GeneratedPuzzle, generate_puzzles
from latentloop.data.sudoku_grid import (
    BLANK_CHARS,
    DIGIT_CHARS,
    PAD_TOKEN,
    SudokuShape,
    geometry,
    parse_puzzle,
    shape_for_cells,
    shape_for_size,
    to_tokens,
)
from latentloop.errors import DataError
from latentloop.paths import check_output_dir

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
        shape = shape_for_cells(len(questions[0]), f"{path}:{lines[0]}: question")
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
    units = np.array(geometry(shape.box_rows, shape.box_cols).units)
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
