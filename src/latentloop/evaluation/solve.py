"""Solve a user's own puzzles with a trained checkpoint: read them in their own notation, answer, check, report.

A task adapter knows how to read, encode, decode, check and draw one kind of puzzle; `task_for_model` picks it from
the checkpoint's vocabulary and sequence length. Sudoku and mazes answer each puzzle once; an ARC task is answered by
voting over augmented copies of its test inputs (`solve_arc`), as the ARC evaluation does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from latentloop.data import maze, sudoku
from latentloop.data.arc_grid import (CANVAS, NUM_COLOURS, PAD, Variant, canvas_side, check_grid, encode_grid,
                                      is_arc_shape, parse_name)
from latentloop.data.format import read_json
from latentloop.data.grids import NUM_DIHEDRAL
from latentloop.errors import ConfigError, DataError
from latentloop.evaluation.arc import ArcTestInput, ArcVotes, Candidate, attempts, read_task_tests
from latentloop.evaluation.predict import predict
from latentloop.inspection.trace import GridStyle
from latentloop.models.config import ModelConfig
from latentloop.models.losses import IGNORE_LABEL, LOSSES
from latentloop.training.optim import PuzzleEmbeddingSignSGD


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


@dataclass
class ArcTaskFile:
    """One ARC task file: demo pairs and test inputs (outputs optional)."""

    task_id: str
    demos: list[tuple[np.ndarray, np.ndarray]]
    tests: list[ArcTestInput]


class ArcTask:
    """ARC tasks on the model's canvas (30x30 as the papers) with 12 tokens, one task JSON ({"train": [...],
    "test": [...]}) per file."""

    name = "arc"

    def __init__(self, canvas: int = CANVAS) -> None:
        self.canvas = canvas

    @classmethod
    def matches(cls, cfg: ModelConfig) -> bool:
        return is_arc_shape(cfg.vocab_size, cfg.seq_len)

    def read(self, source: str, task_id: str | None = None) -> ArcTaskFile:
        """The task in `source`, named `task_id` (default: the file name without .json); bad grids name the pair."""
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{source}: file not found (an ARC task is a JSON file with 'train' and 'test' pairs)")
        raw = read_json(path)
        where = str(path)
        if not isinstance(raw, dict):
            raise DataError(f"{where}: an ARC task is a JSON object with 'train' and 'test' lists")
        demos = []
        for i, pair in enumerate(raw.get("train") or []):
            if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
                raise DataError(f"{where} train pair {i}: needs an 'input' and an 'output' grid")
            demos.append((check_grid(pair["input"], f"{where} train pair {i} input", self.canvas),
                          check_grid(pair["output"], f"{where} train pair {i} output", self.canvas)))
        tests = read_task_tests(raw, where)
        for i, test in enumerate(tests):
            for kind, grid in (("input", test.input), ("output", test.output)):
                if grid is not None and max(grid.shape) > self.canvas:
                    raise DataError(f"{where} test pair {i} {kind}: grid is {grid.shape[0]}x{grid.shape[1]}, larger "
                                    f"than this model's {self.canvas}x{self.canvas} canvas")
        return ArcTaskFile(task_id or path.stem, demos, tests)


TASKS = [SudokuTask, MazeTask, ArcTask]


def task_for_model(cfg: ModelConfig):
    if SudokuTask.matches(cfg):  # first: a 4x4 Sudoku has the maze vocabulary too
        return SudokuTask(sudoku.shape_for_size(math.isqrt(cfg.seq_len)))
    if MazeTask.matches(cfg):
        return MazeTask(math.isqrt(cfg.seq_len))
    if ArcTask.matches(cfg):
        return ArcTask(canvas_side(cfg.seq_len))
    raise DataError(f"cannot tell which puzzle this checkpoint solves (vocab {cfg.vocab_size}, seq_len {cfg.seq_len}); "
                    f"solve supports Sudoku, mazes and ARC")


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


@dataclass
class ArcAnswer:
    test: ArcTestInput
    candidates: list[Candidate]      # every distinct answer, best first
    attempts: list[np.ndarray]       # the two grids a submission would hold
    copies: int                      # augmented copies that voted

    @property
    def correct(self) -> bool | None:
        """Whether an attempt equals the known output (None when the file has none)."""
        if self.test.output is None:
            return None
        return any(np.array_equal(a, self.test.output) for a in self.attempts)


def known_variants(task_id: str, names: list[str]) -> list[tuple[int, Variant]]:
    """The identifiers (and their augmentations) a dataset gave `task_id`; only they have trained embedding rows."""
    prefixes = (task_id + "|||", task_id + "_t")
    found = []
    for identifier, name in enumerate(names):
        if identifier and (name == task_id or name.startswith(prefixes)):
            task, variant = parse_name(name)
            if task == task_id:
                found.append((identifier, variant))
    return found


BLANK_COLOUR_VARIANTS = 4     # colourings per symmetry for a task without trained embedding rows


def blank_variants(colour_variants: int, seed: int = 0) -> list[tuple[int, Variant]]:
    """For a task the embedding table never saw: the blank identifier 0 under the 8 dihedral transforms, each with
    the original colours and `colour_variants - 1` seeded permutations."""
    rng = np.random.default_rng(seed)
    colours = [tuple(range(NUM_COLOURS))] + [Variant.random(rng).colours for _ in range(colour_variants - 1)]
    return [(0, Variant(t, c)) for t in range(NUM_DIHEDRAL) for c in colours]


def adapt_embedding(model, task: ArcTaskFile, variants: list[Variant], steps: int,
                    loss: str = "softmax_cross_entropy", lr: float = 1e-2, weight_decay: float = 0.1,
                    batch_size: int = 256) -> list[tuple[int, Variant]]:
    """Give a task the embedding table never saw rows of its own: append one zero row per variant (training starts
    rows at zero too) and fit them on the variant's demo pairs as training would (every supervision step a sign-SGD
    step on the touched rows) while every network weight stays frozen. Returns the identifiers to vote with."""
    table = model.inner.puzzle_emb
    if table is None:
        raise ConfigError("this checkpoint has no puzzle embedding to adapt (puzzle_emb_ndim = 0)")
    if not task.demos:
        raise DataError(f"task {task.task_id} has no demo pairs to adapt its embedding on")
    first = table.num_embeddings
    table.weights = torch.cat([table.weights, table.weights.new_zeros(len(variants), table.embedding_dim)])
    table.num_embeddings += len(variants)
    pairs = [(first + j, v.apply(x), v.apply(y)) for j, v in enumerate(variants) for x, y in task.demos]
    device = table.weights.device
    ids = torch.as_tensor([i for i, _, _ in pairs], device=device)
    canvas = canvas_side(model.inner.cfg.seq_len)
    inputs = torch.as_tensor(np.stack([encode_grid(x, canvas=canvas) for _, x, _ in pairs]), dtype=torch.long,
                             device=device)
    labels = torch.as_tensor(np.stack([encode_grid(y, canvas=canvas) for _, _, y in pairs]), dtype=torch.long,
                             device=device)
    labels = labels.masked_fill(labels == PAD, IGNORE_LABEL)
    optimizer = PuzzleEmbeddingSignSGD(table, lr=lr, weight_decay=weight_decay)
    loss_fn, inner = LOSSES[loss], model.inner
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    model.train()  # the table hands out gradient-collecting rows only in training mode
    try:
        for _ in range(steps):
            for lo in range(0, len(pairs), batch_size):
                x, y, pid = inputs[lo:lo + batch_size], labels[lo:lo + batch_size], ids[lo:lo + batch_size]
                state = inner.initial_state(len(x), device)
                for _ in range(model.N_sup):
                    state, out = inner(state, x, pid)
                    per_token = loss_fn(out.logits, y)
                    (per_token.sum(-1) / (y != IGNORE_LABEL).sum(-1).clamp_min(1)).sum().backward()
                    optimizer.step()
                    optimizer.zero_grad()
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.eval()
    return [(first + j, v) for j, v in enumerate(variants)]


def solve_arc(model, task: ArcTaskFile, variants: list[tuple[int, Variant]], steps: int | None = None,
              halt_early: bool = True, batch_size: int = 256, threshold: float = 0.5) -> list[ArcAnswer]:
    """Answer every test input: run each (identifier, variant) copy, undo the variant on the answer, and vote as
    the ARC evaluation does (votes, then mean halting confidence)."""
    canvas = canvas_side(model.inner.cfg.seq_len)
    inputs = np.stack([encode_grid(v.apply(test.input), canvas=canvas)
                       for test in task.tests for _, v in variants]).astype(np.int64)
    ids = np.asarray([i for _ in task.tests for i, _ in variants], dtype=np.int64)
    pred = predict(model, inputs, ids, steps=steps, halt_early=halt_early, batch_size=batch_size, threshold=threshold)
    votes = ArcVotes()
    for row in range(len(inputs)):
        votes.add(task.task_id, variants[row % len(variants)][1], inputs[row], pred.tokens[row],
                  float(pred.halt_probability[row]))
    answers = []
    for test in task.tests:
        ranked = votes.ranked(task.task_id, test.key)
        answers.append(ArcAnswer(test, ranked, attempts(ranked, test.input), len(variants)))
    return answers
