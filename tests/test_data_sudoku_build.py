"""Sudoku CSV reading and dataset builders (official layout)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from latentloop.data.format import read_identifiers, read_split
from latentloop.data.puzzle_csv import CSV_COLUMNS
from latentloop.data.sudoku_build import build_from_csv, build_generated, read_csv
from latentloop.data.sudoku_generator import generate_puzzles
from latentloop.data.sudoku_grid import SudokuShape, from_tokens, to_string
from latentloop.data.sudoku_solver import is_valid_solution, solve
from latentloop.errors import DataError


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUDOKU_CSV = DATA / "sudoku" / "csv"
needs_data = pytest.mark.skipif(not SUDOKU_CSV.is_dir(), reason=f"shared data not found at {SUDOKU_CSV}")


def head_csv(path: Path, n: int, out: Path) -> Path:
    """Copy the header and the first ``n`` rows, so tests read a few hundred puzzles, not the whole file."""
    with open(path) as src, open(out, "w") as dst:
        for i, line in enumerate(src):
            if i > n:
                break
            dst.write(line)
    return out


def write_rows(path: Path, rows: list[list[str]], header: tuple[str, ...] = CSV_COLUMNS) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@needs_data
@pytest.mark.parametrize(
    ("name", "rows"),
    [("puzzles2_17_clue.csv", 200), ("puzzles3_magictour_top1465.csv", 100), ("puzzles6_forum_hardest_1106.csv", 25)],
)
def test_solver_solves_csv_puzzles(tmp_path: Path, name: str, rows: int) -> None:
    questions, answers, ratings, sources = read_csv(head_csv(SUDOKU_CSV / name, rows, tmp_path / name))
    assert questions.shape == (rows, 9, 9) and len(sources) == rows and ratings.dtype == np.int64
    for question, answer in zip(questions, answers, strict=True):
        result = solve(question)
        assert len(result.solutions) == 1
        np.testing.assert_array_equal(result.solutions[0], answer)


def test_read_csv_errors(tmp_path: Path) -> None:
    puzzle, solution, _ = generate_puzzles(SudokuShape(3, 3), 1, seed=11, workers=1)[0]
    q, a = to_string(puzzle), to_string(solution)
    with pytest.raises(DataError, match="file not found"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r":1: header .* lacks column\(s\) rating"):
        read_csv(write_rows(tmp_path / "h.csv", [["s", q, a]], header=("source", "question", "answer")))
    with pytest.raises(DataError, match=r"bad.csv:3: question has 80 cells; a 9x9 Sudoku needs 81"):
        read_csv(write_rows(tmp_path / "bad.csv", [["s", q, a, "1"], ["s", q[:-1], a, "1"]]))
    with pytest.raises(DataError, match=r":2: question has an invalid character 'x'"):
        read_csv(write_rows(tmp_path / "c.csv", [["s", "x" + q[1:], a, "1"]]))
    with pytest.raises(DataError, match=r":2: rating 'hard' is not a number"):
        read_csv(write_rows(tmp_path / "r.csv", [["s", q, a, "hard"]]))
    with pytest.raises(DataError, match=r":2: expected 4 columns, got 3"):
        read_csv(write_rows(tmp_path / "n.csv", [["s", q, a]]))
    wrong = solution.copy()
    wrong[0, [0, 1]] = wrong[0, [1, 0]]
    with pytest.raises(DataError, match=r":2: answer (changes a given|breaks a row)"):
        read_csv(write_rows(tmp_path / "w.csv", [["s", q, to_string(wrong), "1"]]))


def small_csv(path: Path, items: list) -> Path:
    return write_rows(path, [["gen", to_string(p), to_string(s), str(r)] for p, s, r in items])


def test_build_from_csv_official_layout(tmp_path: Path) -> None:
    items = generate_puzzles(SudokuShape(3, 3), 10, seed=1, workers=1)
    train_csv = small_csv(tmp_path / "train.csv", items)
    summary = build_from_csv(train_csv, tmp_path / "out", test_fraction=0.2, subsample_size=6, num_aug=3, seed=0)
    assert (summary.train_groups, summary.train_puzzles, summary.test_puzzles) == (6, 24, 2)
    assert "24 examples" in str(summary)
    train, meta = read_split(tmp_path / "out" / "train")
    test, _ = read_split(tmp_path / "out" / "test")
    assert (meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers, meta.ignore_label_id) == (11, 81, 1, 0)
    assert meta.total_groups == 6 and meta.mean_puzzle_examples == 1.0
    assert train.group_indices.tolist() == [0, 4, 8, 12, 16, 20, 24]
    assert train.puzzle_indices.tolist() == list(range(25)) and not train.puzzle_identifiers.any()
    assert read_identifiers(tmp_path / "out") == ["<blank>"]
    shape = SudokuShape(3, 3)
    puzzles = from_tokens(np.asarray(train.inputs), shape)
    solutions = from_tokens(np.asarray(train.labels), shape)
    assert np.asarray(train.labels).min() >= 2  # every cell supervised, givens included
    originals = {to_string(p) for p, _, _ in items}
    for k in range(24):
        assert is_valid_solution(solutions[k], puzzles[k], shape)
        assert (k % 4 == 0) == (to_string(puzzles[k]) in originals)  # variant 0 of each group is the original
    test_puzzles = from_tokens(np.asarray(test.inputs), shape)
    assert {to_string(p) for p in test_puzzles} <= originals  # test is not augmented
    assert not {to_string(p) for p in test_puzzles} & {to_string(p) for p in puzzles[::4]}
    # Same seed, same dataset.
    build_from_csv(train_csv, tmp_path / "again", test_fraction=0.2, subsample_size=6, num_aug=3, seed=0)
    np.testing.assert_array_equal(read_split(tmp_path / "again" / "train")[0].inputs, train.inputs)


def test_build_from_csv_with_test_file_and_rating_filter(tmp_path: Path) -> None:
    items = generate_puzzles(SudokuShape(2, 3), 12, seed=8, workers=1)
    items = [(p, s, i % 3) for i, (p, s, _) in enumerate(items)]  # ratings 0, 1, 2, ...
    summary = build_from_csv(
        small_csv(tmp_path / "train.csv", items[:9]), tmp_path / "out",
        test_csv=small_csv(tmp_path / "test.csv", items[9:]), min_rating=1,
    )
    assert (summary.train_groups, summary.test_puzzles) == (6, 2)
    _, meta = read_split(tmp_path / "out" / "train")
    assert (meta.vocab_size, meta.seq_len) == (8, 36)


@needs_data
def test_build_from_real_csv(tmp_path: Path) -> None:
    path = head_csv(SUDOKU_CSV / "puzzles3_magictour_top1465.csv", 50, tmp_path / "magic.csv")
    summary = build_from_csv(path, tmp_path / "out", test_fraction=0.1, num_aug=1, min_rating=10, seed=3)
    assert summary.train_groups > 0 and summary.train_puzzles == 2 * summary.train_groups


def test_build_generated_disjoint_splits(tmp_path: Path) -> None:
    shape = SudokuShape(2, 3)
    summary = build_generated(tmp_path / "gen", shape, num_train=30, num_test=10, seed=0, num_aug=2, workers=1)
    assert (summary.train_groups, summary.train_puzzles, summary.test_puzzles) == (30, 90, 10)
    train, meta = read_split(tmp_path / "gen" / "train")
    test, _ = read_split(tmp_path / "gen" / "test")
    assert meta.vocab_size == 8
    train_originals = {bytes(row) for row in np.asarray(train.inputs)[::3]}
    test_rows = {bytes(row) for row in np.asarray(test.inputs)}
    assert len(train_originals) == 30 and len(test_rows) == 10 and not train_originals & test_rows
    # A bigger train set keeps the test set.
    build_generated(tmp_path / "more", shape, num_train=35, num_test=10, seed=0, workers=1)
    np.testing.assert_array_equal(read_split(tmp_path / "more" / "test")[0].inputs, test.inputs)


def test_build_generated_4x4_dedupes(tmp_path: Path) -> None:
    summary = build_generated(tmp_path / "g4", SudokuShape(2, 2), num_train=150, num_test=50, seed=0, workers=1)
    train, _ = read_split(tmp_path / "g4" / "train")
    test, _ = read_split(tmp_path / "g4" / "test")
    rows = [bytes(r) for r in np.concatenate([np.asarray(train.inputs), np.asarray(test.inputs)])]
    assert summary.train_groups == 150 and len(set(rows)) == 200
