"""The maze task: path-aware evaluation and puzzle handling; any shortest path counts, longer or broken ones do not."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.data import maze
from latentloop.data.format import write_split
from latentloop.tasks import infer_task
from latentloop.tasks.maze import MazeTally, MazeTask
from latentloop.tasks.sudoku import SudokuTask

# Two shortest paths (8 moves) around the central block, and a longer detour through the bottom row.
QUESTION = """\
S....
.###.
.#...
.#.#.
....G"""
LABEL = """\
Soooo
.###o
.#..o
.#.#o
....G"""
ALTERNATIVE = """\
S....
o###.
o#...
o#.#.
ooooG"""
# Same length as LABEL but through a wall.
THROUGH_WALL = """\
Sooo.
.##oo
.#..o
.#.#o
....G"""
# A 12-move walk through the middle.
DETOUR = """\
Soooo
.###o
.#ooo
.#o#.
..ooG"""
BROKEN = """\
Soo.o
.###o
.#..o
.#.#o
....G"""
STRAY = """\
Soooo
.###o
.#..o
.#.#o
o...G"""


def grid(text: str) -> np.ndarray:
    return maze.parse_maze(text, answer=True, check_reachable=False)


def check(answer: str) -> bool:
    return bool(maze.is_shortest_path(grid(QUESTION)[None], grid(answer)[None])[0])


def test_label_and_alternative_shortest_paths_are_valid():
    assert maze.label_paths(grid(QUESTION)[None])[0].tolist() == grid(LABEL).tolist()
    assert check(LABEL) and check(ALTERNATIVE)


@pytest.mark.parametrize("answer", [DETOUR, BROKEN, STRAY, THROUGH_WALL, QUESTION])
def test_longer_broken_or_cheating_answers_are_rejected(answer):
    assert not check(answer)


def test_changed_start_or_padding_is_rejected():
    moved = grid(LABEL)
    moved[0, 0], moved[1, 0] = maze.OPEN, maze.START
    pad = grid(LABEL)
    pad[2, 2] = maze.PAD
    for answer in (moved, pad):
        assert not maze.is_shortest_path(grid(QUESTION)[None], answer[None])[0]


def test_tally_counts_alternatives_and_ambiguity_over_batches():
    q = maze.to_tokens(np.stack([grid(QUESTION)] * 4))
    preds = maze.to_tokens(np.stack([grid(LABEL), grid(ALTERNATIVE), grid(DETOUR), grid(BROKEN)]))
    tally = MazeTally(5)
    tally.update(np.zeros(3), q[:3], preds[:3], np.zeros(3))
    tally.update(np.zeros(1), q[3:], preds[3:], np.zeros(1))
    assert tally.metrics() == {"valid_path_accuracy": 0.5, "several_shortest_share": 1.0}
    assert "valid shortest path 50.00%" in tally.report()
    corridor = grid("S#.\n.#.\n..G")
    assert not maze.has_several_shortest_paths(corridor[None])[0]


def _legacy_dataset(root, labels):
    """A 4x4, 6-token test split without a task in its dataset.json (as official and older builds write)."""
    from latentloop.data.format import DatasetMetadata, PuzzleSplit

    n = len(labels)
    split = PuzzleSplit.from_counts(labels, labels, np.zeros(n, dtype=np.int32), np.ones(n), np.ones(n))
    write_split(root / "test", split, DatasetMetadata.for_split(split, vocab_size=6, num_puzzle_identifiers=1))
    return DatasetMetadata.for_split(split, vocab_size=6, num_puzzle_identifiers=1)


def test_legacy_4x4_data_is_told_apart_by_its_labels(tmp_path):
    mazes = maze.to_tokens(np.stack([grid("S...\n.##.\n....\n...G")] * 2)).astype(np.uint8)
    meta = _legacy_dataset(tmp_path / "m", mazes)
    assert isinstance(infer_task(meta, tmp_path / "m"), MazeTask)
    sudoku_labels = np.array([[2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2]], dtype=np.uint8)
    meta = _legacy_dataset(tmp_path / "s", sudoku_labels)
    assert isinstance(infer_task(meta, tmp_path / "s"), SudokuTask)


def test_puzzle_handling(tmp_path):
    task = MazeTask(5)
    assert MazeTask(**task.params()).size == 5 and (task.vocab_size, task.seq_len) == (6, 25)
    (tmp_path / "m.txt").write_text(QUESTION + "\n")
    (tmp_path / "many.txt").write_text(maze.to_string(grid(QUESTION)) + "\n" + maze.to_string(grid(QUESTION)) + "\n")
    [puzzle] = task.read(str(tmp_path / "m.txt"))
    assert len(task.read(str(tmp_path / "many.txt"))) == 2
    assert np.array_equal(task.read(maze.to_string(puzzle))[0], puzzle)
    tokens = task.encode([puzzle])
    assert tokens.shape == (1, 25) and tokens.dtype == np.int64
    answer = task.decode(maze.to_tokens(grid(ALTERNATIVE)[None]))[0]
    assert task.check(puzzle, answer) and not task.check(puzzle, grid(DETOUR))
    assert task.format(answer) == ALTERNATIVE
    assert task.reference(puzzle) is None  # two shortest paths: no single reference to mark cells wrong
    assert task.givens(puzzle).sum() == (puzzle != maze.OPEN).sum()
    style = task.style()
    assert style.text(maze.START) == "S" and style.color(maze.WALL) != style.color(maze.PATH)
    with pytest.raises(Exception, match="file not found"):
        task.read(str(tmp_path / "missing.txt"))


def test_periodic_evaluation_reports_valid_paths_on_maze_data(tmp_path):
    from latentloop.config import apply_overrides, load_preset
    from latentloop.training.loop import train

    maze.build_generated(tmp_path / "mazes", 64, 16, 5, 4, 0, workers=1)
    cfg = apply_overrides(load_preset("cpu-maze"), [
        f"data_path={tmp_path / 'mazes'}", f"out_dir={tmp_path / 'run'}", "hidden_size=32", "num_heads=2",
        "layers=1", "T=1", "n=1", "N_sup=2", "puzzle_emb_ndim=32", "global_batch_size=32", "epochs=2",
        "eval_interval=1"])
    result = train(cfg, progress=False, log=lambda *_: None)
    evals = [r for r in result.history if "eval/exact_accuracy" in r]
    assert len(evals) == 2 and all(0.0 <= r["eval/valid_path_accuracy"] <= 1.0 for r in evals)
