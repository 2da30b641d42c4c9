"""Batch sampling over the official layout (the official `puzzle_dataset.py`): whole-puzzle training batches by
group, padded test batches.

Training batches follow the official group sampler. Iteration k (counted from 0) draws from
``np.random.Generator(np.random.Philox(seed + k + 1))``, the official loader's seeding (it counts from 1), so the
group order matches the official one for the same seed. Every other random choice (including the subset taken from
a puzzle that overflows a batch, which the official code draws from the unseeded global RNG) comes from the same
generator, so a run and its resumption see identical batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from latentloop.data.format import DatasetMetadata, PuzzleSplit
from latentloop.errors import ConfigError, DataError

IGNORE_LABEL_ID = -100
Batch = dict[str, Any]


def total_train_steps(metadata: DatasetMetadata, epochs: float, global_batch_size: int) -> int:
    """The official step budget: ``int(epochs * total_groups * mean_puzzle_examples / global_batch_size)``."""
    return int(epochs * metadata.total_groups * metadata.mean_puzzle_examples / global_batch_size)


def _local_size(global_batch_size: int, rank: int, world_size: int) -> int:
    """Each rank owns a contiguous equal slice of the global batch, so the batch must split evenly."""
    if global_batch_size <= 0:
        raise ConfigError(f"global_batch_size must be positive, got {global_batch_size}")
    if world_size <= 0 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is outside world_size {world_size}")
    if global_batch_size % world_size:
        raise ConfigError(f"global_batch_size {global_batch_size} is not divisible by world_size {world_size}")
    return global_batch_size // world_size


def _collate(
    split: PuzzleSplit, metadata: DatasetMetadata, example_indices: np.ndarray, puzzle_indices: np.ndarray
) -> Batch:
    """Gather rows as int64 and turn the metadata's ignore label into -100, the loss's ignore index."""
    labels = np.asarray(split.labels[example_indices], dtype=np.int64)
    if metadata.ignore_label_id is not None:
        labels[labels == metadata.ignore_label_id] = IGNORE_LABEL_ID
    return {
        "inputs": np.asarray(split.inputs[example_indices], dtype=np.int64),
        "labels": labels,
        "puzzle_identifiers": split.puzzle_identifiers[puzzle_indices].astype(np.int64),
    }


class GroupSampler:
    """Infinite iterator of training batches; one "iteration" = ``epochs_per_iter`` shuffled passes over the groups.

    In each pass every group contributes one random puzzle (one augmented variant) with all its examples; a puzzle
    that would overflow the batch contributes a random subset of its examples, and the batch is then complete. The
    incomplete batch at the end of an iteration is dropped. The global batch does not depend on ``rank`` or
    ``world_size``; each rank receives the contiguous slice ``[rank * local : (rank + 1) * local]``.
    """

    def __init__(
        self,
        split: PuzzleSplit,
        metadata: DatasetMetadata,
        global_batch_size: int,
        seed: int,
        epochs_per_iter: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.local_batch_size = _local_size(global_batch_size, rank, world_size)
        if epochs_per_iter <= 0:
            raise ConfigError(f"epochs_per_iter must be positive, got {epochs_per_iter}")
        if split.num_groups == 0:
            raise DataError("training split has no groups to sample from")
        empty = np.flatnonzero(np.diff(split.group_indices) == 0)
        if empty.size:
            raise DataError(f"training split group {int(empty[0])} has no puzzles to sample from")
        self.split = split
        self.metadata = metadata
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.epochs_per_iter = epochs_per_iter
        self.rank = rank
        self.world_size = world_size
        self._puzzle_indices = np.asarray(split.puzzle_indices, dtype=np.int64)
        self._group_indices = np.asarray(split.group_indices, dtype=np.int64)
        self._iteration = 0
        self._batch = 0
        self._plan: _IterationPlan | None = None
        self._lengths: dict[int, int] = {}

    @property
    def iteration(self) -> int:
        """Index of the iteration the next batch comes from."""
        return self._iteration

    @property
    def batch_in_iteration(self) -> int:
        """Index, within its iteration, of the next batch."""
        return self._batch

    @property
    def epoch(self) -> int:
        """Epochs completed before the current iteration began."""
        return self._iteration * self.epochs_per_iter

    @property
    def batches_per_iteration(self) -> int:
        """Expected batches per iteration by the official formula (exact when every puzzle has the same size)."""
        return total_train_steps(self.metadata, self.epochs_per_iter, self.global_batch_size)

    def iteration_length(self, iteration: int) -> int:
        """The exact number of batches iteration ``iteration`` yields (the official loader's count for the same
        seed): it depends only on the group order and the puzzles' sizes, not on the subsets drawn."""
        if iteration not in self._lengths:
            self._lengths[iteration] = _IterationPlan(self, iteration).count_batches()
        return self._lengths[iteration]

    def state_dict(self) -> dict[str, int]:
        """Position of the next batch, plus the settings that must match for a resume to replay the same batches."""
        return {
            "iteration": self._iteration,
            "batch": self._batch,
            "seed": self.seed,
            "global_batch_size": self.global_batch_size,
            "epochs_per_iter": self.epochs_per_iter,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved position; the world size may differ, since the global batches do not depend on it."""
        for key in ("seed", "global_batch_size", "epochs_per_iter"):
            if key in state and state[key] != getattr(self, key):
                raise ConfigError(
                    f"sampler state was saved with {key}={state[key]}, but this run uses {getattr(self, key)}"
                )
        self._iteration = int(state["iteration"])
        self._batch = int(state["batch"])
        self._plan = None

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        while True:
            if self._plan is None:
                self._plan = _IterationPlan(self, self._iteration)
                for _ in range(self._batch):
                    if self._plan.next_batch() is None:
                        break
            batch = self._plan.next_batch()
            if batch is not None:
                self._batch += 1
                return self._collate_local(*batch)
            if self._batch == 0:
                raise DataError(
                    f"training split cannot fill one batch of {self.global_batch_size} examples per iteration; "
                    "lower global_batch_size or raise epochs_per_iter"
                )
            self._iteration += 1
            self._batch = 0
            self._plan = None

    def _collate_local(self, example_indices: np.ndarray, puzzle_indices: np.ndarray) -> Batch:
        start = self.rank * self.local_batch_size
        end = start + self.local_batch_size
        return _collate(self.split, self.metadata, example_indices[start:end], puzzle_indices[start:end])


class _IterationPlan:
    """The walk over one iteration's group order, producing global (example, puzzle) index arrays batch by batch."""

    def __init__(self, sampler: GroupSampler, iteration: int) -> None:
        self.rng = np.random.Generator(np.random.Philox(sampler.seed + iteration + 1))
        num_groups = sampler.split.num_groups
        order = np.concatenate([self.rng.permutation(num_groups) for _ in range(sampler.epochs_per_iter)])
        groups = sampler._group_indices
        # One puzzle per visited group, drawn up front in walk order.
        self.puzzles = self.rng.integers(groups[order], groups[order + 1])
        starts = sampler._puzzle_indices[self.puzzles]
        self.starts = starts
        self.sizes = sampler._puzzle_indices[self.puzzles + 1] - starts
        self.cumulative = np.concatenate([[0], np.cumsum(self.sizes)])
        self.batch_size = sampler.global_batch_size
        self.position = 0

    def count_batches(self) -> int:
        """The batches next_batch would yield from the start, walking the sizes only (no subsets drawn)."""
        count, position, last = 0, 0, len(self.puzzles)
        while True:
            whole = int(np.searchsorted(self.cumulative, self.cumulative[position] + self.batch_size,
                                        side="right")) - 1
            filled = int(self.cumulative[whole] - self.cumulative[position])
            if filled < self.batch_size and whole >= last:
                return count
            count += 1
            position = whole if filled == self.batch_size else whole + 1

    def next_batch(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Fill one global batch from the current position; None once the rest cannot fill a batch (drop last)."""
        base = self.cumulative[self.position]
        # Puzzles position..whole-1 fit entirely; `filled` examples come from them.
        whole = int(np.searchsorted(self.cumulative, base + self.batch_size, side="right")) - 1
        filled = int(self.cumulative[whole] - base)
        last = len(self.puzzles)
        if filled < self.batch_size and whole >= last:
            self.position = last
            return None
        sizes = self.sizes[self.position:whole]
        offsets = np.repeat(self.starts[self.position:whole] - (self.cumulative[self.position:whole] - base), sizes)
        examples = [np.arange(filled, dtype=np.int64) + offsets]
        puzzles = [np.repeat(self.puzzles[self.position:whole], sizes)]
        self.position = whole
        if filled < self.batch_size:
            need = self.batch_size - filled
            chosen = self.rng.choice(int(self.sizes[whole]), size=need, replace=False)
            examples.append(self.starts[whole] + chosen)
            puzzles.append(np.full(need, self.puzzles[whole], dtype=np.int64))
            self.position = whole + 1
        return np.concatenate(examples), np.concatenate(puzzles)


def test_batches(
    split: PuzzleSplit, metadata: DatasetMetadata, global_batch_size: int, rank: int = 0, world_size: int = 1
) -> Iterator[Batch]:
    """Every example once, in order, in global-batch chunks; each rank gets its slice of every chunk.

    The last chunk is padded to the local batch size (inputs ``pad_id``, labels -100, identifiers
    ``blank_identifier_id``). ``num_valid`` counts the real rows of the local slice and ``example_indices`` gives
    their row numbers in the split (-1 for padding), so evaluation can ignore padding and map rows back to puzzles.
    """
    local = _local_size(global_batch_size, rank, world_size)
    puzzle_offsets = np.asarray(split.puzzle_indices, dtype=np.int64)
    for chunk_start in range(0, split.num_examples, global_batch_size):
        chunk_end = min(chunk_start + global_batch_size, split.num_examples)
        start = min(chunk_start + rank * local, chunk_end)
        end = min(start + local, chunk_end)
        examples = np.arange(start, end, dtype=np.int64)
        puzzles = np.searchsorted(puzzle_offsets, examples, side="right") - 1
        batch = _collate(split, metadata, examples, puzzles)
        num_valid = end - start
        pad = local - num_valid
        if pad:
            fill = {"inputs": metadata.pad_id, "labels": IGNORE_LABEL_ID,
                    "puzzle_identifiers": metadata.blank_identifier_id}
            batch = {
                key: np.pad(value, ((0, pad),) + ((0, 0),) * (value.ndim - 1), constant_values=fill[key])
                for key, value in batch.items()
            }
            examples = np.pad(examples, (0, pad), constant_values=-1)
        batch["example_indices"] = examples
        batch["num_valid"] = num_valid
        yield batch


test_batches.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite its name
