"""Path-aware maze scores: exact match against the one labelled path, and "valid shortest path" accuracy.

Most Maze-Hard mazes have several shortest paths but the label shows one, so exact match (the official metric)
undercounts correct answers; the papers define success as a valid optimal path. Both are reported, with the share of
mazes where they can differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from latentloop.data import maze


@dataclass
class MazeScores:
    exact_accuracy: float           # prediction equals the labelled answer in every cell
    valid_accuracy: float           # prediction is the question plus some shortest S-G path
    several_shortest: float         # share of mazes with more than one shortest path
    num_examples: int

    def report(self) -> str:
        return (f"  maze: exact (labelled path) {self.exact_accuracy:.2%}, valid shortest path "
                f"{self.valid_accuracy:.2%}; {self.several_shortest:.1%} of these mazes have more than one "
                f"shortest path")


def is_maze_data(inputs: np.ndarray, labels: np.ndarray, vocab_size: int) -> bool:
    """Whether token rows are mazes: vocab 6, square length, one S and one G in every label row. (A 4x4 Sudoku has
    the same vocabulary and a square length, but its solutions hold each digit four times.)"""
    side = math.isqrt(inputs.shape[-1])
    if vocab_size != maze.VOCAB_SIZE or side * side != inputs.shape[-1] or len(labels) == 0:
        return False
    return bool(np.all((labels == maze.START).sum(-1) == 1) and np.all((labels == maze.GOAL).sum(-1) == 1))


def maze_scores(inputs: np.ndarray, labels: np.ndarray, predictions: np.ndarray) -> MazeScores:
    """Score flat token rows ``[N, size*size]`` of questions, labelled answers and model answers."""
    side = math.isqrt(inputs.shape[-1])
    questions = maze.from_tokens(inputs, side)
    answers = maze.from_tokens(predictions, side)
    exact = np.all(np.asarray(predictions) == np.asarray(labels), axis=-1)
    valid = maze.is_shortest_path(questions, answers)
    several = maze.has_several_shortest_paths(questions)
    n = max(len(inputs), 1)
    return MazeScores(float(exact.sum() / n), float(valid.sum() / n), float(several.sum() / n), len(inputs))


@dataclass
class MazeTally:
    """Valid-shortest-path counts gathered batch by batch (an evaluation observer), so the training loop's periodic
    evaluation reports them next to exact match without keeping every answer."""

    side: int
    valid: int = 0
    count: int = 0

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        answers = maze.from_tokens(predictions, self.side)
        self.valid += int(maze.is_shortest_path(maze.from_tokens(inputs, self.side), answers).sum())
        self.count += len(inputs)

    def metrics(self) -> dict[str, float]:
        """The share over every rank's examples (a sum all-reduce under torch.distributed; all ranks call it)."""
        counts = torch.tensor([self.valid, self.count], dtype=torch.float64)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            backend_device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
            counts = counts.to(backend_device)
            torch.distributed.all_reduce(counts)
        valid, count = counts.tolist()
        return {"valid_path_accuracy": valid / count if count else 0.0}


def maze_tally_for(inputs: np.ndarray, labels: np.ndarray, vocab_size: int) -> MazeTally | None:
    """A tally for a maze test split (judged on its first rows, as ``is_maze_data``), else None."""
    if not is_maze_data(inputs[:64], labels[:64], vocab_size):
        return None
    return MazeTally(math.isqrt(inputs.shape[-1]))
