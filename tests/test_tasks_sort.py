"""The sort task: seeded lists of several lengths, an exact checker, text in and out, and the whole user path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.errors import ConfigError, DataError
from latentloop.tasks import get_task, task_class, task_of_dataset
from latentloop.tasks.sort import END, SortOptions, SortTask, sorted_tokens


def build(out, **options):
    values = {"num_train": 200, "num_test": 50, **options}
    return SortTask.build(out, SortOptions(task="sort", **values), log=lambda _: None)


def arrays(root):
    return {f"{split}/{kind}": np.load(root / split / f"all__{kind}.npy")
            for split in ("train", "test") for kind in ("inputs", "labels")}


def test_registered_with_encoding_parameters_that_round_trip():
    task = get_task("sort", {"max_length": 7, "alphabet": 5})
    assert task_class("sort") is SortTask
    assert (task.vocab_size, task.seq_len) == (7, 7)
    assert get_task("sort", task.params()).params() == {"max_length": 7, "alphabet": 5}
    with pytest.raises(DataError, match="bad parameters"):
        get_task("sort", {"size": 3})
    with pytest.raises(DataError, match="alphabet"):
        SortTask(alphabet=1)


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    build(tmp_path / "a", seed=3)
    build(tmp_path / "b", seed=3)
    build(tmp_path / "c", seed=4)
    a, b, c = arrays(tmp_path / "a"), arrays(tmp_path / "b"), arrays(tmp_path / "c")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train/inputs"], c["train/inputs"])
    assert not np.array_equal(a["test/inputs"], c["test/inputs"])


def test_lengths_labels_and_a_test_split_of_unseen_lists(tmp_path):
    summary = build(tmp_path / "d", min_length=2, train_length=5, max_length=9, num_train=500, num_test=200)
    assert "training lists have 2..5 numbers, test lists 2..9" in summary
    data = arrays(tmp_path / "d")
    task = task_of_dataset(tmp_path / "d")
    assert task.params() == {"max_length": 9, "alphabet": 10}
    for split in ("train", "test"):
        inputs, labels = data[f"{split}/inputs"], data[f"{split}/labels"]
        assert inputs.shape[1] == 9 and inputs.min() >= 1 and inputs.max() < task.vocab_size
        puzzles, answers = task.decode(inputs), task.decode(labels)
        assert all(task.check(p, a) for p, a in zip(puzzles, answers))
        assert np.array_equal(labels, sorted_tokens(inputs))
        lengths = [len(p) for p in puzzles]
        assert min(lengths) >= 2 and max(lengths) <= (5 if split == "train" else 9)
        # The cells past the list are END in the puzzle and in its (supervised) answer.
        assert np.array_equal(inputs == END, labels == END)
    assert max(len(p) for p in task.decode(data["test/inputs"])) > 5   # longer than any training list
    train = {row.tobytes() for row in data["train/inputs"]}
    test = [row.tobytes() for row in data["test/inputs"]]
    assert len(set(test)) == len(test) and not train & set(test)


def test_impossible_or_inconsistent_options_are_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train_length"):
        build(tmp_path / "e", train_length=20, max_length=12)
    with pytest.raises(ConfigError, match="test_length"):
        build(tmp_path / "e", test_length=13)
    with pytest.raises(ConfigError, match="not training lists"):   # 2 + 4 lists of 1..2 bits, all drawn already
        build(tmp_path / "e", alphabet=2, train_length=2, max_length=2, num_train=500, num_test=5)


def test_text_encoding_and_checker():
    task = SortTask(max_length=6, alphabet=10)
    puzzle = task.parse("3, 1 2")
    assert puzzle == [3, 1, 2] and task.parse("[3,1,2]") == puzzle
    tokens = task.encode([puzzle])
    assert tokens.tolist() == [[5, 3, 4, END, END, END]]
    assert task.decode(tokens) == [puzzle]
    answer = task.decode(task.reference(puzzle)[None])[0]
    assert answer == [1, 2, 3] and task.check(puzzle, answer)
    assert task.parse(task.one_line(answer)) == answer and task.format(answer) == "1 2 3"
    assert not task.check(puzzle, [1, 2]) and not task.check(puzzle, [1, 3, 2]) and not task.check(puzzle, [1, 2, 4])
    # An END cell inside the answer decodes to -1: never a right answer, though the cells after it may be.
    holed = task.decode(np.array([[3, END, 4, 5, END, END]]))[0]
    assert holed == [1, -1, 2, 3] and not task.check(puzzle, holed) and task.one_line(holed) == "1 _ 2 3"
    assert task.decode(np.full((1, 6), END)) == [[]] and task.format([]) == "(no numbers)"


@pytest.mark.parametrize("text, message", [
    ("", "no numbers"), ("  ,  ", "no numbers"), ("1 2 3 4 5 6 7", "7 numbers, more than this model's 6"),
    ("3 10", "'10' is not a number 0..9"), ("3 -1", "'-1' is not a number"), ("1.5", "'1.5' is not a number"),
    ("a b", "'a' is not a number"),
])
def test_bad_puzzles_are_one_data_error_saying_what_was_expected(text, message):
    with pytest.raises(DataError, match=message) as info:
        SortTask(max_length=6, alphabet=10).parse(text)
    assert "expected 1 to 6 numbers 0..9" in str(info.value)


def test_per_length_metrics_and_pictures():
    task = SortTask(max_length=4, alphabet=3)
    inputs = task.encode([[2, 0], [1], [2, 1, 0, 0], [0, 1]])
    labels = sorted_tokens(inputs)
    wrong = labels.copy()
    wrong[3, 0] = END
    tally = task.metrics(None, None, None)
    tally.update(np.zeros(4), inputs, wrong, np.ones(4))
    assert tally.metrics() == {"sort/exact@L=1": 1.0, "sort/exact@L=2": 0.5, "sort/exact@L=4": 1.0}
    assert "2: 50.0%" in tally.report()
    style, viewer = task.style(), task.viewer_style()
    assert (style.rows, style.cols) == (1, 4) and style.text(END) == "" and style.text(4) == "2"
    assert len({style.color(t) for t in range(task.vocab_size)}) == task.vocab_size
    assert len(viewer.labels) == len(viewer.colors) == task.vocab_size and viewer.blank == END


def test_data_command_writes_a_sort_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["data", "sort", "--out", str(out), "--num-train", "64", "--num-test", "16", "--alphabet", "5",
                 "--max-length", "6", "--train-length", "4"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "train" / "dataset.json").read_text())
    assert meta["task"] == "sort" and meta["task_params"] == {"max_length": 6, "alphabet": 5}
    assert (meta["vocab_size"], meta["seq_len"]) == (7, 6)
    assert main(["data", "sort", "--out", str(tmp_path / "bad"), "--train-length", "30"]) == 2
    assert "train_length" in capsys.readouterr().err


def test_train_briefly_then_solve_from_the_command_line(tmp_path, capsys):
    from latentloop.api import DATA_OPTIONS_FILE, prepare_run
    from latentloop.training.loop import train

    data, run = tmp_path / "data", tmp_path / "run"
    cfg = prepare_run("cpu-sort", [
        f"data_path={data}", f"out_dir={run}", "data.num_train=256", "data.num_test=32", "data.max_length=6",
        "data.train_length=4", "data.test_length=6", "hidden_size=32", "num_heads=2", "layers=1", "T=1", "n=1",
        "N_sup=2", "puzzle_emb_ndim=32", "global_batch_size=32", "epochs=2", "eval_interval=1"], log=lambda _: None)
    assert json.loads((data / DATA_OPTIONS_FILE).read_text())["num_train"] == 256   # recorded by the build
    again = prepare_run("cpu-sort", [f"data_path={data}", "data.num_train=256", "data.num_test=32",
                                     "data.max_length=6", "data.train_length=4", "data.test_length=6"], log=print)
    assert again.data == cfg.data          # the same options reuse the dataset (other options: tests/test_bad_inputs)
    result = train(cfg, progress=False, log=lambda *_: None)
    assert result.final_eval is not None and result.final_eval.num_examples == 32
    assert any(key.startswith("sort/exact@L=") for key in result.final_eval.metrics)
    capsys.readouterr()
    code = main(["solve", "3 1 2", "--checkpoint", str(run), "--trace", str(tmp_path / "trace.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "valid" in out and (tmp_path / "trace.png").exists()
    assert main(["solve", "3 1 10", "--checkpoint", str(run)]) == 2
    assert "'10' is not a number 0..9" in capsys.readouterr().err
    assert main(["solve", "3 1 2 0 0 1 1", "--checkpoint", str(run)]) == 2
    assert "more than this model's 6" in capsys.readouterr().err
