"""Sorting: a list of numbers from an alphabet of K symbols (0..K-1) -> the same numbers in ascending order.

Lists of several lengths share one row of ``max_length`` cells, so one model takes every length up to it, and the
test split may hold lists longer than any training list (length generalisation; the evaluation reports exact match
per length, ``sort/exact@L=<length>``).

Encoding (``vocab_size = alphabet + 2``, ``seq_len = max_length``):

* token 0 is PAD: it never appears in the data, it only fills incomplete batches;
* token 1 is END: every cell past the end of the list, in the puzzle and in its answer;
* the number v is token v + 2.

END, not PAD, fills the rest of a row because a dataset's label token 0 is not supervised (``ignore_label_id``):
with END the model is trained to keep the list's length, and exact match asks for the whole row.

Written only against the public task interface (`latentloop.tasks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentloop.errors import ConfigError, DataError
from latentloop.tasks import GridStyle, Task, TaskOptions, ViewerStyle, register
from latentloop.tasks.base import Log

PAD = 0
END = 1
FIRST_VALUE = 2
MAX_ALPHABET = 1000
MAX_LENGTH = 4096
_DRAW_ROUNDS = 1000          # batches of candidate test lists before giving up on finding enough unseen ones


@dataclass
class SortOptions(TaskOptions):
    alphabet: int = field(default=10, metadata={"help": "K: the numbers are 0..K-1"})
    min_length: int = field(default=1, metadata={"help": "shortest list, in both splits"})
    train_length: int = field(default=8, metadata={"help": "longest training list"})
    test_length: int = field(default=0, metadata={"help": "longest test list, 0 = max_length (longer than "
                                                          "train_length: length generalisation)"})
    max_length: int = field(default=12, metadata={"help": "cells per row (seq_len): the longest list a model takes"})
    num_train: int = field(default=10000, metadata={"help": "training lists (drawn independently)"})
    num_test: int = field(default=1000, metadata={"help": "test lists (distinct, none of them a training list)"})


def sorted_tokens(tokens: np.ndarray) -> np.ndarray:
    """The answer rows of puzzle rows: the number tokens in ascending order, END after them."""
    tokens = np.asarray(tokens, dtype=np.int64)
    big = np.iinfo(np.int64).max
    out = np.sort(np.where(tokens >= FIRST_VALUE, tokens, big), axis=-1)
    out[out == big] = END
    return out


def _lengths(tokens: np.ndarray) -> np.ndarray:
    return (np.asarray(tokens) >= FIRST_VALUE).sum(-1)


def _draw(rng: np.random.Generator, count: int, low: int, high: int, alphabet: int, width: int) -> np.ndarray:
    """`count` puzzle rows: lengths uniform in low..high, numbers uniform in 0..alphabet-1."""
    lengths = rng.integers(low, high + 1, size=count)
    rows = rng.integers(0, alphabet, size=(count, width), dtype=np.int64) + FIRST_VALUE
    rows[np.arange(width)[None, :] >= lengths[:, None]] = END
    return rows


def _draw_unseen(rng: np.random.Generator, count: int, low: int, high: int, alphabet: int, width: int,
                 seen_rows: np.ndarray) -> np.ndarray:
    """`count` distinct puzzle rows (lengths low..high) of which none is in `seen_rows`."""
    seen_lengths = _lengths(seen_rows)
    in_range = seen_rows[(seen_lengths >= low) & (seen_lengths <= high)]
    seen = {row.tobytes() for row in in_range}
    capacity = 0
    for length in range(low, high + 1):
        capacity += alphabet ** length
        if capacity - len(seen) >= count:
            break
    else:
        raise ConfigError(f"only {capacity - len(seen):,} lists of lengths {low}..{high} over {alphabet} symbols are "
                          f"not training lists; ask for fewer than {count:,} test lists, or longer ones")
    chosen: list[np.ndarray] = []
    for _ in range(_DRAW_ROUNDS):
        for row in _draw(rng, max(2 * (count - len(chosen)), 1024), low, high, alphabet, width):
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == count:
                    return np.stack(chosen)
    raise ConfigError(f"found only {len(chosen):,} of {count:,} distinct test lists that are not training lists "
                      f"(lengths {low}..{high}, {alphabet} symbols); ask for fewer test lists, or longer ones")


def _ramp(count: int) -> list[str]:
    """A light-to-dark colour per number, so a sorted row reads as a gradient."""
    low, high = (0xfd, 0xe6, 0x8a), (0x60, 0xa5, 0xfa)
    colors = []
    for v in range(count):
        f = v / (count - 1) if count > 1 else 0.0
        colors.append("#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(low, high)))
    return colors


class LengthTally:
    """Exact match per list length, gathered batch by batch (an evaluation observer): where accuracy falls once the
    lists are longer than the training ones. The answer is unique, so exact match is also validity."""

    def __init__(self, prefix: str, max_length: int) -> None:
        self.prefix = prefix
        self.right = np.zeros(max_length + 1, dtype=np.int64)
        self.count = np.zeros(max_length + 1, dtype=np.int64)

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        inputs = np.asarray(inputs)
        exact = (np.asarray(predictions) == sorted_tokens(inputs)).all(-1)
        lengths = _lengths(inputs)
        np.add.at(self.right, lengths, exact.astype(np.int64))
        np.add.at(self.count, lengths, 1)

    def metrics(self) -> dict[str, float]:
        """Shares over every rank's examples (a sum all-reduce under torch.distributed; all ranks call it)."""
        counts = torch.tensor(np.concatenate([self.right, self.count]), dtype=torch.float64)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = counts.to("cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
            torch.distributed.all_reduce(counts)
        right, count = counts.cpu().numpy().reshape(2, -1)
        return {f"{self.prefix}/exact@L={length}": float(right[length] / count[length])
                for length in range(1, len(count)) if count[length]}

    def report(self) -> str:
        shares = [f"{key.rsplit('=', 1)[1]}: {value:.1%}" for key, value in self.metrics().items()]
        return f"  {self.prefix}: exact match by list length: {', '.join(shares) or 'no lists'}"


@register
class SortTask(Task):
    """Lists of up to `max_length` numbers 0..alphabet-1, written "3 1 2" or "3,1,2"; the answer sorts them."""

    name = "sort"
    summary = "generate lists of numbers to sort, of several lengths (length generalisation)"
    Options = SortOptions
    verdicts = {True: "valid: the puzzle's numbers in ascending order",
                False: "NOT valid: not the puzzle's numbers in ascending order"}

    def __init__(self, max_length: int = 12, alphabet: int = 10) -> None:
        if not (isinstance(max_length, int) and 1 <= max_length <= MAX_LENGTH):
            raise DataError(f"a sort row holds 1 to {MAX_LENGTH} numbers, got max_length {max_length!r}")
        if not (isinstance(alphabet, int) and 2 <= alphabet <= MAX_ALPHABET):
            raise DataError(f"a sort alphabet has 2 to {MAX_ALPHABET} symbols, got {alphabet!r}")
        self.max_length = max_length
        self.alphabet = alphabet

    def params(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "alphabet": self.alphabet}

    @property
    def vocab_size(self) -> int:
        return self.alphabet + FIRST_VALUE

    @property
    def seq_len(self) -> int:
        return self.max_length

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        o = cls._checked(options)
        task = cls(max_length=o.max_length, alphabet=o.alphabet)
        test_length = o.test_length or o.max_length
        log(f"generating {o.num_train:,} training lists of {o.min_length}..{o.train_length} numbers and {o.num_test:,} "
            f"test lists of {o.min_length}..{test_length} numbers (0..{o.alphabet - 1}) into {out} (seed {o.seed})")
        rng = np.random.default_rng(o.seed)
        train = _draw(rng, o.num_train, o.min_length, o.train_length, o.alphabet, o.max_length)
        test = _draw_unseen(rng, o.num_test, o.min_length, test_length, o.alphabet, o.max_length, train)
        shown = 1000  # the contract check decodes and checks this many labels of each split
        summary = task.write_dataset(out, (train, sorted_tokens(train)), (test, sorted_tokens(test)),
                                     puzzles=(task.decode(train[:shown]), task.decode(test[:shown])))
        return (f"{summary}; training lists have {o.min_length}..{o.train_length} numbers, test lists "
                f"{o.min_length}..{test_length}")

    @staticmethod
    def _checked(options: TaskOptions) -> SortOptions:
        assert isinstance(options, SortOptions)
        o = options
        if not 1 <= o.max_length <= MAX_LENGTH:
            raise ConfigError(f"sort: max_length must be 1..{MAX_LENGTH}, got {o.max_length}")
        if not 1 <= o.min_length <= o.train_length <= o.max_length:
            raise ConfigError(f"sort: the lengths must satisfy 1 <= min_length <= train_length <= max_length, got "
                              f"min_length {o.min_length}, train_length {o.train_length}, max_length {o.max_length}")
        if o.test_length and not o.min_length <= o.test_length <= o.max_length:
            raise ConfigError(f"sort: test_length must be 0 (= max_length) or min_length..max_length "
                              f"({o.min_length}..{o.max_length}), got {o.test_length}")
        if not 2 <= o.alphabet <= MAX_ALPHABET:
            raise ConfigError(f"sort: alphabet must be 2..{MAX_ALPHABET}, got {o.alphabet}")
        if o.num_train < 1 or o.num_test < 1:
            raise ConfigError(f"sort: num_train and num_test must be at least 1, got {o.num_train} and {o.num_test}")
        return o

    # --- one puzzle -------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "puzzle") -> list[int]:
        expected = (f"expected 1 to {self.max_length} numbers 0..{self.alphabet - 1} separated by spaces or commas, "
                    f"e.g. '3 1 2'")
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [item for item in re.split(r"[\s,]+", body) if item]
        if not items:
            raise DataError(f"{where}: no numbers; {expected}")
        if len(items) > self.max_length:
            raise DataError(f"{where}: {len(items)} numbers, more than this model's {self.max_length}; {expected}")
        values = []
        for item in items:
            if not re.fullmatch(r"[0-9]+", item) or int(item) >= self.alphabet:
                raise DataError(f"{where}: {item!r} is not a number 0..{self.alphabet - 1}; {expected}")
            values.append(int(item))
        return values

    def encode(self, puzzles: list[list[int]]) -> np.ndarray:
        rows = np.full((len(puzzles), self.max_length), END, dtype=np.int64)
        for i, puzzle in enumerate(puzzles):
            values = np.asarray(puzzle, dtype=np.int64).reshape(-1)
            if len(values) > self.max_length or (len(values) and (values.min() < 0 or values.max() >= self.alphabet)):
                raise DataError(f"sort puzzle {i}: expected at most {self.max_length} numbers 0..{self.alphabet - 1}, "
                                f"got {values.tolist()}")
            rows[i, :len(values)] = values + FIRST_VALUE
        return rows

    def decode(self, tokens: np.ndarray) -> list[list[int]]:
        """Each row's numbers up to its last number cell; a non-number cell before it decodes to -1 (never right)."""
        answers = []
        for row in np.asarray(tokens, dtype=np.int64).reshape(-1, np.shape(tokens)[-1]):
            cells = np.flatnonzero(row >= FIRST_VALUE)
            end = int(cells[-1]) + 1 if len(cells) else 0
            answers.append([int(t) - FIRST_VALUE if t >= FIRST_VALUE else -1 for t in row[:end]])
        return answers

    def check(self, puzzle: list[int], answer: list[int]) -> bool:
        return [int(v) for v in answer] == sorted(int(v) for v in puzzle)

    def format(self, answer: list[int]) -> str:
        return self.one_line(answer) or "(no numbers)"

    def one_line(self, answer: list[int]) -> str:
        return " ".join(str(int(v)) if v >= 0 else "_" for v in answer)

    def reference(self, puzzle: list[int]) -> np.ndarray:
        return sorted_tokens(self.encode([puzzle]))[0]

    # --- pictures and metrics ---------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        colors = _ramp(self.alphabet)
        return GridStyle(rows=1, cols=self.seq_len, text=lambda t: str(t - FIRST_VALUE) if t >= FIRST_VALUE else "",
                         color=lambda t: colors[t - FIRST_VALUE] if FIRST_VALUE <= t < self.vocab_size else
                         ("#f2f2f2" if t == END else "white"))

    def viewer_style(self) -> ViewerStyle:
        return ViewerStyle(labels=["", ""] + [str(v) for v in range(self.alphabet)],
                           colors=["white", "#f2f2f2"] + _ramp(self.alphabet), blank=END)

    def metrics(self, data_path: Path | None, split: Any, meta: Any) -> LengthTally:
        return LengthTally(self.name, self.max_length)

