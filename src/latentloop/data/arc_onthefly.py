"""ARC examples encoded when a batch asks for them, so 1000 variants per task cost megabytes instead of gigabytes.

A split stores each original grid once plus, for every example, which grids it uses and its canvas offset, and for
every puzzle (variant) its dihedral transform and colour permutation. :class:`ArcTokens` stands in for the
``inputs`` / ``labels`` arrays of a :class:`~latentloop.data.format.PuzzleSplit`: indexing it with an index array
encodes those rows, a slice gives a view, so the sampler, the test batches and evaluation use it unchanged. The
materialised layout is written through the same encoder, so both layouts hold byte-identical examples.

Files of an on-the-fly split, next to the official ``{set}__puzzle_identifiers/puzzle_indices/group_indices.npy``::

    {set}__grids.npy              uint8 [G, S, S]     original grids at the top-left of the S x S canvas (S = 30)
    {set}__grid_shapes.npy        uint8 [G, 2]        rows, columns of each grid
    {set}__example_grids.npy      int32 [N, 2]        input grid, output grid (-1 = unlabelled: an all-PAD label)
    {set}__example_offsets.npy    uint8 [N, 2]        canvas offset (row, column) shared by input and output
    {set}__puzzle_transforms.npy  uint8 [P]           dihedral transform of each puzzle (official numbering)
    {set}__puzzle_colours.npy     uint8 [P, 10]       colour permutation of each puzzle (black fixed)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentloop.data.arc_grid import CANVAS, COLOUR_OFFSET, NUM_COLOURS, encode_grid
from latentloop.data.grids import dihedral
from latentloop.errors import DataError
from latentloop.paths import ensure_output_dir

SWAPS_SIDES = (1, 3, 6, 7)               # dihedral transforms that exchange rows and columns
STORE_FIELDS = ("grids", "grid_shapes", "example_grids", "example_offsets", "puzzle_transforms", "puzzle_colours")
MARKER_FIELD = "example_grids"          # its presence (without {set}__inputs.npy) marks an on-the-fly split


@dataclass
class ArcStore:
    """Everything needed to encode any example of one split; see the module docstring for the arrays."""

    grids: np.ndarray
    grid_shapes: np.ndarray
    example_grids: np.ndarray
    example_offsets: np.ndarray
    puzzle_transforms: np.ndarray
    puzzle_colours: np.ndarray
    puzzle_indices: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.example_grids.shape[0])

    @property
    def canvas(self) -> int:
        return int(self.grids.shape[-1])

    @property
    def seq_len(self) -> int:
        return self.canvas * self.canvas

    def validate(self, where: str) -> None:
        """Shapes and ranges that encoding relies on; a corrupt store fails here, not mid-training."""
        num_grids = self.grids.shape[0]
        num_puzzles = self.puzzle_indices.shape[0] - 1
        checks = [
            (self.grids.ndim == 3 and self.grids.shape[1] == self.canvas <= CANVAS,
             f"grids must be [G, S, S] with S at most {CANVAS}"),
            (self.grid_shapes.shape == (num_grids, 2), "grid_shapes must be [G, 2]"),
            (self.example_grids.ndim == 2 and self.example_grids.shape[1] == 2, "example_grids must be [N, 2]"),
            (self.example_offsets.shape == self.example_grids.shape, "example_offsets must be [N, 2]"),
            (self.puzzle_transforms.shape == (num_puzzles,), "puzzle_transforms must have one entry per puzzle"),
            (self.puzzle_colours.shape == (num_puzzles, NUM_COLOURS), "puzzle_colours must be [P, 10]"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(f"{where}: {message}")
        if self.num_examples:
            inputs, outputs = self.example_grids[:, 0], self.example_grids[:, 1]
            if int(inputs.min()) < 0 or int(self.example_grids.max()) >= num_grids or int(outputs.min()) < -1:
                raise DataError(f"{where}: example_grids point outside the {num_grids} stored grids")
        if num_puzzles and (int(self.puzzle_transforms.max()) > 7 or int(self.puzzle_colours.max()) >= NUM_COLOURS):
            raise DataError(f"{where}: puzzle_transforms or puzzle_colours hold values out of range")
        if num_grids and (int(self.grids.max()) >= NUM_COLOURS or int(self.grid_shapes.max()) > self.canvas
                          or int(self.grid_shapes.min()) < 1):
            raise DataError(f"{where}: grids hold a colour above 9 or a shape outside 1-{self.canvas}")

    def encode(self, rows: np.ndarray, column: int) -> np.ndarray:
        """Canvas tokens uint8 [len(rows), S*S] of the inputs (column 0) or labels (column 1) of ``rows``: for each
        row ``encode_grid(variant.apply(grid), offset)``. (A loop over rows; a fully vectorised gather over the
        canvas was measured slower, the grids being small.)"""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.zeros((rows.shape[0], self.seq_len), dtype=np.uint8)
        if rows.size == 0:
            return out
        puzzles = np.searchsorted(self.puzzle_indices, rows, side="right") - 1
        grid_ids = np.asarray(self.example_grids[rows, column])
        offsets = np.asarray(self.example_offsets[rows]).tolist()
        shapes = self.grid_shapes[np.maximum(grid_ids, 0)].tolist()
        transforms = self.puzzle_transforms[puzzles].tolist()
        colours = self.puzzle_colours[puzzles]
        for i, grid_id in enumerate(grid_ids.tolist()):
            if grid_id < 0:                      # an unlabelled test output: nothing is supervised
                continue
            height, width = shapes[i]
            grid = colours[i][self.grids[grid_id, :height, :width]]
            out[i] = encode_grid(np.ascontiguousarray(dihedral(grid, transforms[i])), tuple(offsets[i]), self.canvas)
        return out

    def max_token(self, rows: np.ndarray | None, column: int) -> int:
        """The largest token of those rows without encoding them: the largest colour each grid maps to, plus 2."""
        present = np.zeros((self.grids.shape[0], NUM_COLOURS), dtype=bool)
        for g, (r, c) in enumerate(self.grid_shapes.tolist()):
            present[g, np.unique(self.grids[g, :r, :c])] = True
        rows = np.arange(self.num_examples) if rows is None else np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return 0
        grid_ids = np.asarray(self.example_grids[rows, column])
        puzzles = np.searchsorted(self.puzzle_indices, rows, side="right") - 1
        colours = self.puzzle_colours[puzzles].astype(np.int16)
        mapped = np.where(present[np.maximum(grid_ids, 0)], colours, -1).max(axis=1)
        return int(np.where(grid_ids < 0, 0, mapped + COLOUR_OFFSET).max())


class ArcTokens:
    """The inputs or labels of an on-the-fly split, standing in for a uint8 [N, S*S] array."""

    dtype = np.dtype(np.uint8)
    ndim = 2

    def __init__(self, store: ArcStore, column: int, rows: np.ndarray | None = None) -> None:
        self.store = store
        self.column = column
        self.rows = rows                          # None: every example of the split, in order

    def _rows(self) -> np.ndarray:
        return np.arange(self.store.num_examples) if self.rows is None else self.rows

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.store.seq_len)

    @property
    def size(self) -> int:
        return len(self) * self.store.seq_len

    def __len__(self) -> int:
        return self.store.num_examples if self.rows is None else int(self.rows.shape[0])

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return ArcTokens(self.store, self.column, self._rows()[key])
        if isinstance(key, (int, np.integer)):
            return self.store.encode(self._rows()[[key]], self.column)[0]
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        if not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"ARC token rows are indexed by integers, slices or masks, not {index.dtype}")
        return self.store.encode(self._rows()[index], self.column).reshape(*index.shape, self.store.seq_len)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row encoded, for code that takes ``np.asarray`` of a whole split (the viewer)."""
        tokens = self.store.encode(self._rows(), self.column)
        return tokens if dtype is None else tokens.astype(dtype)

    def max(self) -> int:
        """The largest token, without encoding (``read_split`` checks it against the vocabulary)."""
        return self.store.max_token(self.rows, self.column)


