"""Running sums: a digit sequence x_1..x_L (digits 0..k-1) -> its prefix sums modulo k,
y_i = (x_1 + ... + x_i) mod k (the running parity when k = 2): each answer cell depends on every cell before it.
Encoding and length generalisation: `latentloop.tasks.sequence`.

Augmentations: reordering the digits changes the answer in a way no fixed map of answer rows undoes, and an arbitrary
relabelling of the digits does not commute with the sums. The affine maps x -> u*x + c (mod k, u a unit mod k) do:
the sums become y_i -> u*y_i + i*c, a fixed map of each answer cell, so there are k * phi(k) of them (2 for parity:
the identity and flipping every digit)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from latentloop.tasks import register
from latentloop.tasks.augmentation import Augmentation
from latentloop.tasks.sequence import END, FIRST_SYMBOL, SequenceOptions, SequenceTask

__all__ = ["END", "AffineDigits", "PrefixSumOptions", "PrefixSumTask", "prefix_sum_tokens"]


@dataclass
class PrefixSumOptions(SequenceOptions):
    modulus: int = field(default=10, metadata={"help": "k: the digits are 0..k-1 and the sums are taken mod k "
                                                       "(2: running parity)"})


def prefix_sum_tokens(tokens: np.ndarray, modulus: int) -> np.ndarray:
    """The answer rows of puzzle rows: the running sums mod `modulus` in the digit cells, END elsewhere."""
    tokens = np.asarray(tokens, dtype=np.int64)
    digit = tokens >= FIRST_SYMBOL
    sums = np.cumsum(np.where(digit, tokens - FIRST_SYMBOL, 0), axis=-1) % modulus
    return np.where(digit, sums + FIRST_SYMBOL, END)


class AffineDigits(Augmentation):
    """x -> u*x + c (mod k) in every digit cell of a puzzle; the running sum in cell i (1-based) becomes
    u*y + i*c, and back y = u^-1 * (y' - i*c). Cells that hold no digit stay as they are."""

    def __init__(self, name: str, modulus: int, scale: int, shift: int) -> None:
        self.name, self.modulus, self.scale, self.shift = name, modulus, scale, shift
        self.inverse_scale = pow(scale, -1, modulus)

    def key(self) -> bytes:
        return b"" if (self.scale, self.shift) == (1, 0) else f"{self.scale},{self.shift}".encode()

    def _map(self, rows: np.ndarray, scale: int, offset: int | np.ndarray) -> np.ndarray:
        """scale * x + offset (mod k) in the digit cells; `offset` may differ per cell."""
        rows = np.asarray(rows)
        mapped = (scale * (rows.astype(np.int64) - FIRST_SYMBOL) + offset) % self.modulus + FIRST_SYMBOL
        return np.where(rows >= FIRST_SYMBOL, mapped, rows).astype(rows.dtype)

    def puzzles(self, rows: np.ndarray) -> np.ndarray:
        return self._map(rows, self.scale, self.shift)

    def answers(self, rows: np.ndarray) -> np.ndarray:
        return self._map(rows, self.scale, self.shift * _cell_numbers(rows))

    def invert_answers(self, rows: np.ndarray) -> np.ndarray:
        return self._map(rows, self.inverse_scale, -self.inverse_scale * self.shift * _cell_numbers(rows))


def _cell_numbers(rows: np.ndarray) -> np.ndarray:
    """i = 1, 2, ... for the cells of a row: the running sum in cell i has taken the shift i times."""
    return np.arange(1, np.shape(rows)[-1] + 1)


@register
class PrefixSumTask(SequenceTask):
    """Sequences of up to `max_length` digits 0..modulus-1, written "1 0 1 1", "1,0,1,1" or (k <= 10) "1011"; the
    answer is their running sums mod k."""

    name = "prefix-sum"
    summary = "generate digit sequences whose running sums mod k are the answer (parity for k=2; length generalisation)"
    Options = PrefixSumOptions
    symbols_key, row_word, cell_word, digit_runs = "modulus", "sequence", "digit", True
    verdicts = {True: "valid: the running sums of the puzzle's digits",
                False: "NOT valid: not the running sums of the puzzle's digits"}

    def __init__(self, max_length: int = 12, modulus: int = 10) -> None:
        super().__init__(max_length, modulus)

    def answer_tokens(self, tokens: np.ndarray) -> np.ndarray:
        return prefix_sum_tokens(tokens, self.symbols)

    def augmentation_count(self) -> int:
        return self.symbols * len(_units(self.symbols))

    def random_augmentation(self, rng: np.random.Generator, index: int) -> AffineDigits:
        units = _units(self.symbols)
        return AffineDigits(f"affine-{index}", self.symbols, units[int(rng.integers(len(units)))],
                            int(rng.integers(self.symbols)))


def _units(modulus: int) -> list[int]:
    """The numbers 1..k-1 with an inverse mod k (1 alone for k = 2)."""
    return [u for u in range(1, modulus) if math.gcd(u, modulus) == 1]
