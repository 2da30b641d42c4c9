"""The official HRM/TRM on-disk dataset layout, read and written, so datasets move both ways between codebases.

A split folder (``<out>/train`` or ``<out>/test``) holds, for each set name (always ``all`` in practice)::

    {set}__inputs.npy              uint8 [N_examples, seq_len]  token ids
    {set}__labels.npy              uint8 [N_examples, seq_len]  target ids (ignore_label_id = not supervised)
    {set}__puzzle_identifiers.npy  int32 [N_puzzles]            embedding id of each puzzle
    {set}__puzzle_indices.npy      int32 [N_puzzles + 1]        CSR offsets: puzzle -> example range
    {set}__group_indices.npy       int32 [N_groups + 1]         CSR offsets: group -> puzzle range
    dataset.json                   DatasetMetadata

and ``<out>/identifiers.json`` maps identifier -> name (index 0 is ``"<blank>"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentloop.data.arc_onthefly import is_onthefly, read_tokens
from latentloop.errors import DataError
from latentloop.paths import ensure_output_dir

BLANK_IDENTIFIER_NAME = "<blank>"
METADATA_FILE = "dataset.json"
IDENTIFIERS_FILE = "identifiers.json"
ARRAY_FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


@dataclass(kw_only=True)
class DatasetMetadata:
    """The contents of ``dataset.json``; field names and order match the official ``PuzzleDatasetMetadata``."""

    pad_id: int = 0
    ignore_label_id: int | None = 0
    blank_identifier_id: int = 0
    vocab_size: int
    seq_len: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    total_puzzles: int
    sets: list[str] = field(default_factory=lambda: ["all"])
    task: str | None = None                 # latentloop: the task (latentloop.tasks) whose tokens these are
    task_params: dict[str, Any] = field(default_factory=dict)   # and its encoding parameters

    @classmethod
    def for_split(
        cls,
        split: PuzzleSplit,
        *,
        vocab_size: int,
        num_puzzle_identifiers: int,
        pad_id: int = 0,
        ignore_label_id: int | None = 0,
        blank_identifier_id: int = 0,
        task: str | None = None,
        task_params: dict[str, Any] | None = None,
    ) -> DatasetMetadata:
        """Derive the counting fields from the arrays so builders cannot get them wrong."""
        return cls(
            pad_id=pad_id,
            ignore_label_id=ignore_label_id,
            blank_identifier_id=blank_identifier_id,
            vocab_size=vocab_size,
            seq_len=split.seq_len,
            num_puzzle_identifiers=num_puzzle_identifiers,
            total_groups=split.num_groups,
            mean_puzzle_examples=split.num_examples / split.num_puzzles if split.num_puzzles else 0.0,
            total_puzzles=split.num_puzzles,
            task=task,
            task_params=dict(task_params or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict in the official key order, ready for ``json.dump``; the task keys follow (the official
        readers ignore keys they do not know)."""
        data = {
            "pad_id": self.pad_id,
            "ignore_label_id": self.ignore_label_id,
            "blank_identifier_id": self.blank_identifier_id,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "num_puzzle_identifiers": self.num_puzzle_identifiers,
            "total_groups": self.total_groups,
            "mean_puzzle_examples": self.mean_puzzle_examples,
            "total_puzzles": self.total_puzzles,
            "sets": list(self.sets),
        }
        if self.task:
            data.update(task=self.task, task_params=dict(self.task_params))
        return data

    @classmethod
    def from_json(
        cls, data: dict[str, Any], *, default_total_puzzles: int | None = None, where: str = METADATA_FILE
    ) -> DatasetMetadata:
        """Parse a ``dataset.json`` dict; HRM files lack ``total_puzzles``, so the caller may supply it from the arrays.

        Unknown keys are ignored (as pydantic does in the official code); missing or ill-typed keys raise DataError.
        """
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        if "total_puzzles" not in data and default_total_puzzles is not None:
            data["total_puzzles"] = default_total_puzzles
        values: dict[str, Any] = {}
        for name in ("pad_id", "blank_identifier_id", "vocab_size", "seq_len", "num_puzzle_identifiers",
                     "total_groups", "total_puzzles"):
            values[name] = _json_int(data, name, where)
        ignore = data.get("ignore_label_id", 0)
        values["ignore_label_id"] = None if ignore is None else _json_int(data, "ignore_label_id", where)
        mean = data.get("mean_puzzle_examples")
        if isinstance(mean, bool) or not isinstance(mean, (int, float)):
            raise DataError(f"{where}: 'mean_puzzle_examples' must be a number, got {mean!r}")
        values["mean_puzzle_examples"] = float(mean)
        sets = data.get("sets", ["all"])
        if not isinstance(sets, list) or not sets or not all(isinstance(s, str) for s in sets):
            raise DataError(f"{where}: 'sets' must be a non-empty list of names, got {sets!r}")
        values["sets"] = list(sets)
        task, params = data.get("task"), data.get("task_params", {})
        if task is not None and (not isinstance(task, str) or not task):
            raise DataError(f"{where}: 'task' must be a task name, got {task!r}")
        if not isinstance(params, dict):
            raise DataError(f"{where}: 'task_params' must be an object, got {params!r}")
        return cls(**values, task=task, task_params=params)