def write_store(split_dir: Path, store: ArcStore, set_name: str = "all") -> None:
    """Save the on-the-fly arrays (the caller writes the official index arrays and dataset.json)."""
    ensure_output_dir(split_dir)
    for name in STORE_FIELDS:
        np.save(split_dir / f"{set_name}__{name}.npy", getattr(store, name))


def is_onthefly(split_dir: Path, set_name: str = "all") -> bool:
    """Whether a split folder holds the on-the-fly layout instead of materialised inputs and labels."""
    return (not (split_dir / f"{set_name}__inputs.npy").exists()
            and (split_dir / f"{set_name}__{MARKER_FIELD}.npy").exists())


def read_tokens(split_dir: Path, set_name: str, puzzle_indices: np.ndarray, mmap: bool,
                load: Callable[[Path, bool], np.ndarray]) -> tuple[ArcTokens, ArcTokens]:
    """Inputs and labels of an on-the-fly split; ``load(path, mmap)`` reads one .npy with one-line errors."""
    arrays = {name: load(split_dir / f"{set_name}__{name}.npy", mmap and name.startswith("example_"))
              for name in STORE_FIELDS}
    store = ArcStore(**arrays, puzzle_indices=np.asarray(puzzle_indices, dtype=np.int64))
    store.validate(str(split_dir))
    return ArcTokens(store, 0), ArcTokens(store, 1)
