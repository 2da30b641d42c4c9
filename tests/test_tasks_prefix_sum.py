"""The prefix-sum task: seeded digit sequences of several lengths, an exact checker, text in and out, and the whole
user path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.errors import ConfigError, DataError
from latentloop.tasks import get_task, task_class, task_of_dataset
from latentloop.tasks.prefix_sum import END, PrefixSumOptions, PrefixSumTask, prefix_sum_tokens


def build(out, **options):
    values = {"num_train": 200, "num_test": 50, **options}
    return PrefixSumTask.build(out, PrefixSumOptions(task="prefix-sum", **values), log=lambda _: None)


def arrays(root):
    return {f"{split}/{kind}": np.load(root / split / f"all__{kind}.npy")
            for split in ("train", "test") for kind in ("inputs", "labels")}


def test_registered_with_encoding_parameters_that_round_trip():
    task = get_task("prefix-sum", {"max_length": 9, "modulus": 2})
    assert task_class("prefix-sum") is PrefixSumTask
    assert (task.vocab_size, task.seq_len) == (4, 9)
    assert get_task("prefix-sum", task.params()).params() == {"max_length": 9, "modulus": 2}
    with pytest.raises(DataError, match="bad parameters"):
        get_task("prefix-sum", {"alphabet": 3})
    with pytest.raises(DataError, match="modulus"):
        PrefixSumTask(modulus=1)


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    build(tmp_path / "a", seed=5)
    build(tmp_path / "b", seed=5)
    build(tmp_path / "c", seed=6)
    a, b, c = arrays(tmp_path / "a"), arrays(tmp_path / "b"), arrays(tmp_path / "c")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train/inputs"], c["train/inputs"])
    assert not np.array_equal(a["test/inputs"], c["test/inputs"])


@pytest.mark.parametrize("modulus", [2, 10])
def test_lengths_labels_and_a_test_split_of_unseen_sequences(tmp_path, modulus):
    summary = build(tmp_path / "d", modulus=modulus, min_length=2, train_length=6, max_length=10, num_train=500,
                    num_test=200)
    assert "training sequences have 2..6 digits, test sequences 2..10" in summary
    data = arrays(tmp_path / "d")
    task = task_of_dataset(tmp_path / "d")
    assert task.params() == {"max_length": 10, "modulus": modulus}
    for split in ("train", "test"):
        inputs, labels = data[f"{split}/inputs"], data[f"{split}/labels"]
        assert inputs.shape[1] == 10 and inputs.min() >= 1 and inputs.max() < task.vocab_size
        puzzles, answers = task.decode(inputs), task.decode(labels)
        assert all(task.check(p, a) for p, a in zip(puzzles, answers))
        assert np.array_equal(labels, prefix_sum_tokens(inputs, modulus))
        lengths = [len(p) for p in puzzles]
        assert min(lengths) >= 2 and max(lengths) <= (6 if split == "train" else 10)
        assert np.array_equal(inputs == END, labels == END)   # past the sequence: END, supervised
    assert max(len(p) for p in task.decode(data["test/inputs"])) > 6   # longer than any training sequence
    train = {row.tobytes() for row in data["train/inputs"]}
    test = [row.tobytes() for row in data["test/inputs"]]
    assert len(set(test)) == len(test) and not train & set(test)


def test_impossible_or_inconsistent_options_are_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train_length"):
        build(tmp_path / "e", min_length=5, train_length=4)
    with pytest.raises(ConfigError, match="modulus"):
        build(tmp_path / "e", modulus=1)
    with pytest.raises(ConfigError, match="not training sequences"):   # 2 + 4 + 8 sequences, all drawn already
        build(tmp_path / "e", modulus=2, train_length=3, max_length=3, num_train=1000, num_test=5)


def test_text_encoding_and_checker():
    parity = PrefixSumTask(max_length=6, modulus=2)
    puzzle = parity.parse("1011")
    assert puzzle == [1, 0, 1, 1] and parity.parse("1 0 1 1") == puzzle and parity.parse("[1,0,1,1]") == puzzle
    tokens = parity.encode([puzzle])
    assert tokens.tolist() == [[3, 2, 3, 3, END, END]] and parity.decode(tokens) == [puzzle]
    answer = parity.decode(parity.reference(puzzle)[None])[0]
    assert answer == [1, 1, 0, 1] and parity.check(puzzle, answer)
    assert parity.parse(parity.one_line(answer)) == answer and parity.format(answer) == "1 1 0 1"
    assert not parity.check(puzzle, [1, 1, 0]) and not parity.check(puzzle, [1, 0, 1, 1])
    holed = parity.decode(np.array([[3, END, 2, 3, END, END]]))[0]
    assert holed == [1, -1, 0, 1] and not parity.check(puzzle, holed) and parity.one_line(holed) == "1 _ 0 1"
    assert parity.decode(np.full((1, 6), END)) == [[]] and parity.format([]) == "(no digits)"
    digits = PrefixSumTask(max_length=6, modulus=10)
    assert digits.check([7, 5, 9], [7, 2, 1]) and digits.parse("759") == [7, 5, 9]
    wide = PrefixSumTask(max_length=6, modulus=12)   # digits up to 11: only separated numbers
    assert wide.parse("11 3") == [11, 3] and wide.check([11, 3], [11, 2])


@pytest.mark.parametrize("text, message", [
    ("", "no digits"), (" , ", "no digits"), ("1011101", "7 digits, more than this model's 6"),
    ("1 2", "'2' is not a digit 0..1"), ("102", "'2' is not a digit 0..1"), ("1 -1", "'-1' is not a digit"),
    ("x", "'x' is not a digit"),
])
def test_bad_puzzles_are_one_data_error_saying_what_was_expected(text, message):
    with pytest.raises(DataError, match=message) as info:
        PrefixSumTask(max_length=6, modulus=2).parse(text)
    assert "expected 1 to 6 digits 0..1" in str(info.value)


def test_per_length_metrics_and_pictures():
    task = PrefixSumTask(max_length=4, modulus=3)
    inputs = task.encode([[2, 2], [1], [2, 1, 0, 2], [0, 1]])
    labels = prefix_sum_tokens(inputs, 3)
    assert task.decode(labels) == [[2, 1], [1], [2, 0, 0, 2], [0, 1]]
    wrong = labels.copy()
    wrong[0, 1] = 2
    tally = task.metrics(None, None, None)
    tally.update(np.zeros(4), inputs, wrong, np.ones(4))
    assert tally.metrics() == {"prefix-sum/exact@L=1": 1.0, "prefix-sum/exact@L=2": 0.5,
                               "prefix-sum/exact@L=4": 1.0}
    assert "2: 50.0%" in tally.report()
    style, viewer = task.style(), task.viewer_style()
    assert (style.rows, style.cols) == (1, 4) and style.text(END) == "" and style.text(4) == "2"
    assert len({style.color(t) for t in range(task.vocab_size)}) == task.vocab_size
    assert len(viewer.labels) == len(viewer.colors) == task.vocab_size and viewer.blank == END


def test_data_command_writes_a_prefix_sum_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["data", "prefix-sum", "--out", str(out), "--num-train", "64", "--num-test", "16", "--modulus", "3",
                 "--max-length", "8", "--train-length", "5"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "train" / "dataset.json").read_text())
    assert meta["task"] == "prefix-sum" and meta["task_params"] == {"max_length": 8, "modulus": 3}
    assert (meta["vocab_size"], meta["seq_len"]) == (5, 8)
    assert main(["data", "prefix-sum", "--out", str(tmp_path / "bad"), "--test-length", "40"]) == 2
    assert "test_length" in capsys.readouterr().err


def test_train_briefly_then_solve_from_the_command_line(tmp_path, capsys):
    from latentloop.api import prepare_run
    from latentloop.training.loop import train

    data, run = tmp_path / "data", tmp_path / "run"
    cfg = prepare_run("cpu-prefix-sum", [
        f"data_path={data}", f"out_dir={run}", "data.modulus=2", "data.num_train=256", "data.num_test=32",
        "data.max_length=8", "data.train_length=6", "data.test_length=8", "hidden_size=32", "num_heads=2",
        "layers=1", "T=1", "n=1", "N_sup=2", "puzzle_emb_ndim=32", "global_batch_size=32", "epochs=2", "eval_interval=1"], log=lambda _: None)
    result = train(cfg, progress=False, log=lambda *_: None)
    assert result.final_eval is not None and result.final_eval.num_examples == 32
    assert any(key.startswith("prefix-sum/exact@L=") for key in result.final_eval.metrics)
    capsys.readouterr()
    code = main(["solve", "1 0 1", "--checkpoint", str(run), "--trace", str(tmp_path / "trace.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "valid" in out and (tmp_path / "trace.png").exists()
    assert main(["solve", "1 0 2", "--checkpoint", str(run)]) == 2
    assert "'2' is not a digit 0..1" in capsys.readouterr().err