def _json_int(data: dict[str, Any], name: str, where: str) -> int:
    """Fetch an integer key with a one-line error that names the file and key."""
    if name not in data:
        raise DataError(f"{where}: missing key '{name}'")
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: '{name}' must be an integer, got {value!r}")
    return value


@dataclass
class PuzzleSplit:
    """The five arrays of one set of a split: examples, and CSR offsets grouping them into puzzles and groups."""

    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    puzzle_indices: np.ndarray
    group_indices: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_puzzles(self) -> int:
        return int(self.puzzle_identifiers.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.group_indices.shape[0]) - 1

    @property
    def seq_len(self) -> int:
        return int(self.inputs.shape[1])

    @classmethod
    def from_counts(
        cls,
        inputs: np.ndarray,
        labels: np.ndarray,
        puzzle_identifiers: np.ndarray | Sequence[int],
        examples_per_puzzle: np.ndarray | Sequence[int],
        puzzles_per_group: np.ndarray | Sequence[int],
    ) -> PuzzleSplit:
        """Build the CSR offsets from per-puzzle and per-group counts, so builders never hand-roll offsets."""
        puzzle_indices = np.zeros(len(examples_per_puzzle) + 1, dtype=np.int32)
        np.cumsum(np.asarray(examples_per_puzzle, dtype=np.int64), out=puzzle_indices[1:], dtype=np.int32)
        group_indices = np.zeros(len(puzzles_per_group) + 1, dtype=np.int32)
        np.cumsum(np.asarray(puzzles_per_group, dtype=np.int64), out=group_indices[1:], dtype=np.int32)
        split = cls(
            inputs=np.asarray(inputs),
            labels=np.asarray(labels),
            puzzle_identifiers=np.asarray(puzzle_identifiers, dtype=np.int32),
            puzzle_indices=puzzle_indices,
            group_indices=group_indices,
        )
        split.validate()
        return split

    def validate(self, where: str = "split") -> None:
        """Check shapes, dtypes and CSR offsets; raise DataError naming the first array that disagrees."""
        for name in ARRAY_FIELDS:
            array = getattr(self, name)
            if not np.issubdtype(array.dtype, np.integer):
                raise DataError(f"{where}: {name} must hold integers, got dtype {array.dtype}")
        if self.inputs.ndim != 2:
            raise DataError(f"{where}: inputs must be 2-D [examples, seq_len], got shape {self.inputs.shape}")
        if self.labels.shape != self.inputs.shape:
            raise DataError(f"{where}: labels shape {self.labels.shape} differs from inputs shape {self.inputs.shape}")
        for name in ("inputs", "labels"):
            array = getattr(self, name)
            if array.size and np.issubdtype(array.dtype, np.signedinteger) and int(array.min()) < 0:
                raise DataError(f"{where}: {name} contain a negative token {int(array.min())}")
        for name in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
            if getattr(self, name).ndim != 1:
                raise DataError(f"{where}: {name} must be 1-D, got shape {getattr(self, name).shape}")
        if self.puzzle_indices.shape[0] != self.num_puzzles + 1:
            raise DataError(
                f"{where}: puzzle_indices has {self.puzzle_indices.shape[0]} offsets; "
                f"{self.num_puzzles} puzzles need {self.num_puzzles + 1}"
            )
        _check_csr(self.puzzle_indices, self.num_examples, "puzzle_indices", "examples", where)
        _check_csr(self.group_indices, self.num_puzzles, "group_indices", "puzzles", where)


