"""Sudoku of any box shape (4x4, 6x6, 9x9, ...): generated offline with an exact solver, or read from a
Sudoku-Extreme style CSV (the HRM/TRM papers' data, built as the official ``build_sudoku_dataset.py`` does)."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentloop.data import sudoku_augment, sudoku_build, sudoku_grid, sudoku_solver
from latentloop.errors import DataError
from latentloop.tasks import register
from latentloop.tasks.augmentation import CellPermutation
from latentloop.tasks.base import GridStyle, Log, Task, TaskOptions, ViewerStyle


@dataclass
class SudokuOptions(TaskOptions):
    size: int = field(default=9, metadata={"help": "grid size for generated puzzles: 4, 6 or 9"})
    num_train: int = field(default=1000, metadata={"help": "generated training puzzles"})
    num_test: int = field(default=1000, metadata={"help": "generated held-out puzzles"})
    num_aug: int = field(default=0, metadata={"help": "validity-preserving augmentations per training puzzle"})
    min_rating: int = field(default=0, metadata={"help": "keep puzzles whose difficulty rating is at least this"})


@register
class SudokuTask(Task):
    """Sudoku of the data's size: strings, grid files, many-per-line files and Sudoku-Extreme CSVs."""

    name = "sudoku"
    summary = "generate Sudoku offline, or build from a Sudoku-Extreme style CSV"
    Options = SudokuOptions
    verdicts = {True: "valid: every rule holds and the givens are kept",
                False: "NOT valid: it breaks a rule or changes a given"}

    def __init__(self, size: int = 9, box: list[int] | tuple[int, int] | None = None) -> None:
        self.shape = sudoku_grid.shape_for_size(size, tuple(box) if box else None)

    def params(self) -> dict[str, Any]:
        return {"size": self.shape.size, "box": [self.shape.box_rows, self.shape.box_cols]}

    @property
    def vocab_size(self) -> int:
        return self.shape.vocab_size

    @property
    def seq_len(self) -> int:
        return self.shape.seq_len

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def add_data_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.description = ("Without --csv: generate unique-solution minimal puzzles with an exact solver. With "
                              "--csv: read `source,question,answer,rating` rows (Sudoku-Extreme layout).")
        super().add_data_arguments(parser)
        parser.add_argument("--csv", help="training CSV in the Sudoku-Extreme layout")
        parser.add_argument("--test-csv", help="test CSV; without it a --test-fraction of --csv is held out")
        parser.add_argument("--test-fraction", type=float, default=0.1, help="held-out share when no --test-csv")
        parser.add_argument("--subsample-size", type=int, help="keep this many training puzzles (seeded)")
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for generation")

    @classmethod
    def build_from_args(cls, args: argparse.Namespace, log: Log) -> str:
        if args.csv:
            return str(sudoku_build.build_from_csv(args.csv, args.out, test_csv=args.test_csv,
                                                   test_fraction=args.test_fraction,
                                                   subsample_size=args.subsample_size, num_aug=args.num_aug,
                                                   min_rating=args.min_rating or None, seed=args.seed))
        options = cls.options_from_args(args)
        return cls._generate(Path(args.out), options, workers=args.workers)

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        assert isinstance(options, SudokuOptions)
        log(f"generating {options.num_train:,} + {options.num_test:,} {options.size}x{options.size} Sudoku puzzles "
            f"into {out} (seed {options.seed})")
        return cls._generate(out, options)

    @staticmethod
    def _generate(out: Path, o: SudokuOptions, **kwargs: Any) -> str:
        return str(sudoku_build.build_generated(out, sudoku_grid.shape_for_size(o.size), o.num_train, o.num_test,
                                                seed=o.seed, num_aug=o.num_aug, min_rating=o.min_rating,
                                                progress=True, **kwargs))

    @classmethod
    def infer(cls, meta: Any, data_path: Path | None) -> Task | None:
        """The official Sudoku-Extreme files and older latentloop builds: size*size cells, PAD + blank + digits.
        A 4x4 board has the maze vocabulary too: then the labels decide (a maze label has one S and one G)."""
        size = math.isqrt(meta.seq_len)
        if size * size != meta.seq_len or meta.vocab_size != size + 2 or size < 4:
            return None
        if data_path is not None and size == 4 and _looks_like_mazes(data_path):
            return None
        try:
            return cls(size)
        except DataError:
            return None

    # --- one puzzle -------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "puzzle") -> np.ndarray:
        return sudoku_grid.parse_puzzle(text, self.shape, where=where)

    def read(self, source: str) -> list[np.ndarray]:
        """One puzzle from a string or a grid file, or many from a file with one puzzle per line or a CSV."""
        path = Path(source)
        if path.is_file() and path.suffix == ".csv":
            return list(sudoku_build.read_csv(path, self.shape)[0])
        if not path.is_file() or path.suffix == ".json":
            return super().read(source)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ({exc.__class__.__name__})") from None
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        cells = self.shape.size ** 2
        if len(lines) > 1 and all(len("".join(line.split())) == cells for line in lines):
            return [self.parse(line, f"{path}:{i}") for i, line in enumerate(lines, 1)]
        return [self.parse("\n".join(lines), str(path))]

    def encode(self, puzzles: list[np.ndarray]) -> np.ndarray:
        return sudoku_grid.to_tokens(np.stack(puzzles)).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return sudoku_grid.from_tokens(tokens, self.shape)

    def check(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        return sudoku_solver.is_valid_solution(answer, puzzle, self.shape)

    def format(self, answer: np.ndarray) -> str:
        return sudoku_grid.format_grid(answer, self.shape)

    def one_line(self, answer: np.ndarray) -> str:
        return sudoku_grid.to_string(answer)

    def reference(self, puzzle: np.ndarray) -> np.ndarray | None:
        """The exact solver's answer as tokens when the puzzle has exactly one solution, else None."""
        found = sudoku_solver.solve(puzzle, self.shape, limit=2).solutions
        return sudoku_grid.to_tokens(found[0]).astype(np.int64) if len(found) == 1 else None

    def givens(self, puzzle: np.ndarray) -> np.ndarray:
        return np.asarray(puzzle).reshape(-1) != 0

    # --- augmentations ----------------------------------------------------------------------------------------------

    def augmentation_count(self) -> int:
        """Digit relabellings x band, row-in-band, stack and column-in-stack orders (x 2 for the transposition,
        square boxes only): every such map is a different map of cells and digits."""
        size, rows, cols = self.shape.size, self.shape.box_rows, self.shape.box_cols
        lines = math.factorial(size // rows) * math.factorial(rows) ** (size // rows)
        lines *= math.factorial(size // cols) * math.factorial(cols) ** (size // cols)
        return math.factorial(size) * lines * (2 if rows == cols else 1)

    def random_augmentation(self, rng: np.random.Generator, index: int) -> CellPermutation:
        """The builders' transform (`latentloop.data.sudoku_augment.random_maps`) as a map of token rows: PAD and
        blank stay, digit d becomes digits[d]."""
        cells, digits = sudoku_augment.random_maps(self.shape, rng, 1)
        tokens = np.concatenate([[sudoku_grid.PAD_TOKEN], digits[0].astype(np.int64) + sudoku_grid.BLANK_TOKEN])
        return CellPermutation(f"sudoku-{index}", cells[0], tokens)

    # --- pictures ---------------------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        size = self.shape.size
        return GridStyle(rows=size, cols=size, text=lambda t: sudoku_grid.DIGIT_CHARS[t - 2] if t >= 2 else "",
                         color=lambda t: "white", box=(self.shape.box_rows, self.shape.box_cols))

    def viewer_style(self) -> ViewerStyle:
        digits = [sudoku_grid.DIGIT_CHARS[d] for d in range(self.shape.size)]
        return ViewerStyle(labels=["", "."] + digits, cols=self.shape.size, blank=sudoku_grid.BLANK_TOKEN)


def _looks_like_mazes(data_path: Path) -> bool:
    """Whether the first test labels of a 4x4, 6-token dataset are mazes (one S and one G per row)."""
    from latentloop.data.format import read_split
    from latentloop.data.maze import GOAL, START

    for split in ("test", "train"):
        if (data_path / split).is_dir():
            labels = np.asarray(read_split(data_path / split)[0].labels[:64])
            if len(labels):
                return bool(np.all((labels == START).sum(-1) == 1) and np.all((labels == GOAL).sum(-1) == 1))
    return False
