"""Sudoku boards: shapes, parsing, text and token conversion."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.data.sudoku_grid import (
    SudokuShape,
    format_grid,
    from_tokens,
    parse_puzzle,
    shape_for_size,
    to_string,
    to_tokens,
)
from latentloop.errors import DataError


EASY = "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"


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