def _check_csr(offsets: np.ndarray, total: int, name: str, counted: str, where: str) -> None:
    """A CSR offset array starts at 0, never decreases and ends at the number of items it partitions."""
    if offsets.shape[0] == 0:
        raise DataError(f"{where}: {name} is empty; it needs at least the leading 0")
    if int(offsets[0]) != 0:
        raise DataError(f"{where}: {name} must start at 0, starts at {int(offsets[0])}")
    if offsets.shape[0] > 1 and bool(np.any(np.diff(offsets) < 0)):
        raise DataError(f"{where}: {name} decreases at position {int(np.argmax(np.diff(offsets) < 0)) + 1}")
    if int(offsets[-1]) != total:
        raise DataError(f"{where}: {name} ends at {int(offsets[-1])} but there are {total} {counted}")


PuzzleRows = Sequence[tuple[np.ndarray | Sequence[int], np.ndarray | Sequence[int]]]


def build_split(groups: Sequence[Sequence[tuple[int, PuzzleRows]]], seq_len: int) -> PuzzleSplit:
    """Assemble a split from nested Python lists: groups -> puzzles ``(identifier, [(input_row, label_row), ...])``.

    Convenient for task builders with irregular structure (ARC); vectorised builders use ``PuzzleSplit.from_counts``.
    """
    inputs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    identifiers: list[int] = []
    examples_per_puzzle: list[int] = []
    puzzles_per_group: list[int] = []
    for group in groups:
        puzzles_per_group.append(len(group))
        for identifier, rows in group:
            identifiers.append(int(identifier))
            examples_per_puzzle.append(len(rows))
            for input_row, label_row in rows:
                inputs.append(np.asarray(input_row).reshape(-1))
                labels.append(np.asarray(label_row).reshape(-1))
    for kind, rows_ in (("input", inputs), ("label", labels)):
        bad = next((i for i, row in enumerate(rows_) if row.shape[0] != seq_len), None)
        if bad is not None:
            raise DataError(f"example {bad}: {kind} row has {rows_[bad].shape[0]} tokens; seq_len is {seq_len}")
    tokens = [np.stack(rows_) if rows_ else np.zeros((0, seq_len), dtype=np.int64) for rows_ in (inputs, labels)]
    if any(t.size and int(t.min()) < 0 for t in tokens):
        raise DataError("build_split: token ids must be non-negative")
    largest = max((int(t.max()) for t in tokens if t.size), default=0)
    return PuzzleSplit.from_counts(
        inputs=tokens[0].astype(_token_dtype(largest + 1)),
        labels=tokens[1].astype(_token_dtype(largest + 1)),
        puzzle_identifiers=identifiers,
        examples_per_puzzle=examples_per_puzzle,
        puzzles_per_group=puzzles_per_group,
    )


def _token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The official files store tokens as uint8; wider vocabularies need a wider type."""
    return np.uint8 if vocab_size <= 256 else np.uint16


def write_split(
    split_dir: str | Path, split: PuzzleSplit, metadata: DatasetMetadata, set_name: str = "all"
) -> Path:
    """Write one set of a split in the official layout (same file names, dtypes and JSON keys); return the folder."""
    split_dir = Path(split_dir)
    split.validate(where=str(split_dir))
    _check_metadata(split, metadata, str(split_dir / METADATA_FILE))
    if set_name not in metadata.sets:
        raise DataError(f"{split_dir}: set '{set_name}' is not listed in metadata sets {metadata.sets}")
    ensure_output_dir(split_dir)
    token_dtype = _token_dtype(metadata.vocab_size)
    arrays = {
        "inputs": split.inputs.astype(token_dtype, copy=False),
        "labels": split.labels.astype(token_dtype, copy=False),
        "puzzle_identifiers": split.puzzle_identifiers.astype(np.int32, copy=False),
        "puzzle_indices": split.puzzle_indices.astype(np.int32, copy=False),
        "group_indices": split.group_indices.astype(np.int32, copy=False),
    }
    for name, array in arrays.items():
        np.save(split_dir / f"{set_name}__{name}.npy", array)
    with open(split_dir / METADATA_FILE, "w", encoding="utf-8") as f:
        json.dump(metadata.to_json(), f, indent=2)
    return split_dir


def read_json(path: Path) -> Any:
    """A JSON file, or DataError naming it when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON ({str(exc).splitlines()[0]})") from None


def find_metadata(path: str | Path) -> tuple[DatasetMetadata, Path] | None:
    """The metadata describing a dataset folder or one split folder, with the dataset.json it came from; None when
    there is none. A dataset folder's ``train/dataset.json`` is preferred over ``test/`` (the model is sized by the
    data it trains on; the two agree on vocabulary, sequence length and task in every builder); the test one serves
    a folder with only a test split, and a split folder is read itself. HRM files lack ``total_puzzles``: it reads
    as 0 here, since only ``read_split`` can count it from the arrays."""
    path = Path(path)
    found = next((file for file in (path / "train" / METADATA_FILE, path / "test" / METADATA_FILE,
                                    path / METADATA_FILE) if file.is_file()), None)
    if found is None:
        return None
    return DatasetMetadata.from_json(read_json(found), default_total_puzzles=0, where=str(found)), found


