"""Group sampler (the official `puzzle_dataset.py`): seeded, whole-puzzle batches, drop-last, rank slices, exact
resume; padded test batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentloop.data import sampler as sampler_module
from latentloop.data.format import DatasetMetadata, PuzzleSplit
from latentloop.data.sampler import IGNORE_LABEL_ID, GroupSampler, total_train_steps
from latentloop.errors import ConfigError, DataError

SEQ_LEN = 4


def make_split(
    puzzles_per_group: list[int], examples_per_puzzle: list[int]
) -> tuple[PuzzleSplit, DatasetMetadata]:
    """Every example's row number is readable from its tokens (base 200 in columns 0-1), so batches can be traced;
    labels hold a 0 (the ignore id) in column 3; puzzle p has identifier p + 1."""
    total = int(np.sum(examples_per_puzzle))
    rows = np.arange(total)
    inputs = np.zeros((total, SEQ_LEN), dtype=np.uint8)
    inputs[:, 0] = rows % 200
    inputs[:, 1] = rows // 200
    labels = inputs.copy()
    labels[:, 2] = 7
    split = PuzzleSplit.from_counts(
        inputs=inputs,
        labels=labels,
        puzzle_identifiers=np.arange(1, len(examples_per_puzzle) + 1),
        examples_per_puzzle=examples_per_puzzle,
        puzzles_per_group=puzzles_per_group,
    )
    metadata = DatasetMetadata.for_split(split, vocab_size=256, num_puzzle_identifiers=len(examples_per_puzzle) + 1)
    return split, metadata


@pytest.fixture
def irregular() -> tuple[PuzzleSplit, DatasetMetadata]:
    """40 groups of 1-3 puzzles with 1-5 examples each."""
    rng = np.random.default_rng(3)
    groups = rng.integers(1, 4, 40).tolist()
    return make_split(groups, rng.integers(1, 6, int(np.sum(groups))).tolist())


def rows_of(batch: dict) -> np.ndarray:
    return batch["inputs"][:, 0] + 200 * batch["inputs"][:, 1]


def take(sampler: GroupSampler, n: int) -> list[dict]:
    return list(itertools.islice(sampler, n))


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in ("inputs", "labels", "puzzle_identifiers"):
            np.testing.assert_array_equal(x[key], y[key])


def test_batch_format(irregular: tuple[PuzzleSplit, DatasetMetadata]) -> None:
    split, metadata = irregular
    batch = next(GroupSampler(split, metadata, global_batch_size=16, seed=0))
    assert set(batch) == {"inputs", "labels", "puzzle_identifiers"}
    assert batch["inputs"].shape == (16, SEQ_LEN) and batch["inputs"].dtype == np.int64
    assert batch["labels"].dtype == np.int64 and batch["puzzle_identifiers"].shape == (16,)
    assert np.all(batch["labels"][:, 3] == IGNORE_LABEL_ID) and np.all(batch["labels"][:, 2] == 7)
    # Each row carries its own puzzle's identifier.
    puzzles = np.searchsorted(split.puzzle_indices, rows_of(batch), side="right") - 1
    np.testing.assert_array_equal(batch["puzzle_identifiers"], puzzles + 1)


def test_ignore_label_none_keeps_labels(irregular: tuple[PuzzleSplit, DatasetMetadata]) -> None:
    split, metadata = irregular
    metadata.ignore_label_id = None
    batch = next(GroupSampler(split, metadata, global_batch_size=8, seed=0))
    assert not np.any(batch["labels"] == IGNORE_LABEL_ID)


def test_same_seed_same_batches_different_seed_different(irregular: tuple[PuzzleSplit, DatasetMetadata]) -> None:
    split, metadata = irregular
    a = take(GroupSampler(split, metadata, 12, seed=5), 20)
    assert_same(a, take(GroupSampler(split, metadata, 12, seed=5), 20))
    b = take(GroupSampler(split, metadata, 12, seed=6), 20)
    assert any(not np.array_equal(x["inputs"], y["inputs"]) for x, y in zip(a, b, strict=True))


def test_whole_puzzles_and_one_visit_per_group(irregular: tuple[PuzzleSplit, DatasetMetadata]) -> None:
    split, metadata = irregular
    sampler = GroupSampler(split, metadata, global_batch_size=10, seed=1)
    groups_seen: list[int] = []
    while True:
        batch = next(sampler)
        if sampler.iteration > 0:
            break
        rows = rows_of(batch)
        puzzles = np.searchsorted(split.puzzle_indices, rows, side="right") - 1
        # Rows of one puzzle are contiguous, and every puzzle but the last one is complete.
        starts = np.flatnonzero(np.r_[True, puzzles[1:] != puzzles[:-1]])
        assert len(set(puzzles.tolist())) == len(starts)
        for k, start in enumerate(starts):
            p = puzzles[start]
            size = split.puzzle_indices[p + 1] - split.puzzle_indices[p]
            count = int(np.sum(puzzles == p))
            assert count == size or (k == len(starts) - 1 and count < size)
            assert len(set(rows[puzzles == p].tolist())) == count
        groups_seen += (np.searchsorted(split.group_indices, puzzles[starts], side="right") - 1).tolist()
    # epochs_per_iter=1: each group is visited at most once per iteration (the dropped tail holds the rest).
    assert len(groups_seen) == len(set(groups_seen))


def test_drop_last_and_epochs_per_iter() -> None:
    split, metadata = make_split([1] * 10, [1] * 10)
    sampler = GroupSampler(split, metadata, global_batch_size=4, seed=0)
    take(sampler, 2)
    assert (sampler.iteration, sampler.batch_in_iteration) == (0, 2)
    take(sampler, 1)  # 10 examples make 2 full batches; the remaining 2 are dropped.
    assert (sampler.iteration, sampler.batch_in_iteration) == (1, 1)
    sampler = GroupSampler(split, metadata, global_batch_size=4, seed=0, epochs_per_iter=3)
    batches = take(sampler, 7)
    assert sampler.iteration == 0 and sampler.batch_in_iteration == 7
    assert sampler.batches_per_iteration == 7
    # Three passes: each example appears at most 3 times in the iteration.
    counts = np.bincount(np.concatenate([rows_of(b) for b in batches]), minlength=10)
    assert counts.max() <= 3
    next(sampler)
    assert sampler.iteration == 1 and sampler.epoch == 3


def test_rank_slices_concatenate_to_global_batch(irregular: tuple[PuzzleSplit, DatasetMetadata]) -> None:
    split, metadata = irregular
    whole = take(GroupSampler(split, metadata, 12, seed=2), 15)
    parts = [take(GroupSampler(split, metadata, 12, seed=2, rank=r, world_size=2), 15) for r in range(2)]
    for w, p0, p1 in zip(whole, *parts, strict=True):
        assert p0["inputs"].shape[0] == 6
        for key in ("inputs", "labels", "puzzle_identifiers"):
            np.testing.assert_array_equal(w[key], np.concatenate([p0[key], p1[key]]))


@pytest.mark.parametrize("consumed", [0, 3, 9, 14])
def test_state_dict_resume_gives_identical_batches(
    irregular: tuple[PuzzleSplit, DatasetMetadata], consumed: int
) -> None:
    split, metadata = irregular
    original = GroupSampler(split, metadata, 16, seed=9)
    take(original, consumed)
    state = original.state_dict()
    expected = take(original, 12)  # crosses at least one iteration boundary
    resumed = GroupSampler(split, metadata, 16, seed=9)
    resumed.load_state_dict(state)
    assert_same(expected, take(resumed, 12))
    # A resumed run may use a different world size: the global batch is unchanged.
    half = GroupSampler(split, metadata, 16, seed=9, rank=1, world_size=2)
    half.load_state_dict(state)
    np.testing.assert_array_equal(next(half)["inputs"], expected[0]["inputs"][8:])


def test_state_dict_mismatch_and_bad_settings(irregular: tuple[PuzzleSplit, DatasetMetadata]) -> None:
    split, metadata = irregular
    state = GroupSampler(split, metadata, 16, seed=9).state_dict()
    with pytest.raises(ConfigError, match="seed=9"):
        GroupSampler(split, metadata, 16, seed=10).load_state_dict(state)
    with pytest.raises(ConfigError, match="not divisible"):
        GroupSampler(split, metadata, 15, seed=0, world_size=2)
    with pytest.raises(ConfigError, match="rank 2"):
        GroupSampler(split, metadata, 16, seed=0, rank=2, world_size=2)
    with pytest.raises(DataError, match="cannot fill one batch"):
        next(GroupSampler(split, metadata, 10_000, seed=0))


def test_total_train_steps_formula() -> None:
    _, metadata = make_split([2, 2, 2], [1] * 6)
    assert metadata.mean_puzzle_examples == 1.0
    assert total_train_steps(metadata, epochs=100, global_batch_size=7) == int(100 * 3 * 1.0 / 7)


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_test_batches_cover_everything_once_with_padding(
    irregular: tuple[PuzzleSplit, DatasetMetadata], world_size: int
) -> None:
    split, metadata = irregular
    seen = []
    for rank in range(world_size):
        batches = list(sampler_module.test_batches(split, metadata, 16, rank=rank, world_size=world_size))
        assert len(batches) == -(-split.num_examples // 16)
        for batch in batches:
            local = 16 // world_size
            assert batch["inputs"].shape == (local, SEQ_LEN)
            valid = batch["num_valid"]
            rows = batch["example_indices"][:valid]
            np.testing.assert_array_equal(rows_of(batch)[:valid], rows)
            puzzles = np.searchsorted(split.puzzle_indices, rows, side="right") - 1
            np.testing.assert_array_equal(batch["puzzle_identifiers"][:valid], puzzles + 1)
            assert np.all(batch["inputs"][valid:] == metadata.pad_id)
            assert np.all(batch["labels"][valid:] == IGNORE_LABEL_ID)
            assert np.all(batch["puzzle_identifiers"][valid:] == metadata.blank_identifier_id)
            assert np.all(batch["example_indices"][valid:] == -1)
            seen.append(rows)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(split.num_examples))


@pytest.mark.parametrize("batch_size, epochs_per_iter", [(4, 1), (5, 3), (7, 2)])
def test_iteration_length_counts_the_batches_each_iteration_yields(irregular, batch_size, epochs_per_iter) -> None:
    split, metadata = irregular
    sampler = GroupSampler(split, metadata, global_batch_size=batch_size, seed=3, epochs_per_iter=epochs_per_iter)
    yielded = [0] * 4
    while sampler.iteration < 4:
        next(sampler)                       # the iteration property now names the batch's own iteration
        if sampler.iteration < 4:
            yielded[sampler.iteration] += 1
    assert [sampler.iteration_length(i) for i in range(4)] == yielded
