"""Maze: parsing and its errors, the generator (checked by an independent BFS), CSV, augmentation, builders."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.data import maze
from latentloop.data.format import read_split
from latentloop.data.grids import NUM_DIHEDRAL, dihedral
from latentloop.errors import DataError

SIZE, MIN_PATH = 8, 14


def reference_distance(question: np.ndarray, passable=None) -> int:
    """Shortest S-G moves by a plain queue BFS, written independently of the library; -1 when unreachable."""
    side = question.shape[0]
    if passable is None:
        passable = question != maze.WALL
    start = tuple(np.argwhere(question == maze.START)[0])
    goal = tuple(np.argwhere(question == maze.GOAL)[0])
    dist = {start: 0}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < side and 0 <= nc < side and passable[nr, nc] and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                queue.append((nr, nc))
    return dist.get(goal, -1)


def assert_labelled_shortest(question: np.ndarray, answer: np.ndarray) -> int:
    """The answer is the question plus exactly one shortest path of 'o' cells; returns its length in moves."""
    d = reference_distance(question)
    assert d > 0
    path = answer == maze.PATH
    assert np.array_equal(np.where(path, maze.OPEN, answer), question), "only open cells may become path"
    assert path.sum() == d - 1, "a shortest path has d-1 cells between S and G"
    on_path = path | (answer == maze.START) | (answer == maze.GOAL)
    assert reference_distance(question, passable=on_path) == d, "the 'o' cells join S to G"
    return d


@pytest.fixture(scope="module")
def mazes() -> maze.Mazes:
    return maze.generate_mazes(40, size=SIZE, min_path=MIN_PATH, seed=3, workers=1)


def test_generated_mazes_meet_the_recipe(mazes):
    assert mazes.questions.shape == (40, SIZE, SIZE) and mazes.questions.dtype == np.uint8
    cells = SIZE * SIZE
    for q, a, rating in zip(mazes.questions, mazes.answers, mazes.ratings):
        walls = int((q == maze.WALL).sum())
        assert round(0.3 * cells) <= walls <= round(0.5 * cells)
        assert (q == maze.START).sum() == 1 and (q == maze.GOAL).sum() == 1 and not (q == maze.PATH).any()
        d = assert_labelled_shortest(q, a)
        assert d > MIN_PATH and d == rating
    assert len({q.tobytes() for q in mazes.questions}) == len(mazes), "no maze twice"


def test_generation_is_seeded_and_independent_of_workers(mazes):
    again = maze.generate_mazes(40, size=SIZE, min_path=MIN_PATH, seed=3, workers=2)
    assert np.array_equal(again.questions, mazes.questions) and np.array_equal(again.answers, mazes.answers)
    other = maze.generate_mazes(5, size=SIZE, min_path=MIN_PATH, seed=4, workers=1)
    assert not np.array_equal(other.questions, mazes.questions[:5])


def test_impossible_recipe_and_bad_arguments_fail_clearly():
    with pytest.raises(DataError, match="lower min_path"):
        maze.generate_mazes(1, size=3, min_path=20, workers=1)
    with pytest.raises(DataError, match="maze size"):
        maze.generate_mazes(1, size=65)
    with pytest.raises(DataError, match="density"):
        maze.generate_mazes(1, size=8, density=(0.5, 0.3))


def test_dihedral_augmentation_keeps_paths_valid(mazes):
    images = set()
    for t in range(NUM_DIHEDRAL):
        q, a = dihedral(mazes.questions[:5], t), dihedral(mazes.answers[:5], t)
        for qi, ai, rating in zip(q, a, mazes.ratings[:5]):
            assert assert_labelled_shortest(qi, ai) == rating
        images.add(q[0].tobytes())
    assert len(images) == NUM_DIHEDRAL


def test_text_round_trips(mazes):
    q, a = mazes.questions[0], mazes.answers[0]
    assert np.array_equal(maze.parse_maze(maze.format_maze(q)), q)
    assert np.array_equal(maze.parse_maze(maze.to_string(q)), q)
    assert np.array_equal(maze.parse_maze(maze.format_maze(a), answer=True), a)
    assert np.array_equal(maze.from_tokens(maze.to_tokens(q), SIZE), q)
    assert len(maze.to_string(q)) == SIZE * SIZE and set(maze.to_string(a)) <= set(maze.CHARSET)


@pytest.mark.parametrize("text, message", [
    ("S  \n  G\n", "rows x 3 columns; mazes must be square"),
    ("S# \n G\n # \n", "ragged: row 2 has 2 characters"),
    ("S  G ", "5 characters on one line"),
    ("S.#\n.x.\n..G\n", "unknown character 'x' at row 2, column 2"),
    ("...\n.#.\n..G\n", "no start 'S'"),
    ("S..\n.#.\n...\n", "no goal 'G'"),
    ("S.S\n.#.\n..G\n", "2 start 'S'"),
    ("S.#\n.##\n#.G\n", "goal G cannot be reached"),
    ("Soo\n.#o\n..G\n", "already has a path cell 'o'"),
    ("", "is empty"),
])
def test_bad_mazes_raise_one_line(text, message):
    with pytest.raises(DataError, match=message) as info:
        maze.parse_maze(text)
    assert "\n" not in str(info.value)


def test_size_mismatch_is_reported():
    with pytest.raises(DataError, match="this model solves 4x4"):
        maze.parse_maze("S..\n.#.\n..G", size=4)


def test_csv_round_trip_and_builders_agree(mazes, tmp_path):
    path = maze.write_csv(tmp_path / "m.csv", mazes)
    back, sources = maze.read_csv(path)
    assert sources == ["generated"] * len(mazes)
    for name in ("questions", "answers", "ratings"):
        assert np.array_equal(getattr(back, name), getattr(mazes, name))

    generated = maze.build_generated(tmp_path / "gen", num_train=12, num_test=6, size=SIZE, min_path=MIN_PATH,
                                     seed=1, workers=1, augment=True)
    from_csv = maze.build_from_csv(tmp_path / "gen" / "train.csv", tmp_path / "gen" / "test.csv",
                                   tmp_path / "csv", augment=True)
    assert str(generated) == str(from_csv).replace(str(tmp_path / "csv"), str(tmp_path / "gen"))
    for split in ("train", "test"):
        a, meta = read_split(tmp_path / "gen" / split)
        b, _ = read_split(tmp_path / "csv" / split)
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
        assert (meta.vocab_size, meta.seq_len, meta.ignore_label_id) == (6, SIZE * SIZE, 0)
    train, meta = read_split(tmp_path / "gen" / "train")
    test, _ = read_split(tmp_path / "gen" / "test")
    assert meta.total_groups == 12 and train.num_puzzles == 12 * 8 and np.all(np.diff(train.group_indices) == 8)
    assert test.num_puzzles == 6
    side = (SIZE, SIZE)
    for q, a in zip(train.inputs, train.labels):
        assert_labelled_shortest(q.reshape(side), a.reshape(side))
    train_mazes = {q.tobytes() for q in train.inputs}
    assert not train_mazes & {q.tobytes() for q in test.inputs}, "train and test are disjoint"


def test_csv_errors_name_file_and_line(mazes, tmp_path):
    good = maze.to_string(mazes.answers[0])
    question = maze.to_string(mazes.questions[0])
    longer = mazes.answers[0].copy()
    longer[(longer == maze.OPEN)] = maze.PATH  # every open cell marked: not one shortest path
    cases = [
        (f"source,question,answer,rating\nx,{question},{maze.to_string(longer)},1\n", "m.csv:2: answer is not one"),
        (f"source,question,answer,rating\nx,{question[:-1]},{good},1\n", "m.csv:2: question has 63 characters"),
        (f"source,question,answer,rating\nx,{question},{good},high\n", "rating 'high' is not a number"),
        (f"source,question,answer\nx,{question},{good}\n", "lacks column"),
        ("source,question,answer,rating\n", "no maze rows"),
    ]
    for text, message in cases:
        (tmp_path / "m.csv").write_text(text)
        with pytest.raises(DataError, match=message):
            maze.read_csv(tmp_path / "m.csv")


def test_cli_data_maze(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["data", "maze", "--size", "6", "--min-path", "8", "--num-train", "5", "--num-test", "3", "--workers",
            "1", "--out", str(out)]
    assert main(argv) == 0
    assert "5 mazes x 1 variants" in capsys.readouterr().out
    assert main(["data", "maze", "--csv", str(out / "train.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "needs --test-csv" in capsys.readouterr().err
    assert main(["data", "maze", "--csv", str(out / "train.csv"), "--test-csv", str(out / "test.csv"), "--aug",
                 "--out", str(tmp_path / "y")]) == 0
    assert "5 mazes x 8 variants = 40 examples" in capsys.readouterr().out


def test_preset_generates_maze_data_on_first_use(tmp_path):
    from latentloop.api import prepare_run

    data = tmp_path / "m"
    cfg = prepare_run("cpu-maze", [f"data_path={data}", "data.size=6", "data.min_path=8", "data.num_train=4",
                                   "data.num_test=2", "data.num_aug=7"], log=lambda _: None)
    assert cfg.data.task == "maze"
    split, meta = read_split(Path(data) / "train")
    assert meta.seq_len == 36 and split.num_puzzles == 32
    with pytest.raises(Exception, match="0 or 7"):
        prepare_run("cpu-maze", [f"data_path={tmp_path / 'n'}", "data.num_aug=3"], log=lambda _: None)