def read_split(
    split_dir: str | Path, set_name: str = "all", mmap: bool = True
) -> tuple[PuzzleSplit, DatasetMetadata]:
    """Read one set of a split; inputs/labels are memory-mapped (when ``mmap``) and the index arrays loaded into RAM.

    Every problem (missing folder or file, truncated .npy, metadata that disagrees with the arrays) raises DataError
    with one line naming the file. An ARC split in the on-the-fly layout (``data/arc_onthefly.py``) is read too: its
    inputs and labels are then array-like objects that encode the rows a batch indexes.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: dataset split folder not found")
    meta_path = split_dir / METADATA_FILE
    raw = read_json(meta_path)
    arrays = {
        name: _load_array(split_dir / f"{set_name}__{name}.npy", mmap and name in ("inputs", "labels"))
        for name in ARRAY_FIELDS if name not in ("inputs", "labels") or not is_onthefly(split_dir, set_name)
    }
    if "inputs" not in arrays:  # ARC stored as original grids + variant parameters, encoded per batch
        arrays["inputs"], arrays["labels"] = read_tokens(split_dir, set_name, arrays["puzzle_indices"], mmap,
                                                         _load_array)
    split = PuzzleSplit(**arrays)
    split.validate(where=str(split_dir))
    metadata = DatasetMetadata.from_json(raw, default_total_puzzles=split.num_puzzles, where=str(meta_path))
    if set_name not in metadata.sets:
        raise DataError(f"{meta_path}: set '{set_name}' is not listed in 'sets' {metadata.sets}")
    _check_metadata(split, metadata, str(meta_path))
    return split, metadata


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    """np.load with every failure turned into a one-line DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable or truncated .npy file ({reason})") from None


def _check_metadata(split: PuzzleSplit, metadata: DatasetMetadata, where: str) -> None:
    """Metadata must describe the arrays it ships with; a mismatch would silently corrupt training."""
    if metadata.seq_len != split.seq_len:
        raise DataError(f"{where}: seq_len is {metadata.seq_len} but the arrays have {split.seq_len} tokens per row")
    if metadata.total_groups != split.num_groups:
        raise DataError(f"{where}: total_groups is {metadata.total_groups} but group_indices has {split.num_groups}")
    # The official Sudoku and Maze builders write the number of groups here; the ARC builder the number of puzzles.
    if metadata.total_puzzles not in (split.num_puzzles, split.num_groups):
        raise DataError(
            f"{where}: total_puzzles is {metadata.total_puzzles} but the arrays hold {split.num_puzzles} puzzles"
        )
    if not math.isfinite(metadata.mean_puzzle_examples) or metadata.mean_puzzle_examples < 0:
        raise DataError(f"{where}: mean_puzzle_examples must be a finite non-negative number")
    if split.num_examples:
        for name in ("inputs", "labels"):
            largest = int(getattr(split, name).max())
            if largest >= metadata.vocab_size:
                raise DataError(f"{where}: vocab_size is {metadata.vocab_size} but {name} contain token {largest}")
    if split.num_puzzles:
        largest_id = int(split.puzzle_identifiers.max())
        if largest_id >= metadata.num_puzzle_identifiers or int(split.puzzle_identifiers.min()) < 0:
            raise DataError(
                f"{where}: num_puzzle_identifiers is {metadata.num_puzzle_identifiers} "
                f"but puzzle_identifiers range up to {largest_id}"
            )


def write_identifiers(root: str | Path, names: Sequence[str]) -> Path:
    """Write ``identifiers.json`` (identifier -> name); index 0 must be the blank identifier."""
    names = list(names)
    if not names or names[0] != BLANK_IDENTIFIER_NAME:
        raise DataError(f"{root}: identifier 0 must be named {BLANK_IDENTIFIER_NAME!r}")
    path = Path(root) / IDENTIFIERS_FILE
    ensure_output_dir(path.parent)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(names, f)
    return path


def read_identifiers(root: str | Path) -> list[str]:
    """Read ``identifiers.json`` from a dataset root."""
    path = Path(root) / IDENTIFIERS_FILE
    names = read_json(path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: expected a JSON list of names")
    return names
