"""Validity-preserving augmentations of a task's token rows, with exact inverses on answers.

An augmentation turns a puzzle into another puzzle of the same task whose answers correspond one to one with the
original's: a Sudoku with its digits relabelled, a maze rotated, a graph with its nodes renumbered. A builder adds
them as training variants (``puzzles`` and ``answers`` together); test-time voting runs a model on ``puzzles`` of
each transform and maps each predicted answer back with ``invert_answers``, so answers of different transforms can
be compared. Both work on token rows ``[B, seq_len]``, the form the model sees.

`Task.augmentations(count, seed)` hands out ``count`` distinct transforms, the identity first; a task that has none
(`Task.augmentation_count` is 1) only has the identity. A task whose transforms cannot be written as a fixed map of
token rows (ARC, whose grids sit at the corner of a padded canvas) subclasses `Augmentation` with its own three
methods.
"""

from __future__ import annotations

import numpy as np


class Augmentation:
    """One deterministic transform; the base class is the identity (every task has it, always first)."""

    name: str = "identity"

    def key(self) -> bytes:
        """Equal keys mean the same transform (how distinct transforms are drawn); the identity's is empty."""
        return b""

    def puzzles(self, rows: np.ndarray) -> np.ndarray:
        """Puzzle token rows -> the rows of the transformed puzzles."""
        return np.array(rows, copy=True)

    def answers(self, rows: np.ndarray) -> np.ndarray:
        """Answer token rows of the original puzzles -> the corresponding answers of the transformed puzzles."""
        return self.puzzles(rows)

    def invert_answers(self, rows: np.ndarray) -> np.ndarray:
        """Answer token rows of the transformed puzzles -> answers of the original puzzles, exactly:
        ``invert_answers(answers(y)) == y``."""
        return np.array(rows, copy=True)

    def __repr__(self) -> str:
        return f"<augmentation {self.name}>"


IDENTITY = Augmentation()


class CellPermutation(Augmentation):
    """Move cells and relabel tokens, the same way in puzzles and answers: output cell k is input cell ``cells[k]``
    with its token t replaced by ``tokens[t]``. Sudoku, maze and graph transforms all have this form."""

    def __init__(self, name: str, cells: np.ndarray, tokens: np.ndarray) -> None:
        self.name = name
        self.cells = np.asarray(cells, dtype=np.int64)
        self.tokens = np.asarray(tokens, dtype=np.int64)
        for what, values in (("cells", self.cells), ("tokens", self.tokens)):
            if values.ndim != 1 or not np.array_equal(np.sort(values), np.arange(len(values))):
                raise ValueError(f"augmentation {name}: {what} must be a permutation of 0..{len(values) - 1}")
        self.inverse_cells = np.argsort(self.cells)
        self.inverse_tokens = np.argsort(self.tokens)

    def key(self) -> bytes:
        identity = (np.array_equal(self.cells, np.arange(len(self.cells)))
                    and np.array_equal(self.tokens, np.arange(len(self.tokens))))
        return b"" if identity else self.cells.tobytes() + self.tokens.tobytes()

    def puzzles(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        return self.tokens[rows[..., self.cells]].astype(rows.dtype)

    def invert_answers(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        return self.inverse_tokens[rows[..., self.inverse_cells]].astype(rows.dtype)
