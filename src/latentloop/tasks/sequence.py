"""Shared machinery for tasks on one row of symbols whose answer is a function of the row (sort, prefix-sum).

Rows of several lengths share ``max_length`` cells, so one model takes every length up to it, and the test split
may hold rows longer than any training row (length generalisation; the evaluation reports exact match per length,
``<task>/exact@L=<length>``).

Encoding (``vocab_size = symbols + 2``, ``seq_len = max_length``):

* token 0 is PAD: it never appears in the data, it only fills incomplete batches;
* token 1 is END: every cell past the end of the row, in the puzzle and in its answer;
* the symbol v is token v + 2.

END, not PAD, fills the rest of a row because a dataset's label token 0 is not supervised (``ignore_label_id``):
with END the model is trained to keep the row's length, and exact match asks for the whole row.

A subclass names its words (`row_word`, `cell_word`), the option holding the number of symbols (`symbols_key`:
``alphabet`` or ``modulus``) and the answer (`answer_tokens`); it is written only against the public task interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from latentloop.errors import ConfigError, DataError
from latentloop.tasks.base import GridStyle, Log, Task, TaskOptions, ViewerStyle, sum_over_ranks

PAD = 0
END = 1
FIRST_SYMBOL = 2
MAX_SYMBOLS = 1000
MAX_LENGTH = 4096
_DRAW_ROUNDS = 1000          # batches of candidate test rows before giving up on finding enough unseen ones


@dataclass
class SequenceOptions(TaskOptions):
    min_length: int = field(default=1, metadata={"help": "shortest row, in both splits"})
    train_length: int = field(default=8, metadata={"help": "longest training row"})
    test_length: int = field(default=0, metadata={"help": "longest test row, 0 = max_length (longer than "
                                                          "train_length: length generalisation)"})
    max_length: int = field(default=12, metadata={"help": "cells per row (seq_len): the longest row a model takes"})
    num_train: int = field(default=10000, metadata={"help": "training rows (drawn independently)"})
    num_test: int = field(default=1000, metadata={"help": "test rows (distinct, none of them a training row)"})


def lengths_of(tokens: np.ndarray) -> np.ndarray:
    return (np.asarray(tokens) >= FIRST_SYMBOL).sum(-1)


def _draw(rng: np.random.Generator, count: int, low: int, high: int, symbols: int, width: int) -> np.ndarray:
    """`count` puzzle rows: lengths uniform in low..high, symbols uniform in 0..symbols-1."""
    lengths = rng.integers(low, high + 1, size=count)
    rows = rng.integers(0, symbols, size=(count, width), dtype=np.int64) + FIRST_SYMBOL
    rows[np.arange(width)[None, :] >= lengths[:, None]] = END
    return rows


def _draw_unseen(rng: np.random.Generator, count: int, low: int, high: int, symbols: int, width: int,
                 seen_rows: np.ndarray, rows: str) -> np.ndarray:
    """`count` distinct puzzle rows (lengths low..high) of which none is in `seen_rows`."""
    seen_lengths = lengths_of(seen_rows)
    seen = {row.tobytes() for row in seen_rows[(seen_lengths >= low) & (seen_lengths <= high)]}
    capacity = 0
    for length in range(low, high + 1):
        capacity += symbols ** length
        if capacity - len(seen) >= count:
            break
    else:
        raise ConfigError(f"only {capacity - len(seen):,} {rows} of lengths {low}..{high} over {symbols} symbols "
                          f"are not training {rows}; ask for fewer than {count:,} test {rows}, or longer ones")
    chosen: list[np.ndarray] = []
    for _ in range(_DRAW_ROUNDS):
        for row in _draw(rng, max(2 * (count - len(chosen)), 1024), low, high, symbols, width):
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == count:
                    return np.stack(chosen)
    raise ConfigError(f"found only {len(chosen):,} of {count:,} distinct test {rows} that are not training {rows} "
                      f"(lengths {low}..{high}, {symbols} symbols); ask for fewer test {rows}, or longer ones")


def _ramp(count: int) -> list[str]:
    """A light-to-dark colour per symbol, so a sorted row reads as a gradient."""
    low, high = (0xfd, 0xe6, 0x8a), (0x60, 0xa5, 0xfa)
    colors = []
    for v in range(count):
        f = v / (count - 1) if count > 1 else 0.0
        colors.append("#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(low, high)))
    return colors


class LengthTally:
    """Exact match per row length, gathered batch by batch (an evaluation observer): where accuracy falls once the
    rows are longer than the training ones. The answer is unique, so exact match is also validity."""

    def __init__(self, task: SequenceTask) -> None:
        self.task = task
        self.right = np.zeros(task.max_length + 1, dtype=np.int64)
        self.count = np.zeros(task.max_length + 1, dtype=np.int64)

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        inputs = np.asarray(inputs)
        exact = (np.asarray(predictions) == self.task.answer_tokens(inputs)).all(-1)
        lengths = lengths_of(inputs)
        np.add.at(self.right, lengths, exact.astype(np.int64))
        np.add.at(self.count, lengths, 1)

    def metrics(self) -> dict[str, float]:
        """Shares over every rank's examples (a sum all-reduce under torch.distributed; all ranks call it)."""
        right, count = sum_over_ranks(np.concatenate([self.right, self.count])).reshape(2, -1)
        return {f"{self.task.name}/exact@L={length}": float(right[length] / count[length])
                for length in range(1, len(count)) if count[length]}

    def report(self) -> str:
        shares = [f"{key.rsplit('=', 1)[1]}: {value:.1%}" for key, value in self.metrics().items()]
        return (f"  {self.task.name}: exact match by {self.task.row_word} length: "
                f"{', '.join(shares) or 'no ' + self.task.row_word + 's'}")


