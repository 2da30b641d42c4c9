"""Shared fixtures: tiny datasets written in the official layout, generated here (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentloop.data.format import DatasetMetadata, PuzzleSplit, write_split

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_toy_dataset(root: Path, num_train: int = 256, num_test: int = 64, seq_len: int = 8, vocab: int = 6,
                      seed: int = 0) -> Path:
    """A learnable toy task: the label of each cell is (input + 1) mod 4 shifted into the token range."""
    rng = np.random.default_rng(seed)
    for name, count in (("train", num_train), ("test", num_test)):
        inputs = rng.integers(2, vocab, size=(count, seq_len), dtype=np.uint8)
        labels = ((inputs - 2 + 1) % (vocab - 2) + 2).astype(np.uint8)
        split = PuzzleSplit.from_counts(inputs=inputs, labels=labels, puzzle_identifiers=[0] * count,
                                        examples_per_puzzle=[1] * count, puzzles_per_group=[1] * count)
        write_split(root / name, split, DatasetMetadata.for_split(split, vocab_size=vocab, num_puzzle_identifiers=1))
    return root


@pytest.fixture
def toy_dataset(tmp_path: Path) -> Path:
    return write_toy_dataset(tmp_path / "toy")
