"""One ARC task as every ARC release writes it, ``{"train": [pairs], "test": [pairs]}``, read by one set of rules.

The builder (every source layout), ``solve`` and ARC scoring (``test_puzzles.json`` or a folder of task files) all
read tasks here, so a file is accepted or refused the same way everywhere:

* the task is an object with non-empty ``train`` (demonstration) and ``test`` lists;
* every pair is an object with an ``input`` grid; a demonstration pair needs its ``output``, a test pair may lack it
  (an unlabelled competition input: predicted and submitted, never scored or trained on);
* every grid passes :func:`arc_grid.check_grid` (rectangular, 1-30 cells a side, colours 0-9).

A malformed task is one DataError line naming the file (and task and pair) and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentloop.data.arc_grid import check_grid
from latentloop.data.format import read_json
from latentloop.errors import DataError

Pair = tuple[np.ndarray, "np.ndarray | None"]


@dataclass
class ArcTask:
    """One task: demonstration pairs, test pairs (output None when unlabelled) and where it came from."""

    task_id: str
    subset: str
    where: str
    train: list[Pair]
    test: list[Pair]
    name: str = ""                       # unique name in a build; the bare id unless two sources share the id
    is_test: bool = False
    test_first: bool = False             # the file lists "test" before "train" (the official builder keeps that order)

    @property
    def side(self) -> int:
        """The largest grid side in the task: the smallest canvas that holds it."""
        return max(max(g.shape) for pair in self.train + self.test for g in pair if g is not None)

    def to_json(self) -> dict[str, Any]:
        """The task in the official JSON layout; unlabelled test pairs have no "output" key."""
        def pair(inp: np.ndarray, out: np.ndarray | None) -> dict[str, Any]:
            return {"input": inp.tolist()} if out is None else {"input": inp.tolist(), "output": out.tolist()}
        return {"train": [pair(i, o) for i, o in self.train], "test": [pair(i, o) for i, o in self.test]}


def parse_task(raw: Any, task_id: str, subset: str = "", where: str = "", solutions: list[Any] | None = None
               ) -> ArcTask:
    """Check one task object and turn its grids into arrays; test outputs come from the task itself or from
    ``solutions`` (a Kaggle ``*_solutions.json`` entry)."""
    where = where or f"task {task_id}"
    if not isinstance(raw, dict) or not isinstance(raw.get("train"), list) or not isinstance(raw.get("test"), list):
        raise DataError(f"{where}: not an ARC task (expected an object with 'train' and 'test' lists)")
    if not raw["train"]:
        raise DataError(f"{where}: task has no demonstration ('train') pairs")
    if not raw["test"]:
        raise DataError(f"{where}: task has no 'test' pairs")
    if solutions is not None and len(solutions) != len(raw["test"]):
        raise DataError(f"{where}: {len(raw['test'])} test inputs but {len(solutions)} solutions")
    pairs: dict[str, list[Pair]] = {}
    for kind in ("train", "test"):
        pairs[kind] = []
        for index, example in enumerate(raw[kind]):
            at = f"{where} {kind} pair {index}"
            if not isinstance(example, dict) or "input" not in example:
                raise DataError(f"{at}: expected an object with 'input' and 'output' grids")
            output = solutions[index] if kind == "test" and solutions is not None else example.get("output")
            if output is None and kind == "train":
                raise DataError(f"{at}: missing 'output' grid")
            inp = check_grid(example["input"], f"{at} input")
            pairs[kind].append((inp, None if output is None else check_grid(output, f"{at} output")))
    keys = list(raw)
    return ArcTask(task_id, subset, where, pairs["train"], pairs["test"],
                   test_first=keys.index("test") < keys.index("train"))


def read_task_file(path: str | Path, task_id: str | None = None, subset: str = "") -> ArcTask:
    """The task in one ``.json`` file, named ``task_id`` (default: the file name without ``.json``). A file of
    several tasks keyed by id (a dataset's ``test_puzzles.json``, a Kaggle ``*_challenges.json``) gives the task
    ``task_id`` names, so one of a built dataset's test tasks can be solved without writing it out first."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (an ARC task is a JSON file with 'train' and 'test' pairs)")
    raw = read_json(path)
    if task_id and isinstance(raw, dict) and raw and not {"train", "test"} & set(raw):
        if task_id not in raw:
            raise DataError(f"{path}: no task {task_id!r} among its {len(raw):,} tasks")
        return parse_task(raw[task_id], task_id, subset, f"{path} task {task_id}")
    return parse_task(raw, task_id or path.stem, subset, str(path))