class SequenceTask(Task):
    """A row of up to `max_length` symbols 0..symbols-1, written "3 1 2" or "3,1,2" (with `digit_runs`, "312" too);
    the answer is `answer_tokens` of the row."""

    Options: ClassVar[type[TaskOptions]] = SequenceOptions
    symbols_key: ClassVar[str] = "symbols"     # the option and parameter that holds the number of symbols
    row_word: ClassVar[str] = "row"
    cell_word: ClassVar[str] = "symbol"
    digit_runs: ClassVar[bool] = False         # "1011" is four symbols (only when every symbol is one digit)

    def __init__(self, max_length: int = 12, symbols: int = 10) -> None:
        if not (isinstance(max_length, int) and 1 <= max_length <= MAX_LENGTH):
            raise DataError(f"a {self.name} row holds 1 to {MAX_LENGTH} {self.cell_word}s, got max_length "
                            f"{max_length!r}")
        if not (isinstance(symbols, int) and 2 <= symbols <= MAX_SYMBOLS):
            raise DataError(f"a {self.name} {self.symbols_key} is 2 to {MAX_SYMBOLS}, got {symbols!r}")
        self.max_length = max_length
        self.symbols = symbols

    def answer_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """The answer rows of puzzle rows (tokens in, tokens out; END stays END)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {"max_length": self.max_length, self.symbols_key: self.symbols}

    @property
    def vocab_size(self) -> int:
        return self.symbols + FIRST_SYMBOL

    @property
    def seq_len(self) -> int:
        return self.max_length

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        o = cls._checked(options)
        symbols = getattr(o, cls.symbols_key)
        task = cls(o.max_length, symbols)
        rows, cells = cls.row_word + "s", cls.cell_word + "s"
        test_length = o.test_length or o.max_length
        log(f"generating {o.num_train:,} training {rows} of {o.min_length}..{o.train_length} {cells} and "
            f"{o.num_test:,} test {rows} of {o.min_length}..{test_length} {cells} (0..{symbols - 1}) into {out} "
            f"(seed {o.seed})")
        rng = np.random.default_rng(o.seed)
        train = _draw(rng, o.num_train, o.min_length, o.train_length, symbols, o.max_length)
        test = _draw_unseen(rng, o.num_test, o.min_length, test_length, symbols, o.max_length, train, rows)
        shown = 1000  # the contract check decodes and checks this many labels of each split
        summary = task.write_dataset(out, (train, task.answer_tokens(train)), (test, task.answer_tokens(test)),
                                     puzzles=(task.decode(train[:shown]), task.decode(test[:shown])))
        return (f"{summary}; training {rows} have {o.min_length}..{o.train_length} {cells}, test {rows} "
                f"{o.min_length}..{test_length}")

    @classmethod
    def _checked(cls, options: TaskOptions) -> SequenceOptions:
        assert isinstance(options, SequenceOptions)
        o, name = options, cls.name
        if not 1 <= o.max_length <= MAX_LENGTH:
            raise ConfigError(f"{name}: max_length must be 1..{MAX_LENGTH}, got {o.max_length}")
        if not 1 <= o.min_length <= o.train_length <= o.max_length:
            raise ConfigError(f"{name}: the lengths must satisfy 1 <= min_length <= train_length <= max_length, got "
                              f"min_length {o.min_length}, train_length {o.train_length}, max_length {o.max_length}")
        if o.test_length and not o.min_length <= o.test_length <= o.max_length:
            raise ConfigError(f"{name}: test_length must be 0 (= max_length) or min_length..max_length "
                              f"({o.min_length}..{o.max_length}), got {o.test_length}")
        if not 2 <= getattr(o, cls.symbols_key) <= MAX_SYMBOLS:
            raise ConfigError(f"{name}: {cls.symbols_key} must be 2..{MAX_SYMBOLS}, got "
                              f"{getattr(o, cls.symbols_key)}")
        if o.num_train < 1 or o.num_test < 1:
            raise ConfigError(f"{name}: num_train and num_test must be at least 1, got {o.num_train} and "
                              f"{o.num_test}")
        return o

    # --- one puzzle -------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "puzzle") -> list[int]:
        cells, top = self.cell_word + "s", self.symbols - 1
        runs = self.digit_runs and self.symbols <= 10
        compact = " or as one run of digits, e.g. '1011'" if runs else ""
        expected = f"expected 1 to {self.max_length} {cells} 0..{top} separated by spaces or commas{compact}"
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [item for item in re.split(r"[\s,]+", body) if item]
        if runs:  # every symbol is one character: "1011" is four of them
            items = [char for item in items for char in (item if re.fullmatch(r"[0-9]+", item) else [item])]
        if not items:
            raise DataError(f"{where}: no {cells}; {expected}")
        if len(items) > self.max_length:
            raise DataError(f"{where}: {len(items)} {cells}, more than this model's {self.max_length}; {expected}")
        values = []
        for item in items:
            if not re.fullmatch(r"[0-9]+", item) or int(item) >= self.symbols:
                raise DataError(f"{where}: {item!r} is not a {self.cell_word} 0..{top}; {expected}")
            values.append(int(item))
        return values

    def encode(self, puzzles: list[list[int]]) -> np.ndarray:
        rows = np.full((len(puzzles), self.max_length), END, dtype=np.int64)
        for i, puzzle in enumerate(puzzles):
            values = np.asarray(puzzle, dtype=np.int64).reshape(-1)
            if len(values) > self.max_length or (len(values) and (values.min() < 0 or values.max() >= self.symbols)):
                raise DataError(f"{self.name} puzzle {i}: expected at most {self.max_length} {self.cell_word}s "
                                f"0..{self.symbols - 1}, got {values.tolist()}")
            rows[i, :len(values)] = values + FIRST_SYMBOL
        return rows

    def decode(self, tokens: np.ndarray) -> list[list[int]]:
        """Each row's symbols up to its last symbol cell; a non-symbol cell before it decodes to -1 (never right)."""
        answers = []
        for row in np.asarray(tokens, dtype=np.int64).reshape(-1, np.shape(tokens)[-1]):
            cells = np.flatnonzero(row >= FIRST_SYMBOL)
            end = int(cells[-1]) + 1 if len(cells) else 0
            answers.append([int(t) - FIRST_SYMBOL if t >= FIRST_SYMBOL else -1 for t in row[:end]])
        return answers

    def check(self, puzzle: list[int], answer: list[int]) -> bool:
        return [int(v) for v in answer] == self.decode(self.reference(puzzle)[None])[0]

    def format(self, answer: list[int]) -> str:
        return self.one_line(answer) or f"(no {self.cell_word}s)"

    def one_line(self, answer: list[int]) -> str:
        return " ".join(str(int(v)) if v >= 0 else "_" for v in answer)

    def reference(self, puzzle: list[int]) -> np.ndarray:
        return self.answer_tokens(self.encode([puzzle]))[0]

    # --- pictures and metrics ---------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        colors = _ramp(self.symbols)
        return GridStyle(rows=1, cols=self.seq_len, text=lambda t: str(t - FIRST_SYMBOL) if t >= FIRST_SYMBOL else "",
                         color=lambda t: colors[t - FIRST_SYMBOL] if FIRST_SYMBOL <= t < self.vocab_size else
                         ("#f2f2f2" if t == END else "white"))

    def viewer_style(self) -> ViewerStyle:
        return ViewerStyle(labels=["", ""] + [str(v) for v in range(self.symbols)],
                           colors=["white", "#f2f2f2"] + _ramp(self.symbols), blank=END)

    def metrics(self, data_path: Path | None, split: Any, meta: Any) -> LengthTally:
        return LengthTally(self)
