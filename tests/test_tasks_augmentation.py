"""Validity-preserving augmentations on the Task interface, on real generated puzzles of every task that has them:
exact inverses, valid answers after the transform, identity first, distinct and seeded draws, and the builders' math."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from latentloop.data import maze as maze_data
from latentloop.data.grids import dihedral
from latentloop.data.sudoku_augment import augment_batch
from latentloop.data.sudoku_generator import generate_puzzles
from latentloop.data.sudoku_grid import SudokuShape, from_tokens, to_tokens
from latentloop.errors import DataError
from latentloop.tasks import Task
from latentloop.tasks.augmentation import IDENTITY, Augmentation, CellPermutation
from latentloop.tasks.graph_distance import EDGE, SOURCE, Graph, GraphDistanceTask, bfs_distances, generate
from latentloop.tasks.maze import DIHEDRAL_NAMES, MazeTask
from latentloop.tasks.prefix_sum import PrefixSumTask
from latentloop.tasks.sort import SortTask
from latentloop.tasks.sudoku import SudokuTask


def real_rows(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """Puzzle and label token rows of freshly generated puzzles, as a builder writes them."""
    rng = np.random.default_rng(0)
    if isinstance(task, SudokuTask):
        items = generate_puzzles(task.shape, 6, seed=0, workers=1)
        return (to_tokens(np.stack([p.puzzle for p in items])).astype(np.int64),
                to_tokens(np.stack([p.solution for p in items])).astype(np.int64))
    if isinstance(task, MazeTask):
        mazes = maze_data.generate_mazes(6, size=task.size, min_path=8, seed=0, workers=1)
        return (maze_data.to_tokens(mazes.questions).astype(np.int64),
                maze_data.to_tokens(mazes.answers).astype(np.int64))
    if isinstance(task, GraphDistanceTask):
        adjacency, sources = generate(task.nodes, 0.3, 12, rng, set())
        graphs = [Graph(a, int(s)) for a, s in zip(adjacency, sources)]
        return task.encode(graphs), np.stack([task.reference(g) for g in graphs])
    assert isinstance(task, (SortTask, PrefixSumTask))
    lengths = (1, 3, 5, task.max_length - 1, task.max_length, 2)
    lists = [rng.integers(0, task.symbols, size=length).tolist() for length in lengths]
    inputs = task.encode(lists)
    return inputs, task.answer_tokens(inputs)


def puzzles_of(task: Task, rows: np.ndarray) -> list[Any]:
    """The puzzle objects `Task.check` takes, read back from puzzle token rows."""
    if isinstance(task, SudokuTask):
        return list(from_tokens(rows, task.shape))
    if isinstance(task, MazeTask):
        return list(maze_data.from_tokens(rows, task.size))
    if isinstance(task, GraphDistanceTask):
        n = task.nodes
        return [Graph(row[:n * n].reshape(n, n) == EDGE, int(np.argmax(row[n * n:] == SOURCE))) for row in rows]
    return task.decode(rows)


TASKS = [SudokuTask(4), SudokuTask(6), SudokuTask(9), MazeTask(7), SortTask(max_length=10, alphabet=5),
         PrefixSumTask(max_length=9, modulus=10), PrefixSumTask(max_length=6, modulus=2), GraphDistanceTask(6)]


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_transforms_are_exact_and_keep_answers_valid(task: Task) -> None:
    inputs, labels = real_rows(task)
    augmentations = task.augmentations(min(8, task.augmentation_count()), seed=1)
    assert augmentations[0] is IDENTITY
    assert len({a.key() for a in augmentations}) == len(augmentations) > 1
    for augmentation in augmentations:
        puzzles, answers = augmentation.puzzles(inputs), augmentation.answers(labels)
        assert puzzles.shape == inputs.shape and puzzles.dtype == inputs.dtype
        np.testing.assert_array_equal(augmentation.invert_answers(answers), labels)
        task.check_tokens(puzzles, "augmented puzzles")
        task.check_tokens(answers, "augmented answers")
        decoded = task.decode(answers)
        for i, puzzle in enumerate(puzzles_of(task, puzzles)):
            assert task.check(puzzle, decoded[i]), (augmentation, i)
    moved = [a for a in augmentations[1:] if not np.array_equal(a.puzzles(inputs), inputs)]
    assert len(moved) == len(augmentations) - 1   # every transform but the identity changes these puzzles


@pytest.mark.parametrize("task", TASKS, ids=repr)
def test_draws_are_seeded_and_extend(task: Task) -> None:
    count = min(6, task.augmentation_count())
    keys = [a.key() for a in task.augmentations(count, seed=5)]
    assert keys == [a.key() for a in task.augmentations(count, seed=5)]
    fewer = min(3, count - 1)
    assert keys[:fewer] == [a.key() for a in task.augmentations(fewer, seed=5)]   # more transforms extend the set
    if task.augmentation_count() > 100:
        assert keys != [a.key() for a in task.augmentations(count, seed=6)]


def test_counts_and_refusals() -> None:
    assert [t.augmentation_count() for t in (MazeTask(5), PrefixSumTask(4, 2), PrefixSumTask(4, 10))] == [8, 2, 40]
    assert SudokuTask(4).augmentation_count() == 24 * 8 * 8 * 2          # digits x rows x columns x transpose
    assert SudokuTask(6).augmentation_count() == 720 * (6 * 8) * (2 * 36)  # 2x3 boxes: no transposition
    assert SortTask(max_length=5).augmentation_count() == 120
    assert GraphDistanceTask(4).augmentation_count() == 24
    names = [a.name for a in MazeTask(5).augmentations(8)]
    assert sorted(names) == sorted(DIHEDRAL_NAMES) and names[0] == "identity"
    for count in (0, 9):
        with pytest.raises(DataError, match="task 'maze' has 8 distinct augmentations .*cannot use"):
            MazeTask(5).augmentations(count)
    with pytest.raises(DataError, match="non-negative"):
        MazeTask(5).augmentations(2, seed=-1)


class Plain(Task):
    """A task that declares no augmentations."""

    name = "plain"
    vocab_size = 3
    seq_len = 4


def test_a_task_without_augmentations_has_only_the_identity() -> None:
    task = Plain()
    assert task.augmentation_count() == 1 and task.augmentations(1) == [IDENTITY]
    rows = np.array([[0, 1, 2, 1]])
    np.testing.assert_array_equal(IDENTITY.invert_answers(IDENTITY.puzzles(rows)), rows)
    with pytest.raises(DataError, match="task 'plain' has 1 distinct augmentation \\(the identity included\\)"):
        task.augmentations(2)


def test_sudoku_transforms_are_the_builders_maps() -> None:
    shape = SudokuShape(3, 3)
    puzzle, solution, _ = generate_puzzles(shape, 1, seed=2, workers=1)[0]
    want_p, want_s = augment_batch(puzzle[None], solution[None], shape, np.random.default_rng(9))
    augmentation = SudokuTask(9).random_augmentation(np.random.default_rng(9), 1)
    np.testing.assert_array_equal(augmentation.puzzles(to_tokens(puzzle[None])), to_tokens(want_p))
    np.testing.assert_array_equal(augmentation.answers(to_tokens(solution[None])), to_tokens(want_s))


def test_maze_transforms_are_the_dihedral_images() -> None:
    task = MazeTask(7)
    inputs, _ = real_rows(task)
    grids = maze_data.from_tokens(inputs, 7)
    for augmentation in task.augmentations(8):
        transform = DIHEDRAL_NAMES.index(augmentation.name)
        np.testing.assert_array_equal(augmentation.puzzles(inputs), maze_data.to_tokens(dihedral(grids, transform)))


def test_sort_shuffles_within_each_list_and_keeps_the_answer() -> None:
    task = SortTask(max_length=10, alphabet=5)
    inputs, labels = real_rows(task)
    for augmentation in task.augmentations(5, seed=2)[1:]:
        shuffled = augmentation.puzzles(inputs)
        np.testing.assert_array_equal(np.sort(shuffled, axis=1), np.sort(inputs, axis=1))
        np.testing.assert_array_equal(shuffled >= 2, inputs >= 2)          # END stays after the list
        np.testing.assert_array_equal(augmentation.answers(labels), labels)
        np.testing.assert_array_equal(task.answer_tokens(shuffled), labels)


def test_graph_relabelling_moves_the_source_with_its_node() -> None:
    task = GraphDistanceTask(6)
    inputs, labels = real_rows(task)
    augmentation = task.augmentations(2, seed=0)[1]
    assert isinstance(augmentation, CellPermutation)
    graphs = puzzles_of(task, augmentation.puzzles(inputs))
    distances = bfs_distances(np.stack([g.adjacency for g in graphs]), np.array([g.source for g in graphs]))
    np.testing.assert_array_equal(task.decode(augmentation.answers(labels)), distances)


def test_prefix_sum_affine_map_is_the_sum_of_the_mapped_digits() -> None:
    task = PrefixSumTask(max_length=9, modulus=10)
    inputs, labels = real_rows(task)
    for augmentation in task.augmentations(12, seed=4):
        np.testing.assert_array_equal(augmentation.answers(labels), task.answer_tokens(augmentation.puzzles(inputs)))


def test_cell_permutation_needs_permutations() -> None:
    with pytest.raises(ValueError, match="cells must be a permutation"):
        CellPermutation("bad", np.array([0, 0, 1]), np.arange(3))
    assert CellPermutation("same", np.arange(4), np.arange(3)).key() == IDENTITY.key()
    assert isinstance(IDENTITY, Augmentation)
