"""Sudoku: parsing, exact solver, minimal-puzzle generator, augmentation, CSV reading and dataset builders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from latentloop.data.format import read_identifiers, read_split
from latentloop.data.puzzle_csv import CSV_COLUMNS
from latentloop.data.sudoku import (
    SudokuShape,
    augment,
    build_from_csv,
    build_generated,
    count_solutions,
    format_grid,
    from_tokens,
    generate_puzzles,
    is_valid_solution,
    parse_puzzle,
    rating,
    read_csv,
    shape_for_size,
    solve,
    to_string,
    to_tokens,
)
from latentloop.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUDOKU_CSV = DATA / "sudoku" / "csv"
needs_data = pytest.mark.skipif(not SUDOKU_CSV.is_dir(), reason=f"shared data not found at {SUDOKU_CSV}")

EASY = "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"
SHAPES = [SudokuShape(2, 2), SudokuShape(2, 3), SudokuShape(3, 3)]


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


@pytest.fixture(scope="module")
def generated_9x9() -> list:
    return generate_puzzles(SudokuShape(3, 3), 4, seed=11, workers=1)


# ---------------------------------------------------------------------------------------------------------------
# Shapes, parsing and encoding


def test_shapes_and_vocabulary() -> None:
    assert shape_for_size(4) == SudokuShape(2, 2)
    assert shape_for_size(6) == SudokuShape(2, 3)
    assert shape_for_size(9) == SudokuShape(3, 3)
    assert shape_for_size(12) == SudokuShape(3, 4)
    assert shape_for_size(6, box=(3, 2)) == SudokuShape(3, 2)
    assert (SudokuShape(3, 3).vocab_size, SudokuShape(3, 3).seq_len) == (11, 81)
    assert (SudokuShape(2, 3).vocab_size, SudokuShape(2, 3).seq_len) == (8, 36)
    with pytest.raises(DataError, match="size 7"):
        shape_for_size(7)
    with pytest.raises(DataError, match="not 6x6"):
        shape_for_size(6, box=(2, 2))


def test_parse_formats_and_round_trips() -> None:
    grid = parse_puzzle(EASY)
    assert grid.shape == (9, 9) and grid.dtype == np.int8 and grid[0, 0] == 4 and grid[0, 1] == 0
    assert to_string(grid) == EASY
    np.testing.assert_array_equal(parse_puzzle(format_grid(grid)), grid)
    multiline = "\n".join(" ".join(EASY[r * 9:(r + 1) * 9]).replace(".", "_") for r in range(9))
    np.testing.assert_array_equal(parse_puzzle(multiline), grid)
    np.testing.assert_array_equal(parse_puzzle(EASY.replace(".", "0")), grid)
    assert parse_puzzle("12..\n34..\n....\n....").shape == (4, 4)
    assert parse_puzzle("." * 36).shape == (6, 6)
    tokens = to_tokens(grid)
    assert tokens.dtype == np.uint8 and tokens.shape == (81,)
    assert tokens[0] == 5 and tokens[1] == 1 and tokens.max() <= 10
    np.testing.assert_array_equal(from_tokens(tokens, SudokuShape(3, 3)), grid)


@pytest.mark.parametrize(
    ("text", "shape", "message"),
    [
        (EASY[:-1], SudokuShape(3, 3), "puzzle has 80 cells; a 9x9 Sudoku needs 81"),
        (EASY[:-1], None, "puzzle has 80 cells; expected a square board"),
        (EASY[:-1] + "x", None, "invalid character 'x' at row 9, column 9"),
        ("7" + "." * 35, None, "digit 7 at row 1, column 1; a 6x6 Sudoku uses 1-6"),
        ("55" + EASY[2:], None, "givens conflict: digit 5 appears twice in row 1"),
        ("1..." + "1..." + "." * 8, None, "digit 1 appears twice in column 1"),
    ],
)
def test_parse_errors(text: str, shape: SudokuShape | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_puzzle(text, shape)


# ---------------------------------------------------------------------------------------------------------------
# Solver


def test_solver_counts_known_totals() -> None:
    assert count_solutions(np.zeros((4, 4), dtype=np.int8), limit=1000) == 288  # all 4x4 Sudoku grids
    grid = parse_puzzle(EASY)
    result = solve(grid)
    assert len(result.solutions) == 1 and is_valid_solution(result.solutions[0], grid)
    bad = grid.copy()
    bad[0, 1] = bad[0, 0]
    assert count_solutions(bad) == 0
    assert count_solutions(np.zeros((9, 9), dtype=np.int8)) == 2


def test_rating_is_deterministic_and_counts_guesses() -> None:
    grid = parse_puzzle(EASY)
    assert rating(grid) == rating(grid.copy())
    assert rating(solve(grid).solutions[0]) == 0
    assert solve(grid, limit=1).guesses == rating(grid)
    with pytest.raises(DataError, match="without a solution"):
        rating(np.array([[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]))


def test_is_valid_solution_checks_rules_and_givens(generated_9x9: list) -> None:
    puzzle, solution, _ = generated_9x9[0]
    assert is_valid_solution(solution, puzzle)
    swapped = solution.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]
    assert not is_valid_solution(swapped, puzzle)
    other_givens = puzzle.copy()
    cell = np.argwhere(puzzle > 0)[0]
    other_givens[tuple(cell)] = solution[tuple(cell)] % 9 + 1
    assert not is_valid_solution(solution, other_givens)
    assert not is_valid_solution(np.where(puzzle > 0, solution, 0), puzzle)


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


# ---------------------------------------------------------------------------------------------------------------
# Generator


def assert_unique_and_minimal(puzzle: np.ndarray, solution: np.ndarray, shape: SudokuShape) -> None:
    assert is_valid_solution(solution, puzzle, shape)
    result = solve(puzzle, shape)
    assert len(result.solutions) == 1
    np.testing.assert_array_equal(result.solutions[0], solution)
    for r, c in np.argwhere(puzzle > 0):
        fewer = puzzle.copy()
        fewer[r, c] = 0
        assert count_solutions(fewer, shape) == 2, "a given could be removed: puzzle is not minimal"


@pytest.mark.parametrize(("shape", "count"), [(SudokuShape(2, 2), 10), (SudokuShape(2, 3), 10), (SudokuShape(3, 2), 5)])
def test_generated_small_puzzles_are_unique_and_minimal(shape: SudokuShape, count: int) -> None:
    puzzles = generate_puzzles(shape, count, seed=3, workers=1)
    assert len(puzzles) == count
    for puzzle, solution, guesses in puzzles:
        assert puzzle.shape == (shape.size, shape.size) and puzzle.dtype == np.int8
        assert guesses == rating(puzzle, shape)
        assert_unique_and_minimal(puzzle, solution, shape)


def test_generated_9x9_puzzles_are_unique_and_minimal(generated_9x9: list) -> None:
    for puzzle, solution, _ in generated_9x9:
        assert 17 <= int((puzzle > 0).sum()) <= 40
        assert_unique_and_minimal(puzzle, solution, SudokuShape(3, 3))


def test_generation_is_deterministic_for_any_worker_count() -> None:
    shape = SudokuShape(2, 3)
    one = generate_puzzles(shape, 12, seed=4, workers=1)
    two = generate_puzzles(shape, 12, seed=4, workers=2)
    tail = generate_puzzles(shape, 4, seed=4, workers=1, start=8)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.puzzle, b.puzzle)
        assert a.rating == b.rating
    for a, b in zip(one[8:], tail, strict=True):
        np.testing.assert_array_equal(a.puzzle, b.puzzle)
    other = generate_puzzles(shape, 12, seed=5, workers=1)
    assert any(not np.array_equal(a.puzzle, b.puzzle) for a, b in zip(one, other, strict=True))


def test_min_rating_is_respected() -> None:
    for item in generate_puzzles(SudokuShape(3, 3), 2, seed=0, min_rating=6, workers=1):
        assert item.rating >= 6 and rating(item.puzzle) == item.rating


# ---------------------------------------------------------------------------------------------------------------
# Augmentation


@pytest.mark.parametrize("shape", [*SHAPES, SudokuShape(3, 2), SudokuShape(2, 4)])
def test_augmentation_preserves_validity_and_uniqueness(shape: SudokuShape) -> None:
    rng = np.random.default_rng(0)
    puzzle, solution, _ = generate_puzzles(shape, 1, seed=2, workers=1)[0]
    changed = 0
    for _ in range(8):
        new_puzzle, new_solution = augment(puzzle, solution, shape, rng)
        assert is_valid_solution(new_solution, new_puzzle, shape)
        result = solve(new_puzzle, shape)
        assert len(result.solutions) == 1
        np.testing.assert_array_equal(result.solutions[0], new_solution)
        assert (new_puzzle > 0).sum() == (puzzle > 0).sum()
        changed += not np.array_equal(new_puzzle, puzzle)
    assert changed >= 7


def test_augmentation_is_seeded_and_transposes_only_square_boxes() -> None:
    shape = SudokuShape(3, 3)
    puzzle, solution, _ = generate_puzzles(shape, 1, seed=2, workers=1)[0]
    a = augment(puzzle, solution, shape, np.random.default_rng(7))
    b = augment(puzzle, solution, shape, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # A tracer whose value is the source row: after a map, constant rows mean "not transposed", constant columns
    # mean "transposed". 9x9 must show both; 6x6 with 2x3 boxes must never transpose.
    rng = np.random.default_rng(1)
    for shape, expect_transposed in ((SudokuShape(3, 3), True), (SudokuShape(2, 3), False)):
        tracer = np.repeat(np.arange(1, shape.size + 1, dtype=np.int8)[:, None], shape.size, axis=1)
        transposed = 0
        for _ in range(40):
            moved, _ = augment(tracer, tracer, shape, rng)
            rows_constant = bool(np.all(moved == moved[:, :1]))
            assert rows_constant != bool(np.all(moved == moved[:1, :]))
            transposed += not rows_constant
        assert (transposed > 0) == expect_transposed


# ---------------------------------------------------------------------------------------------------------------
# CSV reading


def test_read_csv_errors(tmp_path: Path, generated_9x9: list) -> None:
    puzzle, solution, _ = generated_9x9[0]
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


# ---------------------------------------------------------------------------------------------------------------
# Builders


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
