"""Sorting: a list of numbers from an alphabet of K symbols (0..K-1) -> the same numbers in ascending order: the
incompressible problem the field's argument starts from (n log n comparisons; a fixed-depth network runs out).
Encoding and length generalisation: `latentloop.tasks.sequence`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latentloop.tasks import register
from latentloop.tasks.sequence import END, FIRST_SYMBOL, SequenceOptions, SequenceTask

__all__ = ["END", "SortOptions", "SortTask", "sorted_tokens"]


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
