"""The task registry: the task travels with the data and the checkpoint, and only the registry infers it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import latentloop
from latentloop.cli import main
from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data import sudoku_build, sudoku_grid
from latentloop.data.format import read_split
from latentloop.errors import DataError
from latentloop.inspection.viewer import write_viewer
from latentloop.tasks import get_task, infer_task, task_names, task_of_config, task_of_dataset
from latentloop.tasks.arc import ArcTask
from latentloop.tasks.sudoku import SudokuTask

SRC = Path(latentloop.__file__).parent


def test_builtin_tasks_are_known_and_round_trip_their_parameters():
    assert {"sudoku", "maze", "arc"} <= set(task_names())
    for name, params in [("sudoku", {"size": 6}), ("maze", {"size": 7}), ("arc", {"canvas": 10})]:
        task = get_task(name, params)
        assert get_task(name, task.params()).params() == task.params()
    with pytest.raises(DataError, match="unknown task 'nope'; known tasks: arc, .*maze.*sudoku"):
        get_task("nope")


def test_builders_store_the_task_and_every_reader_uses_it(tmp_path):
    sudoku_build.build_generated(tmp_path / "s10", sudoku_grid.shape_for_size(10), 4, 2, seed=0, workers=1)
    raw = json.loads((tmp_path / "s10" / "test" / "dataset.json").read_text())
    assert raw["task"] == "sudoku" and raw["task_params"] == {"size": 10, "box": [2, 5]}
    assert (raw["vocab_size"], raw["seq_len"]) == (12, 100)        # the shape of a 10x10-canvas ARC set too
    assert isinstance(task_of_dataset(tmp_path / "s10"), SudokuTask)
    assert read_split(tmp_path / "s10" / "test")[1].task == "sudoku"


def test_a_small_canvas_arc_checkpoint_is_solved_and_viewed_as_arc(tmp_path):
    """Before tasks were stored, a cpu-arc checkpoint (vocab 12, seq_len 100) was taken for a 10x10 Sudoku by
    `solve`, and `view` drew it as Sudoku; now both follow the task recorded with the data and the checkpoint."""
    from latentloop.api import prepare_run
    from latentloop.training.loop import train

    cfg = prepare_run("cpu-arc", [f"data_path={tmp_path / 'arc'}", f"out_dir={tmp_path / 'run'}", "data.num_train=3",
                                  "data.num_test=1", "data.num_aug=1", "hidden_size=16", "num_heads=2",
                                  "puzzle_emb_ndim=16", "T=1", "n=1", "N_sup=1", "epochs=1", "eval_interval=1",
                                  "global_batch_size=8"], log=lambda _: None)
    train(cfg, progress=False, log=lambda *_: None)
    model, saved = latentloop.load_checkpoint(tmp_path / "run")
    assert saved.task == {"name": "arc", "params": {"canvas": 10}}
    assert isinstance(task_of_config(saved), ArcTask)
    page = write_viewer(tmp_path / "arc", tmp_path / "v.html").read_text()
    assert '"cols":10' in page and "#0074D9" in page      # the ARC palette on a 10-wide grid, not Sudoku digits


def test_legacy_data_is_inferred_in_one_place_and_ambiguity_asks_for_the_task(tmp_path, capsys):
    from types import SimpleNamespace

    assert isinstance(infer_task(SimpleNamespace(vocab_size=12, seq_len=900)), ArcTask)
    assert isinstance(infer_task(SimpleNamespace(vocab_size=11, seq_len=81)), SudokuTask)
    assert "treating it as" in capsys.readouterr().err
    with pytest.raises(DataError, match="fits arc or sudoku|fits sudoku or arc|pass --task"):
        infer_task(SimpleNamespace(vocab_size=12, seq_len=100))   # 10x10 Sudoku or a 10x10-canvas ARC model
    cfg = RunConfig()
    cfg.model.vocab_size, cfg.model.seq_len = 12, 100
    assert isinstance(task_of_config(cfg, override="arc"), ArcTask)


def test_a_dataset_naming_an_unknown_task_is_one_line(tmp_path, capsys):
    sudoku_build.build_generated(tmp_path / "d", sudoku_grid.shape_for_size(4), 4, 2, seed=0, workers=1)
    for split in ("train", "test"):
        path = tmp_path / "d" / split / "dataset.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "task": "tetris"}))
    assert main(["view", str(tmp_path / "d"), "-o", str(tmp_path / "v.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentloop: error: unknown task 'tetris'; known tasks: ") and "\n" not in err
    assert not (tmp_path / "v.html").exists()


def test_data_options_come_from_the_task_and_switch_with_it():
    cfg = apply_overrides(load_preset("cpu-maze"), [])
    assert cfg.data.task == "maze" and cfg.data.min_path == 12
    cfg = apply_overrides(RunConfig(), ["data.task=sudoku"])
    assert cfg.data.size == 9 and not hasattr(cfg.data, "min_path")   # the Sudoku defaults, nothing of the maze
    with pytest.raises(Exception, match="unknown config key 'data.min_path'"):
        apply_overrides(cfg, ["data.min_path=3"])


def lines_before(path: Path, number: int, count: int = 3) -> str:
    """The lines just above `number`: arc_grid.canvas_side converts an ARC length to its side (decoding, no guess)."""
    return "\n".join(path.read_text().splitlines()[max(0, number - 1 - count):number - 1])


def test_nothing_outside_the_task_modules_guesses_the_task_from_shapes():
    """Shape tests (a square sequence length, a vocabulary size compared with a constant) belong to the tasks'
    `infer`, called only by the registry; the rest of the library dispatches on the stored task."""
    pattern = re.compile(r"isqrt\(.*seq_len|vocab_size\s*==|seq_len\s*==\s*\d|is_(maze|arc|sudoku)_(data|shape)")
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "tasks":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "def canvas_side" not in lines_before(path, number):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
