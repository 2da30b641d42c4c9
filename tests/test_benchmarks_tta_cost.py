"""benchmarks/tta_cost.py end to end on a few puzzles: one row per K, ratios of wall and CPU time."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tta_cost  # noqa: E402


def test_prints_one_row_per_transform_count_with_both_ratios(capsys):
    threads = torch.get_num_threads()
    try:
        tta_cost.main(["--puzzles", "8", "--tta", "2,3", "--rounds", "1", "--batch", "32"])
    finally:
        torch.set_num_threads(threads)
    rows = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0][0].strip() == "K" and len(rows[0]) == 5
    assert [r[0].strip() for r in rows[1:]] == ["2", "3"]
    assert all(float(cell) > 0 for r in rows[1:] for cell in r[1:])
