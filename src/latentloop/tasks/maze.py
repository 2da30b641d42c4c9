"""Mazes: mark a shortest path from S to G (the papers' Maze-Hard), generated offline or read from the official
``maze-30x30-hard-1k`` CSVs. Any shortest path counts as valid, not only the one a label shows."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentloop.data import maze
from latentloop.data.grids import NUM_DIHEDRAL, dihedral
from latentloop.errors import ConfigError, DataError
from latentloop.tasks import register
from latentloop.tasks.augmentation import CellPermutation
from latentloop.tasks.base import GridStyle, Log, Task, TaskOptions, ViewerStyle, sum_over_ranks

DIHEDRAL_NAMES = ("identity", "rotate-90", "rotate-180", "rotate-270", "flip-left-right", "flip-up-down", "transpose",
                  "anti-transpose")    # in the numbering of latentloop.data.grids.dihedral
COLORS = {maze.WALL: "#2d3436", maze.OPEN: "white", maze.START: "#27ae60", maze.GOAL: "#e74c3c", maze.PATH: "#74b9ff"}


@dataclass
class MazeOptions(TaskOptions):
    size: int = field(default=30, metadata={"help": "grid side for generated mazes"})
    num_train: int = field(default=1000, metadata={"help": "generated training mazes"})
    num_test: int = field(default=1000, metadata={"help": "generated held-out mazes"})
    min_path: int = field(default=110, metadata={"help": "keep mazes whose shortest path has more moves than this"})
    num_aug: int = field(default=0, metadata={"help": f"0, or {NUM_DIHEDRAL - 1} for the dihedral images"})


@dataclass
class MazeTally:
    """Path-aware scores gathered batch by batch (an evaluation observer). Most Maze-Hard mazes have several
    shortest paths but the label shows one, so exact match (the official metric) undercounts right answers; the
    papers define success as a valid shortest path. Both are reported, with the share of mazes where they differ."""

    side: int
    valid: int = 0
    several: int = 0
    count: int = 0

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        questions = maze.from_tokens(inputs, self.side)
        self.valid += int(maze.is_shortest_path(questions, maze.from_tokens(predictions, self.side)).sum())
        self.several += int(maze.has_several_shortest_paths(questions).sum())
        self.count += len(inputs)

    def metrics(self) -> dict[str, float]:
        """Shares over every rank's examples (a sum all-reduce under torch.distributed; all ranks call it)."""
        valid, several, count = sum_over_ranks([self.valid, self.several, self.count]).tolist()
        return {"valid_path_accuracy": valid / count if count else 0.0,
                "several_shortest_share": several / count if count else 0.0}

    def report(self) -> str:
        m = self.metrics()
        return (f"  maze: valid shortest path {m['valid_path_accuracy']:.2%} (exact match above compares with the "
                f"one labelled path); {m['several_shortest_share']:.1%} of these mazes have more than one shortest "
                f"path")


