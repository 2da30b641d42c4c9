"""ARC grids as the models see them: the 30x30 token canvas, the official crop, and augmentation variants.

Tokens (as in the official `dataset/build_arc_dataset.py`): 0 PAD (ignored in the loss), 1 EOS, 2..11 the colours
0..9. A grid sits in the canvas at an offset (r, c); EOS fills the row below it and the column right of it, so the model
must also predict the grid's size.
The canvas is 30x30 as in the papers; a smaller square canvas (for CPU-sized tasks with small grids) is the same
encoding with a shorter sequence, and everything that reads tokens takes the side from the sequence length.

A :class:`Variant` is one augmentation: a dihedral transform and a colour permutation with black fixed. Its name
``{task}|||t{k}|||{colours}`` (the TRM builder's format) is all an evaluator needs to undo it; HRM's
``{task}_t{k}_{colours}`` names are read too.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentloop.data.grids import NUM_DIHEDRAL, dihedral, inverse_dihedral
from latentloop.errors import DataError

CANVAS = 30
SEQ_LEN = CANVAS * CANVAS
PAD, EOS = 0, 1
COLOUR_OFFSET = 2
NUM_COLOURS = 10
VOCAB_SIZE = COLOUR_OFFSET + NUM_COLOURS
SEPARATOR = "|||"
_HRM_NAME = re.compile(r"^(?P<task>.+)_t(?P<t>[0-7])_(?P<colours>\d{10})$")


@dataclass(frozen=True)
class Variant:
    """One augmentation of a task: ``apply`` maps colours, then transforms; ``invert`` undoes both exactly."""

    transform: int = 0
    colours: tuple[int, ...] = tuple(range(NUM_COLOURS))

    def __post_init__(self) -> None:
        if not 0 <= self.transform < NUM_DIHEDRAL:
            raise ValueError(f"dihedral transform ids are 0-7, got {self.transform}")
        if sorted(self.colours) != list(range(NUM_COLOURS)) or self.colours[0] != 0:
            raise ValueError(f"colours must permute 0-9 with 0 (black) fixed, got {self.colours}")

    @property
    def is_identity(self) -> bool:
        return self == IDENTITY

    def apply(self, grid: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(dihedral(np.asarray(self.colours, dtype=np.uint8)[grid], self.transform))

    def invert(self, grid: np.ndarray) -> np.ndarray:
        inverse_colours = np.argsort(self.colours).astype(np.uint8)
        return np.ascontiguousarray(inverse_colours[inverse_dihedral(grid, self.transform)])

    def name(self, task: str) -> str:
        """The identifier name of ``task`` under this variant; the identity keeps the bare task name."""
        if self.is_identity:
            return task
        return f"{task}{SEPARATOR}t{self.transform}{SEPARATOR}{''.join(map(str, self.colours))}"

    @classmethod
    def random(cls, rng: np.random.Generator) -> Variant:
        colours = (0, *(int(c) for c in rng.permutation(np.arange(1, NUM_COLOURS))))
        return cls(int(rng.integers(NUM_DIHEDRAL)), colours)


IDENTITY = Variant()


def parse_name(name: str) -> tuple[str, Variant]:
    """Split an identifier name into the original task id and the variant applied to it."""
    if SEPARATOR in name:
        parts = name.split(SEPARATOR)
        task, transform, colours = SEPARATOR.join(parts[:-2]), parts[-2], parts[-1]
        if not (transform[:1] == "t" and transform[1:].isdigit() and colours.isdigit() and len(colours) == 10):
            raise DataError(f"identifier {name!r} does not name an ARC augmentation (task|||t<k>|||<10 colours>)")
    elif (match := _HRM_NAME.match(name)) is not None:
        task, transform, colours = match["task"], "t" + match["t"], match["colours"]
    else:
        return name, IDENTITY
    try:
        return task, Variant(int(transform[1:]), tuple(int(c) for c in colours))
    except ValueError as exc:
        raise DataError(f"identifier {name!r}: {exc}") from None


def canvas_side(seq_len: int) -> int:
    """The canvas side of an ARC sequence length (900 -> 30); a ValueError when it is not a square of 1-30."""
    side = math.isqrt(seq_len)
    if side * side != seq_len or not 1 <= side <= CANVAS:
        raise ValueError(f"an ARC sequence is a square canvas of at most {SEQ_LEN} tokens, got {seq_len}")
    return side


def check_grid(grid: Any, where: str, canvas: int = CANVAS) -> np.ndarray:
    """A task file's grid as uint8 [h, w], or a DataError naming ``where`` (task and pair) and the problem."""
    if not isinstance(grid, list) or not grid or not all(isinstance(row, list) for row in grid):
        raise DataError(f"{where}: a grid must be a non-empty list of rows")
    widths = {len(row) for row in grid}
    if len(widths) != 1:
        raise DataError(f"{where}: ragged grid, rows have lengths {sorted(widths)}")
    height, width = len(grid), widths.pop()
    if width == 0:
        raise DataError(f"{where}: a grid row is empty")
    if height > canvas or width > canvas:
        raise DataError(f"{where}: grid is {height}x{width}, larger than the {canvas}x{canvas} canvas")
    cells = [cell for row in grid for cell in row]
    if not all(isinstance(cell, int) and not isinstance(cell, bool) and 0 <= cell < NUM_COLOURS for cell in cells):
        bad = next(c for c in cells if not (isinstance(c, int) and not isinstance(c, bool) and 0 <= c < NUM_COLOURS))
        raise DataError(f"{where}: cell value {bad!r} is not a colour 0-9")
    return np.asarray(grid, dtype=np.uint8)


