"""ARC canvas encoding, crop and augmentation variants: every transform composed with its inverse is the identity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentloop.data import arc_grid
from latentloop.data.arc_grid import IDENTITY, Variant, check_grid, crop, encode_grid, parse_name
from latentloop.data.grids import NUM_DIHEDRAL, dihedral, inverse_dihedral
from latentloop.errors import DataError


def _grid(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=(rows, cols), dtype=np.uint8)


def test_dihedral_numbering_matches_the_official_builders():
    g = np.arange(6).reshape(2, 3)
    expected = [g, np.rot90(g, 1), np.rot90(g, 2), np.rot90(g, 3), np.fliplr(g), np.flipud(g), g.T,
                np.fliplr(np.rot90(g, 1))]
    for t in range(NUM_DIHEDRAL):
        np.testing.assert_array_equal(dihedral(g, t), expected[t])
        np.testing.assert_array_equal(inverse_dihedral(dihedral(g, t), t), g)


def test_every_variant_composed_with_its_inverse_is_the_identity_with_translation():
    rng = np.random.default_rng(0)
    grid = _grid(4, 7)
    for t in range(NUM_DIHEDRAL):
        for _ in range(20):
            variant = Variant(t, Variant.random(rng).colours)
            moved = variant.apply(grid)
            assert moved.shape == (grid.shape[::-1] if t in (1, 3, 6, 7) else grid.shape)
            # through the canvas at a random offset and back
            r_max, c_max = arc_grid.max_offset(moved)
            offset = (int(rng.integers(r_max + 1)), int(rng.integers(c_max + 1)))
            tokens = encode_grid(moved, offset)
            shifted = tokens.reshape(30, 30)[offset[0]:, offset[1]:]
            back = variant.invert(crop(np.pad(shifted, ((0, offset[0]), (0, offset[1])))))
            np.testing.assert_array_equal(back, grid)
            task, parsed = parse_name(variant.name("abc123"))
            assert (task, parsed) == ("abc123", variant)


def test_black_stays_black_and_colours_are_permuted():
    variant = Variant.random(np.random.default_rng(1))
    grid = np.arange(10, dtype=np.uint8).reshape(2, 5)
    moved = variant.apply(grid)
    assert variant.colours[0] == 0 and moved[0, 0] == 0
    assert sorted(moved.ravel().tolist()) == list(range(10))


def test_encoding_places_eos_border_and_pads_the_rest():
    grid = _grid(3, 2)
    canvas = encode_grid(grid, (1, 4)).reshape(30, 30)
    np.testing.assert_array_equal(canvas[1:4, 4:6], grid + 2)
    assert (canvas[4, 4:6] == arc_grid.EOS).all() and (canvas[1:4, 6] == arc_grid.EOS).all()
    assert (canvas == arc_grid.PAD).sum() == 900 - 6 - 2 - 3
    full = encode_grid(_grid(30, 30))
    assert (full >= 2).all()                      # no room for a border at full size
    np.testing.assert_array_equal(crop(full), _grid(30, 30))


def test_crop_follows_the_official_scan():
    canvas = np.zeros((30, 30), dtype=np.uint8)
    canvas[0, :5] = 3
    canvas[1, :3] = 4
    canvas[2, :3] = 5
    canvas[3, 0] = 1
    # row 1: 5 wide (area 5); rows 1-2: 3 wide (area 6); rows 1-3: 3 wide (area 9): the largest wins
    np.testing.assert_array_equal(crop(canvas), canvas[:3, :3] - 2)
    assert crop(np.zeros(900, dtype=np.uint8)).shape == (0, 0)


def test_names_round_trip_in_both_official_formats():
    assert parse_name("007bbfb7") == ("007bbfb7", IDENTITY)
    assert IDENTITY.name("007bbfb7") == "007bbfb7"
    task, variant = parse_name("007bbfb7_t5_0987654321")        # the HRM builder's format
    assert task == "007bbfb7" and variant == Variant(5, (0, 9, 8, 7, 6, 5, 4, 3, 2, 1))
    assert parse_name("my_task|||t2|||0123456798")[0] == "my_task"
    with pytest.raises(DataError, match="does not name an ARC augmentation"):
        parse_name("x|||q2|||0123")


@pytest.mark.parametrize("grid, problem", [
    ([[1, 2], [3]], "ragged"),
    ([[1] * 31], "larger than the 30x30"),
    ([[1, 10]], "not a colour"),
    ([], "non-empty list"),
    ([[]], "row is empty"),
    ([[True]], "not a colour"),
])
def test_bad_grids_are_named(grid, problem):
    with pytest.raises(DataError, match=problem) as info:
        check_grid(grid, "task 0a1b train pair 2 input")
    assert "task 0a1b train pair 2 input" in str(info.value)


def test_variant_hashes_distinguish_shape_and_cells():
    a = np.zeros((2, 3), dtype=np.uint8)
    hashes = {arc_grid.grid_hash(g) for g in (a, a.T, a + 1, a)}
    assert len(hashes) == 3
    assert len({Variant(t, c) for t, c in itertools.product(range(8), [tuple(range(10))])}) == 8
