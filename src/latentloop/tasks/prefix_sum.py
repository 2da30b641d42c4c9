"""Running sums: a digit sequence x_1..x_L (digits 0..k-1) -> its prefix sums modulo k,
y_i = (x_1 + ... + x_i) mod k (the running parity when k = 2).

Sequences of several lengths share one row of ``max_length`` cells, so one model takes every length up to it, and
the test split may hold sequences longer than any training one (length generalisation; the evaluation reports exact
match per length, ``prefix-sum/exact@L=<length>``).

Encoding (``vocab_size = modulus + 2``, ``seq_len = max_length``):

* token 0 is PAD: it never appears in the data, it only fills incomplete batches;
* token 1 is END: every cell past the end of the sequence, in the puzzle and in its answer;
* the digit d is token d + 2.

END, not PAD, fills the rest of a row because a dataset's label token 0 is not supervised (``ignore_label_id``):
with END the model is trained to keep the sequence's length, and exact match asks for the whole row.

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
FIRST_DIGIT = 2
MAX_MODULUS = 1000
MAX_LENGTH = 4096
_DRAW_ROUNDS = 1000          # batches of candidate test sequences before giving up on finding enough unseen ones


@dataclass
class PrefixSumOptions(TaskOptions):
    modulus: int = field(default=10, metadata={"help": "k: the digits are 0..k-1 and the sums are taken mod k "
                                                       "(2: running parity)"})
    min_length: int = field(default=1, metadata={"help": "shortest sequence, in both splits"})
    train_length: int = field(default=8, metadata={"help": "longest training sequence"})
    test_length: int = field(default=0, metadata={"help": "longest test sequence, 0 = max_length (longer than "
                                                          "train_length: length generalisation)"})
    max_length: int = field(default=12, metadata={"help": "cells per row (seq_len): the longest sequence a model "
                                                          "takes"})
    num_train: int = field(default=10000, metadata={"help": "training sequences (drawn independently)"})
    num_test: int = field(default=1000, metadata={"help": "test sequences (distinct, none of them a training one)"})


def prefix_sum_tokens(tokens: np.ndarray, modulus: int) -> np.ndarray:
    """The answer rows of puzzle rows: the running sums mod `modulus` in the digit cells, END elsewhere."""
    tokens = np.asarray(tokens, dtype=np.int64)
    digit = tokens >= FIRST_DIGIT
    sums = np.cumsum(np.where(digit, tokens - FIRST_DIGIT, 0), axis=-1) % modulus
    return np.where(digit, sums + FIRST_DIGIT, END)


def _lengths(tokens: np.ndarray) -> np.ndarray:
    return (np.asarray(tokens) >= FIRST_DIGIT).sum(-1)


def _draw(rng: np.random.Generator, count: int, low: int, high: int, modulus: int, width: int) -> np.ndarray:
    """`count` puzzle rows: lengths uniform in low..high, digits uniform in 0..modulus-1."""
    lengths = rng.integers(low, high + 1, size=count)
    rows = rng.integers(0, modulus, size=(count, width), dtype=np.int64) + FIRST_DIGIT
    rows[np.arange(width)[None, :] >= lengths[:, None]] = END
    return rows


def _draw_unseen(rng: np.random.Generator, count: int, low: int, high: int, modulus: int, width: int,
                 seen_rows: np.ndarray) -> np.ndarray:
    """`count` distinct puzzle rows (lengths low..high) of which none is in `seen_rows`."""
    seen_lengths = _lengths(seen_rows)
    seen = {row.tobytes() for row in seen_rows[(seen_lengths >= low) & (seen_lengths <= high)]}
    capacity = 0
    for length in range(low, high + 1):
        capacity += modulus ** length
        if capacity - len(seen) >= count:
            break
    else:
        raise ConfigError(f"only {capacity - len(seen):,} sequences of lengths {low}..{high} over {modulus} digits "
                          f"are not training sequences; ask for fewer than {count:,} test sequences, or longer ones")
    chosen: list[np.ndarray] = []
    for _ in range(_DRAW_ROUNDS):
        for row in _draw(rng, max(2 * (count - len(chosen)), 1024), low, high, modulus, width):
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == count:
                    return np.stack(chosen)
    raise ConfigError(f"found only {len(chosen):,} of {count:,} distinct test sequences that are not training ones "
                      f"(lengths {low}..{high}, {modulus} digits); ask for fewer test sequences, or longer ones")


def _ramp(count: int) -> list[str]:
    """A light-to-dark colour per digit (for k = 2: pale for 0, blue for 1)."""
    low, high = (0xfd, 0xf6, 0xe3), (0x60, 0xa5, 0xfa)
    colors = []
    for d in range(count):
        f = d / (count - 1) if count > 1 else 0.0
        colors.append("#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(low, high)))
    return colors


class LengthTally:
    """Exact match per sequence length, gathered batch by batch (an evaluation observer): where accuracy falls once
    the sequences are longer than the training ones. The answer is unique, so exact match is also validity."""

    def __init__(self, prefix: str, max_length: int, modulus: int) -> None:
        self.prefix = prefix
        self.modulus = modulus
        self.right = np.zeros(max_length + 1, dtype=np.int64)
        self.count = np.zeros(max_length + 1, dtype=np.int64)

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        inputs = np.asarray(inputs)
        exact = (np.asarray(predictions) == prefix_sum_tokens(inputs, self.modulus)).all(-1)
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
        return f"  {self.prefix}: exact match by sequence length: {', '.join(shares) or 'no sequences'}"


@register
class PrefixSumTask(Task):
    """Sequences of up to `max_length` digits 0..modulus-1, written "1 0 1 1", "1,0,1,1" or (k <= 10) "1011"; the
    answer is their running sums mod k."""

    name = "prefix-sum"
    summary = "generate digit sequences whose running sums mod k are the answer (parity for k=2; length generalisation)"
    Options = PrefixSumOptions
    verdicts = {True: "valid: the running sums of the puzzle's digits",
                False: "NOT valid: not the running sums of the puzzle's digits"}

    def __init__(self, max_length: int = 12, modulus: int = 10) -> None:
        if not (isinstance(max_length, int) and 1 <= max_length <= MAX_LENGTH):
            raise DataError(f"a prefix-sum row holds 1 to {MAX_LENGTH} digits, got max_length {max_length!r}")
        if not (isinstance(modulus, int) and 2 <= modulus <= MAX_MODULUS):
            raise DataError(f"a prefix-sum modulus is 2 to {MAX_MODULUS}, got {modulus!r}")
        self.max_length = max_length
        self.modulus = modulus

    def params(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "modulus": self.modulus}

    @property
    def vocab_size(self) -> int:
        return self.modulus + FIRST_DIGIT

    @property
    def seq_len(self) -> int:
        return self.max_length

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        o = cls._checked(options)
        task = cls(max_length=o.max_length, modulus=o.modulus)
        test_length = o.test_length or o.max_length
        log(f"generating {o.num_train:,} training sequences of {o.min_length}..{o.train_length} digits and "
            f"{o.num_test:,} test sequences of {o.min_length}..{test_length} digits (0..{o.modulus - 1}, sums mod "
            f"{o.modulus}) into {out} (seed {o.seed})")
        rng = np.random.default_rng(o.seed)
        train = _draw(rng, o.num_train, o.min_length, o.train_length, o.modulus, o.max_length)
        test = _draw_unseen(rng, o.num_test, o.min_length, test_length, o.modulus, o.max_length, train)
        shown = 1000  # the contract check decodes and checks this many labels of each split
        summary = task.write_dataset(out, (train, prefix_sum_tokens(train, o.modulus)),
                                     (test, prefix_sum_tokens(test, o.modulus)),
                                     puzzles=(task.decode(train[:shown]), task.decode(test[:shown])))
        return (f"{summary}; training sequences have {o.min_length}..{o.train_length} digits, test sequences "
                f"{o.min_length}..{test_length}")

    @staticmethod
    def _checked(options: TaskOptions) -> PrefixSumOptions:
        assert isinstance(options, PrefixSumOptions)
        o = options
        if not 1 <= o.max_length <= MAX_LENGTH:
            raise ConfigError(f"prefix-sum: max_length must be 1..{MAX_LENGTH}, got {o.max_length}")
        if not 1 <= o.min_length <= o.train_length <= o.max_length:
            raise ConfigError(f"prefix-sum: the lengths must satisfy 1 <= min_length <= train_length <= max_length, "
                              f"got min_length {o.min_length}, train_length {o.train_length}, max_length "
                              f"{o.max_length}")
        if o.test_length and not o.min_length <= o.test_length <= o.max_length:
            raise ConfigError(f"prefix-sum: test_length must be 0 (= max_length) or min_length..max_length "
                              f"({o.min_length}..{o.max_length}), got {o.test_length}")
        if not 2 <= o.modulus <= MAX_MODULUS:
            raise ConfigError(f"prefix-sum: modulus must be 2..{MAX_MODULUS}, got {o.modulus}")
        if o.num_train < 1 or o.num_test < 1:
            raise ConfigError(f"prefix-sum: num_train and num_test must be at least 1, got {o.num_train} and "
                              f"{o.num_test}")
        return o

    # --- one puzzle -------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "puzzle") -> list[int]:
        joined = " or as one run of digits, e.g. '1011'" if self.modulus <= 10 else ""
        expected = (f"expected 1 to {self.max_length} digits 0..{self.modulus - 1} separated by spaces or commas, "
                    f"e.g. '1 0 1 1'{joined}")
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [item for item in re.split(r"[\s,]+", body) if item]
        if self.modulus <= 10:  # every digit is one character: "1011" is four digits
            items = [char for item in items for char in (item if re.fullmatch(r"[0-9]+", item) else [item])]
        if not items:
            raise DataError(f"{where}: no digits; {expected}")
        if len(items) > self.max_length:
            raise DataError(f"{where}: {len(items)} digits, more than this model's {self.max_length}; {expected}")
        digits = []
        for item in items:
            if not re.fullmatch(r"[0-9]+", item) or int(item) >= self.modulus:
                raise DataError(f"{where}: {item!r} is not a digit 0..{self.modulus - 1}; {expected}")
            digits.append(int(item))
        return digits

    def encode(self, puzzles: list[list[int]]) -> np.ndarray:
        rows = np.full((len(puzzles), self.max_length), END, dtype=np.int64)
        for i, puzzle in enumerate(puzzles):
            digits = np.asarray(puzzle, dtype=np.int64).reshape(-1)
            if len(digits) > self.max_length or (len(digits) and (digits.min() < 0 or digits.max() >= self.modulus)):
                raise DataError(f"prefix-sum puzzle {i}: expected at most {self.max_length} digits "
                                f"0..{self.modulus - 1}, got {digits.tolist()}")
            rows[i, :len(digits)] = digits + FIRST_DIGIT
        return rows

    def decode(self, tokens: np.ndarray) -> list[list[int]]:
        """Each row's digits up to its last digit cell; a non-digit cell before it decodes to -1 (never right)."""
        answers = []
        for row in np.asarray(tokens, dtype=np.int64).reshape(-1, np.shape(tokens)[-1]):
            cells = np.flatnonzero(row >= FIRST_DIGIT)
            end = int(cells[-1]) + 1 if len(cells) else 0
            answers.append([int(t) - FIRST_DIGIT if t >= FIRST_DIGIT else -1 for t in row[:end]])
        return answers

    def check(self, puzzle: list[int], answer: list[int]) -> bool:
        return [int(v) for v in answer] == [int(s) for s in np.cumsum(np.asarray(puzzle, dtype=np.int64)) %
                                            self.modulus]

    def format(self, answer: list[int]) -> str:
        return self.one_line(answer) or "(no digits)"

    def one_line(self, answer: list[int]) -> str:
        return " ".join(str(int(v)) if v >= 0 else "_" for v in answer)

    def reference(self, puzzle: list[int]) -> np.ndarray:
        return prefix_sum_tokens(self.encode([puzzle]), self.modulus)[0]

    # --- pictures and metrics ---------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        colors = _ramp(self.modulus)
        return GridStyle(rows=1, cols=self.seq_len, text=lambda t: str(t - FIRST_DIGIT) if t >= FIRST_DIGIT else "",
                         color=lambda t: colors[t - FIRST_DIGIT] if FIRST_DIGIT <= t < self.vocab_size else
                         ("#f2f2f2" if t == END else "white"))

    def viewer_style(self) -> ViewerStyle:
        return ViewerStyle(labels=["", ""] + [str(d) for d in range(self.modulus)],
                           colors=["white", "#f2f2f2"] + _ramp(self.modulus), blank=END)

    def metrics(self, data_path: Path | None, split: Any, meta: Any) -> LengthTally:
        return LengthTally(self.name, self.max_length, self.modulus)
