"""The official on-disk layout: round trips, HRM compatibility, and one-line errors for broken datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentloop.data.format import (
    DatasetMetadata,
    PuzzleSplit,
    build_split,
    find_metadata,
    read_identifiers,
    read_split,
    write_identifiers,
    write_split,
)
from latentloop.errors import DataError

OFFICIAL_KEYS = [
    "pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len", "num_puzzle_identifiers",
    "total_groups", "mean_puzzle_examples", "total_puzzles", "sets",
]


def make_split(seq_len: int = 5) -> PuzzleSplit:
    """Three groups with 2, 1 and 3 puzzles of 1-3 examples each; tokens stay below 12."""
    rng = np.random.default_rng(0)
    groups = []
    identifier = 1
    for puzzles_in_group in (2, 1, 3):
        group = []
        for _ in range(puzzles_in_group):
            rows = [(rng.integers(0, 12, seq_len), rng.integers(0, 12, seq_len))
                    for _ in range(int(rng.integers(1, 4)))]
            group.append((identifier, rows))
            identifier += 1
        groups.append(group)
    return build_split(groups, seq_len)


def make_metadata(split: PuzzleSplit) -> DatasetMetadata:
    return DatasetMetadata.for_split(split, vocab_size=12, num_puzzle_identifiers=split.num_puzzles + 1)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, PuzzleSplit, DatasetMetadata]:
    split = make_split()
    metadata = make_metadata(split)
    return write_split(tmp_path / "train", split, metadata), split, metadata


def test_build_split_csr_bookkeeping() -> None:
    split = make_split()
    assert split.num_groups == 3
    assert split.num_puzzles == 6
    assert split.group_indices.tolist() == [0, 2, 3, 6]
    assert split.puzzle_indices[-1] == split.num_examples
    assert split.puzzle_identifiers.tolist() == [1, 2, 3, 4, 5, 6]


def test_round_trip_official_names_dtypes_and_keys(written: tuple[Path, PuzzleSplit, DatasetMetadata]) -> None:
    split_dir, split, metadata = written
    names = sorted(p.name for p in split_dir.iterdir())
    assert names == sorted(
        ["dataset.json"] + [f"all__{k}.npy" for k in
                            ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")]
    )
    with open(split_dir / "dataset.json") as f:
        raw = json.load(f)
    assert list(raw) == OFFICIAL_KEYS
    loaded, loaded_meta = read_split(split_dir)
    assert loaded_meta == metadata
    assert isinstance(loaded.inputs, np.memmap) and isinstance(loaded.labels, np.memmap)
    assert not isinstance(loaded.puzzle_indices, np.memmap)
    expected_dtypes = {"inputs": np.uint8, "labels": np.uint8, "puzzle_identifiers": np.int32,
                       "puzzle_indices": np.int32, "group_indices": np.int32}
    for name, dtype in expected_dtypes.items():
        assert getattr(loaded, name).dtype == dtype
        np.testing.assert_array_equal(getattr(loaded, name), getattr(split, name))
    in_ram, _ = read_split(split_dir, mmap=False)
    assert not isinstance(in_ram.inputs, np.memmap)


def test_hrm_metadata_without_total_puzzles_loads(written: tuple[Path, PuzzleSplit, DatasetMetadata]) -> None:
    split_dir, split, _ = written
    raw = json.loads((split_dir / "dataset.json").read_text())
    del raw["total_puzzles"]
    (split_dir / "dataset.json").write_text(json.dumps(raw))
    _, metadata = read_split(split_dir)
    assert metadata.total_puzzles == split.num_puzzles


def test_official_sudoku_convention_total_puzzles_equals_groups(
    written: tuple[Path, PuzzleSplit, DatasetMetadata]
) -> None:
    split_dir, split, _ = written
    raw = json.loads((split_dir / "dataset.json").read_text())
    raw["total_puzzles"] = split.num_groups
    (split_dir / "dataset.json").write_text(json.dumps(raw))
    assert read_split(split_dir)[1].total_puzzles == split.num_groups


def test_find_metadata_prefers_train_then_test_then_the_folder_itself(tmp_path: Path) -> None:
    split = make_split()
    for name, vocab in (("train", 12), ("test", 13)):   # told apart by vocab_size
        write_split(tmp_path / "d" / name, split, DatasetMetadata.for_split(split, vocab_size=vocab,
                                                                            num_puzzle_identifiers=7))
    meta, found = find_metadata(tmp_path / "d")
    assert (meta.vocab_size, found) == (12, tmp_path / "d" / "train" / "dataset.json")
    assert find_metadata(str(tmp_path / "d" / "test"))[0].vocab_size == 13        # a split folder: itself
    (tmp_path / "d" / "train" / "dataset.json").unlink()
    assert find_metadata(tmp_path / "d")[0].vocab_size == 13                       # only a test split
    raw = json.loads((tmp_path / "d" / "test" / "dataset.json").read_text())
    del raw["total_puzzles"]                                                       # as HRM writes it
    (tmp_path / "d" / "test" / "dataset.json").write_text(json.dumps(raw))
    assert find_metadata(tmp_path / "d")[0].total_puzzles == 0
    assert find_metadata(tmp_path / "nothing") is None and find_metadata(tmp_path / "d" / "train") is None
    (tmp_path / "d" / "test" / "dataset.json").write_text("{vocab_size: 6")
    with pytest.raises(DataError, match="test/dataset.json: unreadable JSON"):
        find_metadata(tmp_path / "d")


def test_metadata_from_json_errors() -> None:
    good = DatasetMetadata(vocab_size=11, seq_len=81, num_puzzle_identifiers=1, total_groups=3,
                           mean_puzzle_examples=1, total_puzzles=3).to_json()
    assert DatasetMetadata.from_json(good).to_json() == good
    assert DatasetMetadata.from_json({**good, "ignore_label_id": None}).ignore_label_id is None
    missing = {k: v for k, v in good.items() if k != "seq_len"}
    with pytest.raises(DataError, match="missing key 'seq_len'"):
        DatasetMetadata.from_json(missing)
    with pytest.raises(DataError, match="'vocab_size' must be an integer"):
        DatasetMetadata.from_json({**good, "vocab_size": "11"})
    with pytest.raises(DataError, match="'sets'"):
        DatasetMetadata.from_json({**good, "sets": []})


@pytest.mark.parametrize("mmap", [True, False])
def test_truncated_npy_names_the_file(written: tuple[Path, PuzzleSplit, DatasetMetadata], mmap: bool) -> None:
    split_dir, _, _ = written
    path = split_dir / "all__inputs.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])
    with pytest.raises(DataError, match=r"all__inputs\.npy: unreadable or truncated"):
        read_split(split_dir, mmap=mmap)


@pytest.mark.parametrize("content", [b"", b"not a numpy file at all", b"\x93NUMPY\x01\x00garbage"])
def test_garbage_npy_names_the_file(written: tuple[Path, PuzzleSplit, DatasetMetadata], content: bytes) -> None:
    split_dir, _, _ = written
    (split_dir / "all__group_indices.npy").write_bytes(content)
    with pytest.raises(DataError, match=r"all__group_indices\.npy"):
        read_split(split_dir)


def test_missing_folder_file_and_json(written: tuple[Path, PuzzleSplit, DatasetMetadata], tmp_path: Path) -> None:
    split_dir, _, _ = written
    with pytest.raises(DataError, match="split folder not found"):
        read_split(tmp_path / "nowhere")
    (split_dir / "all__labels.npy").unlink()
    with pytest.raises(DataError, match=r"all__labels\.npy: file not found"):
        read_split(split_dir)
    (split_dir / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"dataset\.json: unreadable JSON"):
        read_split(split_dir)
    (split_dir / "dataset.json").unlink()
    with pytest.raises(DataError, match=r"dataset\.json: file not found"):
        read_split(split_dir)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seq_len", 6, "seq_len is 6 but the arrays have 5"),
        ("total_puzzles", 5, "total_puzzles is 5"),
        ("total_groups", 4, "total_groups is 4"),
        ("vocab_size", 5, "vocab_size is 5 but inputs contain token 11"),
        ("num_puzzle_identifiers", 3, "num_puzzle_identifiers is 3"),
    ],
)
def test_disagreeing_metadata(
    written: tuple[Path, PuzzleSplit, DatasetMetadata], key: str, value: int, message: str
) -> None:
    split_dir, _, _ = written
    raw = json.loads((split_dir / "dataset.json").read_text())
    raw[key] = value
    (split_dir / "dataset.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=message) as info:
        read_split(split_dir)
    assert "dataset.json" in str(info.value) and "\n" not in str(info.value)


def test_disagreeing_arrays(written: tuple[Path, PuzzleSplit, DatasetMetadata]) -> None:
    split_dir, split, _ = written
    labels = np.asarray(split.labels)[:-1]
    np.save(split_dir / "all__labels.npy", labels)
    with pytest.raises(DataError, match="labels shape"):
        read_split(split_dir)


def test_validate_rejects_bad_csr() -> None:
    split = make_split()
    split.group_indices = np.array([0, 3, 2, 6], dtype=np.int32)
    with pytest.raises(DataError, match="group_indices decreases at position 2"):
        split.validate()
    split = make_split()
    split.puzzle_indices = split.puzzle_indices.copy()
    split.puzzle_indices[-1] += 1
    with pytest.raises(DataError, match="puzzle_indices ends at"):
        split.validate()
    split = make_split()
    split.puzzle_identifiers = split.puzzle_identifiers[:-1]
    with pytest.raises(DataError, match="puzzle_indices has 7 offsets"):
        split.validate()


def test_build_split_rejects_wrong_row_length() -> None:
    with pytest.raises(DataError, match="input row has 4 tokens; seq_len is 5"):
        build_split([[(0, [(np.zeros(4), np.zeros(5))])]], 5)


def test_wide_vocabulary_is_written_as_uint16(tmp_path: Path) -> None:
    split = build_split([[(0, [(np.full(3, 300), np.full(3, 299))])]], 3)
    metadata = DatasetMetadata.for_split(split, vocab_size=301, num_puzzle_identifiers=1)
    loaded, _ = read_split(write_split(tmp_path / "s", split, metadata))
    assert loaded.inputs.dtype == np.uint16 and int(loaded.inputs[0, 0]) == 300


def test_identifiers_round_trip_and_errors(tmp_path: Path) -> None:
    write_identifiers(tmp_path, ["<blank>", "a", "b"])
    assert read_identifiers(tmp_path) == ["<blank>", "a", "b"]
    with pytest.raises(DataError, match="identifier 0"):
        write_identifiers(tmp_path, ["a"])
    (tmp_path / "identifiers.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="expected a JSON list"):
        read_identifiers(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        read_identifiers(tmp_path / "missing")
