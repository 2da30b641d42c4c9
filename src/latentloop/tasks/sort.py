"""Sorting: a list of numbers from an alphabet of K symbols (0..K-1) -> the same numbers in ascending order: the
incompressible problem the field's argument starts from (n log n comparisons; a fixed-depth network runs out).
Encoding and length generalisation: `latentloop.tasks.sequence`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from latentloop.tasks import register
from latentloop.tasks.augmentation import Augmentation
from latentloop.tasks.sequence import END, FIRST_SYMBOL, SequenceOptions, SequenceTask, lengths_of

__all__ = ["END", "ShuffledPositions", "SortOptions", "SortTask", "sorted_tokens"]


@dataclass
class SortOptions(SequenceOptions):
    alphabet: int = field(default=10, metadata={"help": "K: the numbers are 0..K-1"})


def sorted_tokens(tokens: np.ndarray) -> np.ndarray:
    """The answer rows of puzzle rows: the number tokens in ascending order, END after them."""
    tokens = np.asarray(tokens, dtype=np.int64)
    big = np.iinfo(np.int64).max
    out = np.sort(np.where(tokens >= FIRST_SYMBOL, tokens, big), axis=-1)
    out[out == big] = END
    return out


class ShuffledPositions(Augmentation):
    """Reorder the numbers of each list: the sorted answer is the same, so answers map to themselves both ways.

    `order` is a permutation of the positions 0..max_length-1; a list of L numbers takes its positions in that
    order, skipping those >= L, so one transform applies to lists of every length and END stays at the end."""

    def __init__(self, name: str, order: np.ndarray) -> None:
        self.name = name
        self.order = np.asarray(order, dtype=np.int64)
        self.rank = np.argsort(self.order)      # where each position comes in `order`

    def key(self) -> bytes:
        return b"" if np.array_equal(self.order, np.arange(len(self.order))) else self.order.tobytes()

    def puzzles(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        positions = np.arange(rows.shape[-1])
        # Positions inside the list sort by rank; those past its end keep their place after them.
        keys = np.where(positions < lengths_of(rows)[..., None], self.rank, len(positions) + positions)
        return np.take_along_axis(rows, np.argsort(keys, axis=-1, kind="stable"), axis=-1)

    def answers(self, rows: np.ndarray) -> np.ndarray:
        return np.array(rows, copy=True)


@register
class SortTask(SequenceTask):
    """Lists of up to `max_length` numbers 0..alphabet-1, written "3 1 2" or "3,1,2"; the answer sorts them."""

    name = "sort"
    summary = "generate lists of numbers to sort, of several lengths (length generalisation)"
    Options = SortOptions
    symbols_key, row_word, cell_word = "alphabet", "list", "number"
    verdicts = {True: "valid: the puzzle's numbers in ascending order",
                False: "NOT valid: not the puzzle's numbers in ascending order"}

    def __init__(self, max_length: int = 12, alphabet: int = 10) -> None:
        super().__init__(max_length, alphabet)

    def answer_tokens(self, tokens: np.ndarray) -> np.ndarray:
        return sorted_tokens(tokens)

    def augmentation_count(self) -> int:
        """Every order of the max_length positions (a list of L numbers sees L! different ones)."""
        return math.factorial(self.max_length)

    def random_augmentation(self, rng: np.random.Generator, index: int) -> ShuffledPositions:
        return ShuffledPositions(f"shuffle-{index}", rng.permutation(self.max_length))
