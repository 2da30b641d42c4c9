"""The 8 symmetries of the square, numbered as the official builders number them, shared by Maze and ARC.

Keeping the official numbering matters for ARC: augmented puzzle names carry the transform id (``...|||t3|||...``), so
an evaluator must invert exactly the transform the builder applied, also for datasets built by the official code.
"""

from __future__ import annotations

import numpy as np

NUM_DIHEDRAL = 8
# inverse[t] undoes t: the rotations by 90 and 270 degrees undo each other, every other element is its own inverse.
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral(grids: np.ndarray, transform: int) -> np.ndarray:
    """Transform ``transform`` of grids ``[..., h, w]``: 0 identity, 1-3 rotate counter-clockwise by 90 degrees k
    times, 4 flip left-right, 5 flip up-down, 6 transpose, 7 anti-transpose."""
    grids = np.asarray(grids)
    axes = (-2, -1)
    if transform in (0, 1, 2, 3):
        return np.rot90(grids, transform, axes=axes)
    if transform == 4:
        return np.flip(grids, axis=-1)
    if transform == 5:
        return np.flip(grids, axis=-2)
    if transform == 6:
        return np.swapaxes(grids, -1, -2)
    if transform == 7:
        return np.flip(np.rot90(grids, 1, axes=axes), axis=-1)
    raise ValueError(f"dihedral transform ids are 0-7, got {transform}")


def inverse_dihedral(grids: np.ndarray, transform: int) -> np.ndarray:
    """Undo :func:`dihedral` with the same ``transform``."""
    return dihedral(grids, DIHEDRAL_INVERSE[transform])
