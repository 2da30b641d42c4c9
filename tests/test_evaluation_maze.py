"""Path-aware maze evaluation and the `solve` adapter: any shortest path counts, longer or broken ones do not."""

from __future__ import annotations

import numpy as np
import pytest

from latentloop.data import maze
from latentloop.evaluation.maze_metrics import is_maze_data, maze_scores, maze_tally_for
from latentloop.evaluation.solve import MazeTask, SudokuTask, task_for_model
from latentloop.models.config import ModelConfig

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


def test_scores_count_alternatives_and_ambiguity():
    q = maze.to_tokens(np.stack([grid(QUESTION)] * 4))
    labels = maze.to_tokens(np.stack([grid(LABEL)] * 4))
    preds = maze.to_tokens(np.stack([grid(LABEL), grid(ALTERNATIVE), grid(DETOUR), grid(BROKEN)]))
    scores = maze_scores(q, labels, preds)
    assert (scores.exact_accuracy, scores.valid_accuracy, scores.several_shortest) == (0.25, 0.5, 1.0)
    assert "valid shortest path 50.00%" in scores.report()
    corridor = grid("S#.\n.#.\n..G")
    assert not maze.has_several_shortest_paths(corridor[None])[0]


def test_maze_data_is_told_apart_from_4x4_sudoku():
    q = maze.to_tokens(grid(QUESTION)[None])
    assert is_maze_data(q, maze.to_tokens(grid(LABEL)[None]), 6)
    sudoku_labels = np.array([[2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2]])
    assert not is_maze_data(sudoku_labels, sudoku_labels, 6)


def test_solve_adapter(tmp_path):
    assert isinstance(task_for_model(ModelConfig(vocab_size=6, seq_len=25)), MazeTask)
    assert isinstance(task_for_model(ModelConfig(vocab_size=6, seq_len=16)), SudokuTask)
    task = MazeTask(5)
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


def test_tally_adds_up_batches_like_the_whole_set_scores():
    q = maze.to_tokens(np.stack([grid(QUESTION)] * 4))
    preds = maze.to_tokens(np.stack([grid(LABEL), grid(ALTERNATIVE), grid(DETOUR), grid(BROKEN)]))
    tally = maze_tally_for(q, q, maze.VOCAB_SIZE)
    assert tally is not None and maze_tally_for(q[:, :15], q[:, :15], maze.VOCAB_SIZE) is None
    tally.update(np.zeros(3), q[:3], preds[:3], np.zeros(3))
    tally.update(np.zeros(1), q[3:], preds[3:], np.zeros(1))
    assert tally.metrics() == {"valid_path_accuracy": 0.5}


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
