"""Running sums: a digit sequence x_1..x_L (digits 0..k-1) -> its prefix sums modulo k,
y_i = (x_1 + ... + x_i) mod k (the running parity when k = 2): each answer cell depends on every cell before it.
Encoding and length generalisation: `latentloop.tasks.sequence`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latentloop.tasks import register
from latentloop.tasks.sequence import END, FIRST_SYMBOL, SequenceOptions, SequenceTask

__all__ = ["END", "PrefixSumOptions", "PrefixSumTask", "prefix_sum_tokens"]


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
