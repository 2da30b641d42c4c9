"""benchmarks/time_to_accuracy.py: the quick comparison end to end (recipes taking turns through the loop's stop
and resume), the time-to-threshold bookkeeping, and its bad command lines."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_accuracy as tta  # noqa: E402


def test_quick_comparison_takes_turns_and_reports_every_recipe(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "tta"
    try:
        assert tta.main(["--quick", "--out", str(out), "--recipe", "fp32", "cpu-sudoku6", "forward_dtype=float32",
                         "--recipe", "bf16", "cpu-sudoku6", "forward_dtype=bfloat16"]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # the slice stopper puts the handler back

    record = json.loads((out / "results.json").read_text())
    recipes = {r["label"]: r for r in record["recipes"]}
    assert list(recipes) == ["fp32", "bf16"]
    assert recipes["fp32"]["data_path"] == recipes["bf16"]["data_path"]   # one dataset, generated once
    assert recipes["fp32"]["data_seconds"] > 0 and recipes["bf16"]["data_seconds"] == 0
    assert [r["forward_dtype"] for r in recipes.values()] == ["float32", "bfloat16"]
    for r in recipes.values():
        seconds = [p["seconds"] for p in r["points"]]
        steps = [p["step"] for p in r["points"]]
        assert len(seconds) >= 1 and all(b > a for a, b in zip(seconds, seconds[1:])), seconds
        assert all(b > a for a, b in zip(steps, steps[1:])), steps
        assert all(0 <= p["exact_accuracy"] <= p["accuracy"] <= 1 for p in r["points"])
        assert seconds[-1] >= tta.QUICK_MAX_SECONDS or r["ended"]   # stopped at --max-seconds or at its end
    assert not (out / "warm-up").exists() and (out / "accuracy.png").stat().st_size > 0
    assert record["conditions"]["bf16_flags"] is not None and len(record["load_before"]) in (0, 3)

    table = [line for line in printed.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:6] == ["recipe", "dtype", "steps", "training s", "final exact", "cells"]
    assert header[6:] == ["to 50% s", "to 85% s", "to 95% s", "50% / fp32", "85% / fp32", "95% / fp32"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[1:3]]
    assert [row[0] for row in rows] == ["fp32", "bf16"] and all(len(row) == len(header) for row in rows)
    assert "data generation s" in printed and "wrote " in printed


def _recipe(label: str, points: list[tuple[float, float]]) -> tta.Recipe:
    recipe = tta.Recipe(label, "cpu-sudoku6", [], tta.load_preset("cpu-sudoku6"), Path(label))
    recipe.points = [tta.Point(seconds=s, step=10 * i + 10, exact_accuracy=a, accuracy=a, eval_seconds=1.0, load=0.0)
                     for i, (s, a) in enumerate(points)]
    recipe.done = recipe.ended = True
    return recipe


def test_time_to_each_threshold_is_the_first_mark_reaching_it_and_ratios_use_the_first_recipe():
    old = _recipe("old", [(15, 0.1), (30, 0.55), (45, 0.9), (60, 0.96)])
    new = _recipe("new", [(15, 0.6), (30, 0.86), (45, 0.94)])
    rows = tta.summary([old, new])
    assert [rows[0]["to"][k]["seconds"] for k in ("0.50", "0.85", "0.95")] == [30, 45, 60]
    assert [rows[1]["to"][k]["seconds"] for k in ("0.50", "0.85", "0.95")] == [15, 30, None]
    assert [rows[1]["to"][k]["ratio_to_first"] for k in ("0.50", "0.85", "0.95")] == [0.5, 0.667, None]
    assert rows[1]["final_exact_accuracy"] == 0.94 and rows[1]["steps"] == 30
    table = tta.format_table(rows, "old").splitlines()
    assert "not reached" in table[3] and "| 0.50 " in table[3]


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "only", "cpu-sudoku6"], "at least two --recipe"),
    (["--recipe", "a", "cpu-sudoku6", "--recipe", "a", "cpu-sudoku6"], "labels must differ"),
    (["--recipe", "a/b", "cpu-sudoku6", "--recipe", "c", "cpu-sudoku6"], "must be letters"),
    (["--recipe", "a", "no-such-preset", "--recipe", "b", "cpu-sudoku6"], "no-such-preset"),
    (["--recipe", "a", "cpu-sudoku6", "lr", "--recipe", "b", "cpu-sudoku6"], "key=value"),
    (["--every", "0"], "--every must be a positive"),
])
def test_bad_command_lines_give_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    assert tta.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_a_folder_with_files_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert tta.main(["--quick", "--out", str(tmp_path)]) == 2
    assert "already holds files" in capsys.readouterr().err