@register
class MazeTask(Task):
    """Mazes of the data's size: a one-line maze, a grid file, many one-line mazes per file, or a maze CSV."""

    name = "maze"
    summary = "generate Maze-Hard-like mazes offline, or build from the official maze CSVs"
    Options = MazeOptions
    verdicts = {True: "valid: a shortest path from S to G through open cells, walls unchanged",
                False: "NOT valid: the path is broken, not the shortest, or changes the maze"}

    def __init__(self, size: int = 30) -> None:
        if not 2 <= size <= 1024:
            raise DataError(f"a maze side is between 2 and 1024, got {size}")
        self.size = size

    def params(self) -> dict[str, Any]:
        return {"size": self.size}

    @property
    def vocab_size(self) -> int:
        return maze.VOCAB_SIZE

    @property
    def seq_len(self) -> int:
        return self.size * self.size

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def add_data_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.description = ("Without --csv: generate mazes whose shortest S-G path has more than --min-path moves "
                              "(Maze-Hard recipe) and label one shortest path. With --csv and --test-csv: read "
                              "`source,question,answer,rating` rows (maze-30x30-hard-1k).")
        super().add_data_arguments(parser)
        parser.add_argument("--aug", action="store_true", help="add the 8 dihedral images of each training maze "
                                                               "as a group (the same as --num-aug 7)")
        parser.add_argument("--csv", help="training CSV in the maze-30x30-hard-1k layout")
        parser.add_argument("--test-csv", help="test CSV (required with --csv)")
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for generation")

    @classmethod
    def build_from_args(cls, args: argparse.Namespace, log: Log) -> str:
        if args.aug:
            args.num_aug = NUM_DIHEDRAL - 1
        options = cls._checked(cls.options_from_args(args))
        if args.csv:
            if not args.test_csv:
                raise DataError("--csv needs --test-csv (the official maze set ships train.csv and test.csv)")
            return str(maze.build_from_csv(args.csv, args.test_csv, args.out, augment=bool(options.num_aug)))
        return cls._generate(Path(args.out), options, workers=args.workers)

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        o = cls._checked(options)
        log(f"generating {o.num_train:,} + {o.num_test:,} {o.size}x{o.size} mazes (path > {o.min_path} moves) into "
            f"{out} (seed {o.seed})")
        return cls._generate(out, o, workers=os.cpu_count() or 1)

    @staticmethod
    def _checked(options: TaskOptions) -> MazeOptions:
        assert isinstance(options, MazeOptions)
        if options.num_aug not in (0, NUM_DIHEDRAL - 1):
            raise ConfigError(f"data.num_aug for mazes is 0 or {NUM_DIHEDRAL - 1} (the dihedral images), got "
                              f"{options.num_aug}")
        return options

    @staticmethod
    def _generate(out: Path, o: MazeOptions, workers: int) -> str:
        return str(maze.build_generated(out, o.num_train, o.num_test, o.size, o.min_path, o.seed,
                                        augment=bool(o.num_aug), workers=workers, progress=True))

    @classmethod
    def infer(cls, meta: Any, data_path: Path | None) -> Task | None:
        """Official maze files and older latentloop builds: 6 tokens on a square grid; a 4x4 grid only when the
        labels are mazes (a 4x4 Sudoku has the same vocabulary)."""
        side = math.isqrt(meta.seq_len)
        if meta.vocab_size != maze.VOCAB_SIZE or side * side != meta.seq_len or side < 2:
            return None
        if side == 4:
            from latentloop.tasks.sudoku import _looks_like_mazes

            if data_path is None or not _looks_like_mazes(data_path):
                return None
        return cls(side)

    # --- one puzzle -------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "maze") -> np.ndarray:
        return maze.parse_maze(text, self.size, where=where)

    def read(self, source: str) -> list[np.ndarray]:
        path = Path(source)
        if path.is_file() and path.suffix == ".csv":
            return list(maze.read_csv(path, self.size)[0].questions)
        if not path.is_file() or path.suffix == ".json":
            return super().read(source)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ({exc.__class__.__name__})") from None
        lines = [line for line in text.replace("\r", "").split("\n") if line]
        if len(lines) > 1 and all(len(line) == self.size ** 2 for line in lines):
            return [self.parse(line, f"{path}:{i}") for i, line in enumerate(lines, 1)]
        return [self.parse(text, str(path))]

    def encode(self, puzzles: list[np.ndarray]) -> np.ndarray:
        return maze.to_tokens(np.stack(puzzles)).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return maze.from_tokens(tokens, self.size)

    def check(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        return bool(maze.is_shortest_path(puzzle[None], answer[None])[0])

    def format(self, answer: np.ndarray) -> str:
        return maze.format_maze(answer)

    def one_line(self, answer: np.ndarray) -> str:
        return maze.to_string(answer)

    def reference(self, puzzle: np.ndarray) -> np.ndarray | None:
        """The shortest path as tokens when it is the only one (else other right answers would show as wrong)."""
        if maze.has_several_shortest_paths(puzzle[None])[0]:
            return None
        return maze.to_tokens(maze.label_paths(puzzle[None])[0]).astype(np.int64)

    def givens(self, puzzle: np.ndarray) -> np.ndarray:
        return np.asarray(puzzle).reshape(-1) != maze.OPEN

    # --- augmentations ----------------------------------------------------------------------------------------------

    def augmentation_count(self) -> int:
        """The 8 symmetries of the square: each maps walls, S, G and every shortest path to those of the image."""
        return NUM_DIHEDRAL

    def random_augmentation(self, rng: np.random.Generator, index: int) -> CellPermutation:
        """A non-identity dihedral image, the builder's (`--aug`) transform, as a map of cells."""
        transform = int(rng.integers(1, NUM_DIHEDRAL))
        cells = dihedral(np.arange(self.seq_len).reshape(self.size, self.size), transform).reshape(-1)
        return CellPermutation(DIHEDRAL_NAMES[transform], cells, np.arange(self.vocab_size))

    # --- pictures and metrics ---------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        return GridStyle(rows=self.size, cols=self.size, text=lambda t: {maze.START: "S", maze.GOAL: "G"}.get(t, ""),
                         color=lambda t: COLORS.get(t, "#bbbbbb"))

    def viewer_style(self) -> ViewerStyle:
        return ViewerStyle(labels=["", "#", " ", "S", "G", "o"], cols=self.size)

    def metrics(self, data_path: Path | None, split: Any, meta: Any) -> MazeTally:
        return MazeTally(self.size)