def encode_grid(grid: np.ndarray, offset: tuple[int, int] = (0, 0), canvas: int = CANVAS) -> np.ndarray:
    """The flat canvas tokens [canvas^2] of one grid placed at ``offset``, with its EOS border."""
    rows, cols = grid.shape
    r, c = offset
    if not (0 <= r and 0 <= c and r + rows <= canvas and c + cols <= canvas):
        raise ValueError(f"a {rows}x{cols} grid does not fit the {canvas}x{canvas} canvas at offset {offset}")
    tokens = np.full((canvas, canvas), PAD, dtype=np.uint8)
    tokens[r:r + rows, c:c + cols] = grid + COLOUR_OFFSET
    if r + rows < canvas:
        tokens[r + rows, c:c + cols] = EOS
    if c + cols < canvas:
        tokens[r:r + rows, c + cols] = EOS
    return tokens.reshape(canvas * canvas)


def max_offset(*grids: np.ndarray, canvas: int = CANVAS) -> tuple[int, int]:
    """The largest offset at which all ``grids`` (an input and its output share one offset) fit the canvas."""
    return canvas - max(g.shape[0] for g in grids), canvas - max(g.shape[1] for g in grids)


def crop(tokens: np.ndarray) -> np.ndarray:
    """Read a predicted canvas back as a grid: the largest-area top-left rectangle of colour tokens, found row by
    row with the column count capped by the first non-colour token seen so far (the official rule). A canvas whose
    top-left token is not a colour gives an empty grid."""
    tokens = np.asarray(tokens)
    side = canvas_side(tokens.size)
    canvas = tokens.reshape(side, side)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < VOCAB_SIZE)
    run = np.where(colour.all(axis=1), side, np.argmin(colour, axis=1))   # leading colour cells per row
    width = np.minimum.accumulate(run)
    area = width * np.arange(1, side + 1)
    rows = int(np.argmax(area)) + 1 if area.max() > 0 else 0
    cols = int(width[rows - 1]) if rows else 0
    return (canvas[:rows, :cols] - COLOUR_OFFSET).astype(np.uint8)


def grid_hash(grid: np.ndarray) -> str:
    """A hash of a grid's shape and cells: equal grids, and only they, vote together."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()
