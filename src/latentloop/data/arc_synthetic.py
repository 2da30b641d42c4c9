"""Seeded ARC-like tasks made here (no download), for tests and the ``cpu-arc`` preset.

Each task applies one rule with its own parameters to random sparse grids of 3x3 to 10x10 (or a smaller largest side): flip, rotate, transpose,
recolour one colour, fill the background, let cells fall (gravity) or draw a border. It has 3-5 demonstration pairs
and 1-2 test pairs, like a real ARC task. Tasks are numbered; the first ``num_train`` form the subset
``synthetic/training`` and the rest ``synthetic/evaluation``, so ``--test-set evaluation`` works as for real ARC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from latentloop.data.arc_task import ArcTask, parse_task
from latentloop.errors import DataError

MIN_SIDE, MAX_SIDE = 3, 10
Rule = Callable[[np.ndarray], np.ndarray]


def _gravity(grid: np.ndarray) -> np.ndarray:
    """Coloured cells fall to the bottom of their column, keeping their order."""
    out = np.zeros_like(grid)
    for c in range(grid.shape[1]):
        cells = grid[:, c][grid[:, c] != 0]
        if cells.size:
            out[-cells.size:, c] = cells
    return out


def _border(colour: int) -> Rule:
    def draw(grid: np.ndarray) -> np.ndarray:
        out = grid.copy()
        out[[0, -1], :] = colour
        out[:, [0, -1]] = colour
        return out
    return draw


def _rule(family: str, rng: np.random.Generator, palette: np.ndarray) -> Rule:
    """The rule of one task: a family with parameters drawn for this task."""
    unused = np.setdiff1d(np.arange(1, 10), palette)
    if family == "flip":
        axis = int(rng.integers(2))
        return lambda g: np.flip(g, axis=axis)
    if family == "rotate":
        turns = int(rng.integers(1, 4))
        return lambda g: np.rot90(g, turns)
    if family == "transpose":
        return lambda g: g.T
    if family == "recolour":
        source, target = int(palette[0]), int(rng.choice(unused))
        return lambda g: np.where(g == source, target, g)
    if family == "fill_background":
        colour = int(rng.choice(unused))
        return lambda g: np.where(g == 0, colour, g)
    if family == "gravity":
        return _gravity
    return _border(int(rng.choice(unused)))


FAMILIES = ("flip", "rotate", "transpose", "recolour", "fill_background", "gravity", "border")


def _pair(rule: Rule, rng: np.random.Generator, palette: np.ndarray, max_side: int) -> dict[str, list[list[int]]]:
    """A random sparse grid and its answer; redrawn until the rule changes it, so no pair is a plain copy."""
    while True:
        rows, cols = (int(x) for x in rng.integers(MIN_SIDE, max_side + 1, size=2))
        grid = np.where(rng.random((rows, cols)) < rng.uniform(0.2, 0.5),
                        rng.choice(palette, size=(rows, cols)), 0).astype(np.int64)
        answer = np.asarray(rule(grid))
        if answer.shape != grid.shape or not np.array_equal(answer, grid):
            return {"input": grid.tolist(), "output": answer.tolist()}


def make_task(rng: np.random.Generator, family: str, max_side: int = MAX_SIDE) -> dict[str, list]:
    """One task of ``family`` in the ARC JSON layout."""
    palette = rng.choice(np.arange(1, 10), size=int(rng.integers(2, 5)), replace=False)
    rule = _rule(family, rng, palette)
    demos = [_pair(rule, rng, palette, max_side) for _ in range(int(rng.integers(3, 6)))]
    tests = [_pair(rule, rng, palette, max_side) for _ in range(int(rng.integers(1, 3)))]
    return {"train": demos, "test": tests}


def synthetic_tasks(num_train: int, num_eval: int, seed: int = 0, max_side: int = MAX_SIDE) -> list[ArcTask]:
    """``num_train`` training and ``num_eval`` evaluation tasks with grid sides up to ``max_side``; task i draws
    from (seed, i) alone, so a larger set extends a smaller one."""
    tasks = []
    for index in range(num_train + num_eval):
        rng = np.random.default_rng([seed, index])
        family = FAMILIES[int(rng.integers(len(FAMILIES)))]
        task_id = f"{hashlib.sha256(f'{seed}:{index}'.encode()).hexdigest()[:8]}"
        subset = "synthetic/training" if index < num_train else "synthetic/evaluation"
        tasks.append(parse_task(make_task(rng, family, max_side), task_id, subset, f"synthetic task {index} ({family})"))
    return tasks


def parse_spec(spec: str) -> tuple[int, int, int]:
    """``synthetic:TRAIN:EVAL[:MAX_SIDE]`` -> (TRAIN, EVAL, MAX_SIDE)."""
    parts = spec.split(":")
    if (len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[1:]) or int(parts[2]) == 0
            or (len(parts) == 4 and not MIN_SIDE <= int(parts[3]) <= MAX_SIDE)):
        raise DataError(f"{spec!r}: a synthetic source is synthetic:TRAIN:EVAL[:MAX_SIDE], e.g. synthetic:48:16 or "
                        f"synthetic:48:16:8 (EVAL at least 1, MAX_SIDE {MIN_SIDE}-{MAX_SIDE})")
    return int(parts[1]), int(parts[2]), int(parts[3]) if len(parts) == 4 else MAX_SIDE
