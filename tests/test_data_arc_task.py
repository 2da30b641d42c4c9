"""One ARC task reader: the builder, `solve` and ARC scoring accept and refuse the same files, with the same line."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import latentloop.data
from latentloop.data.arc_sources import folder_tasks
from latentloop.data.arc_task import parse_task, read_task_file
from latentloop.errors import DataError
from latentloop.evaluation.arc import read_test_puzzles
from latentloop.tasks.arc import ArcTask as ArcTaskPlugin

DEMO = {"input": [[1, 2]], "output": [[2, 1]]}


def _read_everywhere(tmp_path: Path, task: object) -> list[str]:
    """The error line of every reader of a task file (None where it is accepted): a builder source folder, `solve`'s
    task file, an evaluation folder of task files and a test_puzzles.json."""
    folder = tmp_path / "evaluation"
    folder.mkdir(exist_ok=True)
    (folder / "t1.json").write_text(json.dumps(task))
    (tmp_path / "test_puzzles.json").write_text(json.dumps({"t1": task}))
    readers = [lambda: list(folder_tasks(folder)), lambda: ArcTaskPlugin().read_task(str(folder / "t1.json")),
               lambda: read_test_puzzles(folder), lambda: read_test_puzzles(tmp_path / "test_puzzles.json")]
    lines = []
    for read in readers:
        try:
            read()
            lines.append(None)
        except DataError as exc:
            lines.append(str(exc))
    return lines


@pytest.mark.parametrize("task, problem", [
    ([DEMO], "not an ARC task (expected an object with 'train' and 'test' lists)"),
    ({"train": [DEMO]}, "not an ARC task"),
    ({"train": [], "test": [{"input": [[1]]}]}, "task has no demonstration ('train') pairs"),
    ({"train": [DEMO], "test": []}, "task has no 'test' pairs"),
    ({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}, "train pair 0: missing 'output' grid"),
    ({"train": [DEMO], "test": [[1]]}, "test pair 0: expected an object with 'input' and 'output' grids"),
    ({"train": [DEMO], "test": [{"input": [[1, 2], [3]]}]}, "test pair 0 input: ragged grid"),
    ({"train": [{"input": [[1] * 31], "output": [[1]]}], "test": [{"input": [[1]]}]},
     "train pair 0 input: grid is 1x31, larger than the 30x30 canvas"),
    ({"train": [DEMO], "test": [{"input": [[1]], "output": [[10]]}]}, "test pair 0 output: cell value 10 is not a colour"),
])
def test_every_reader_refuses_a_bad_task_with_the_same_line(tmp_path, task, problem):
    lines = _read_everywhere(tmp_path, task)
    assert all(line is not None and problem in line and "\n" not in line for line in lines), lines
    assert all("t1.json" in line for line in lines[:3]) and "test_puzzles.json task t1" in lines[3]


def test_every_reader_accepts_an_unlabelled_test_input(tmp_path):
    assert _read_everywhere(tmp_path, {"train": [DEMO], "test": [{"input": [[3]]}, DEMO]}) == [None] * 4
    task = read_task_file(tmp_path / "evaluation" / "t1.json")
    assert task.task_id == "t1" and task.test[0][1] is None and np.array_equal(task.test[1][1], [[2, 1]])
    assert read_test_puzzles(tmp_path / "test_puzzles.json")["t1"][0].output is None


def test_key_order_solutions_and_side_are_kept():
    task = parse_task({"test": [{"input": [[1, 2, 3]]}], "train": [DEMO]}, "t", "s", "here", solutions=[[[4]]])
    assert task.test_first and task.side == 3 and task.test[0][1].tolist() == [[4]]
    assert not parse_task({"train": [DEMO], "test": [DEMO]}, "t").test_first
    with pytest.raises(DataError, match="here: 1 test inputs but 2 solutions"):
        parse_task({"train": [DEMO], "test": [DEMO]}, "t", where="here", solutions=[[[1]], [[2]]])


def test_solve_refuses_a_grid_larger_than_the_model_canvas(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"train": [DEMO], "test": [{"input": [[1] * 7]}]}))
    with pytest.raises(DataError, match="big.json: a grid side of 7 is larger than this model's 6x6 canvas"):
        ArcTaskPlugin(6).read_task(str(path))
    assert ArcTaskPlugin(7).read_task(str(path), task_id="x").task_id == "x"


def _data_imports(path: Path) -> set[str]:
    """The latentloop.data modules a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "latentloop.data":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latentloop.data."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("latentloop.data."))
    return found


def test_the_arc_data_modules_import_one_another_without_a_cycle():
    folder = Path(latentloop.data.__file__).parent
    graph = {p.stem: _data_imports(p) & {q.stem for q in folder.glob("arc*.py")} for p in folder.glob("arc*.py")}
    assert "arc_sources" in graph["arc"] and "arc_task" in graph["arc_synthetic"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert not [m for m in graph if reaches(m, m, set())]
