"""Solve a user's own puzzles with a trained checkpoint: read them in their own notation, answer, check, report.

A task adapter knows how to read, encode, decode, check and draw one kind of puzzle; `task_for_model` picks it from
the checkpoint's vocabulary and sequence length. Sudoku and mazes so far; ARC plugs in the same way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from latentloop.data import maze, sudoku
from latentloop.errors import DataError
from latentloop.evaluation.predict import predict
from latentloop.inspection.trace import GridStyle
from latentloop.models.config import ModelConfig


class SudokuTask:
    """Sudoku of the checkpoint's size: strings, grid files, many-per-line files and Sudoku-Extreme CSVs."""

    name = "sudoku"
    verdicts = {True: "valid: every rule holds and the givens are kept",
                False: "NOT valid: it breaks a rule or changes a given"}

    def __init__(self, shape: sudoku.SudokuShape) -> None:
        self.shape = shape

    @classmethod
    def matches(cls, cfg: ModelConfig) -> bool:
        size = math.isqrt(cfg.seq_len)
        return size * size == cfg.seq_len and cfg.vocab_size == size + 2

    def read(self, source: str) -> list[np.ndarray]:
        """One puzzle from a string or a grid file, or many from a file with one puzzle per line or a CSV."""
        path = Path(source)
        if not path.is_file():
            if path.suffix in (".txt", ".csv", ".sdk") or "/" in source:
                raise DataError(f"{source}: file not found")
            return [sudoku.parse_puzzle(source, self.shape)]
        if path.suffix == ".csv":
            return list(sudoku.read_csv(path, self.shape)[0])
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ({exc.__class__.__name__})") from None
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        cells = self.shape.size ** 2
        if len(lines) > 1 and all(len("".join(line.split())) == cells for line in lines):
            return [sudoku.parse_puzzle(line, self.shape, where=f"{path}:{i}") for i, line in enumerate(lines, 1)]
        return [sudoku.parse_puzzle("\n".join(lines), self.shape, where=str(path))]

    def encode(self, puzzles: list[np.ndarray]) -> np.ndarray:
        return sudoku.to_tokens(np.stack(puzzles)).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return sudoku.from_tokens(tokens, self.shape)

    def check(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        return sudoku.is_valid_solution(answer, puzzle, self.shape)

    def format(self, grid: np.ndarray) -> str:
        return sudoku.format_grid(grid, self.shape)

    def one_line(self, grid: np.ndarray) -> str:
        return sudoku.to_string(grid)

    def style(self) -> GridStyle:
        size = self.shape.size
        return GridStyle(rows=size, cols=size, text=lambda t: sudoku.DIGIT_CHARS[t - 2] if t >= 2 else "",
                         color=lambda t: "white", box=(self.shape.box_rows, self.shape.box_cols))

    def reference(self, puzzle: np.ndarray) -> np.ndarray | None:
        """The exact solver's answer as tokens when the puzzle has exactly one solution, else None."""
        found = sudoku.solve(puzzle, self.shape, limit=2).solutions
        return sudoku.to_tokens(found[0]).astype(np.int64) if len(found) == 1 else None

    def givens(self, puzzle: np.ndarray) -> np.ndarray:
        return (np.asarray(puzzle).reshape(-1) != 0)


class MazeTask:
    """Mazes of the checkpoint's size: a one-line maze, a grid file, many one-line mazes per file, or a maze CSV.
    An answer counts as valid when it marks any shortest S-G path, not only the one a label would show."""

    name = "maze"
    verdicts = {True: "valid: a shortest path from S to G through open cells, walls unchanged",
                False: "NOT valid: the path is broken, not the shortest, or changes the maze"}
    COLORS = {maze.WALL: "#2d3436", maze.OPEN: "white", maze.START: "#27ae60", maze.GOAL: "#e74c3c",
              maze.PATH: "#74b9ff"}

    def __init__(self, size: int) -> None:
        self.size = size

    @classmethod
    def matches(cls, cfg: ModelConfig) -> bool:
        return cfg.vocab_size == maze.VOCAB_SIZE and math.isqrt(cfg.seq_len) ** 2 == cfg.seq_len

    def read(self, source: str) -> list[np.ndarray]:
        path = Path(source)
        if not path.is_file():
            if path.suffix in (".txt", ".csv") or "/" in source:
                raise DataError(f"{source}: file not found")
            return [maze.parse_maze(source, self.size)]
        if path.suffix == ".csv":
            return list(maze.read_csv(path, self.size)[0].questions)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ({exc.__class__.__name__})") from None
        lines = [line for line in text.replace("\r", "").split("\n") if line]
        if len(lines) > 1 and all(len(line) == self.size ** 2 for line in lines):
            return [maze.parse_maze(line, self.size, where=f"{path}:{i}") for i, line in enumerate(lines, 1)]
        return [maze.parse_maze(text, self.size, where=str(path))]

    def encode(self, puzzles: list[np.ndarray]) -> np.ndarray:
        return maze.to_tokens(np.stack(puzzles)).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return maze.from_tokens(tokens, self.size)

    def check(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        return bool(maze.is_shortest_path(puzzle[None], answer[None])[0])

    def format(self, grid: np.ndarray) -> str:
        return maze.format_maze(grid)

    def one_line(self, grid: np.ndarray) -> str:
        return maze.to_string(grid)

    def style(self) -> GridStyle:
        return GridStyle(rows=self.size, cols=self.size, text=lambda t: {maze.START: "S", maze.GOAL: "G"}.get(t, ""),
                         color=lambda t: self.COLORS.get(t, "#bbbbbb"))

    def reference(self, puzzle: np.ndarray) -> np.ndarray | None:
        """The shortest path as tokens when it is the only one (else other right answers would show as wrong)."""
        if maze.has_several_shortest_paths(puzzle[None])[0]:
            return None
        return maze.to_tokens(maze.label_paths(puzzle[None])[0]).astype(np.int64)

    def givens(self, puzzle: np.ndarray) -> np.ndarray:
        return np.asarray(puzzle).reshape(-1) != maze.OPEN


TASKS = [SudokuTask, MazeTask]


def task_for_model(cfg: ModelConfig):
    if SudokuTask.matches(cfg):  # first: a 4x4 Sudoku has the maze vocabulary too
        return SudokuTask(sudoku.shape_for_size(math.isqrt(cfg.seq_len)))
    if MazeTask.matches(cfg):
        return MazeTask(math.isqrt(cfg.seq_len))
    raise DataError(f"cannot tell which puzzle this checkpoint solves (vocab {cfg.vocab_size}, seq_len {cfg.seq_len}); "
                    f"solve supports Sudoku and mazes")


@dataclass
class Solution:
    puzzle: np.ndarray
    answer: np.ndarray
    valid: bool | None
    steps: int
    halt_probability: float


def solve_puzzles(model, task, puzzles: list[np.ndarray], steps: int | None = None, halt_early: bool = True,
                  batch_size: int = 256, progress: bool = False, threshold: float = 0.5) -> tuple[list[Solution], float]:
    """Answer every puzzle; returns the solutions and the puzzles per second."""
    tokens = task.encode(puzzles)
    start = time.perf_counter()
    results: list[Solution] = []
    bar = tqdm(total=len(puzzles), unit="puzzle", desc="solve", disable=not progress)
    for lo in range(0, len(puzzles), batch_size):
        pred = predict(model, tokens[lo:lo + batch_size], steps=steps, halt_early=halt_early, batch_size=batch_size,
                       threshold=threshold)
        answers = task.decode(pred.tokens)
        for i, answer in enumerate(answers):
            puzzle = puzzles[lo + i]
            results.append(Solution(puzzle, answer, task.check(puzzle, answer), int(pred.steps[i]),
                                    float(pred.halt_probability[i])))
        bar.update(len(answers))
    bar.close()
    return results, len(puzzles) / max(time.perf_counter() - start, 1e-9)
