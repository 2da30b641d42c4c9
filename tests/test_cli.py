"""The command line: every command is documented, and bad input gives one line on stderr and exit code 2."""

import re
import subprocess
import sys

import pytest

from latentloop.cli import build_parser, main


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_every_command():
    text = build_parser().format_help()
    for command in ("data", "train", "eval", "presets", "plot"):
        assert command in text


def test_presets_lists_and_shows(capsys):
    code, out, _ = run(["presets"], capsys)
    assert code == 0 and "cpu-sudoku6" in out and "trm-sudoku-mlp" in out
    code, out, _ = run(["presets", "trm-sudoku-att"], capsys)
    assert code == 0 and '"T": 3' in out


@pytest.mark.parametrize("argv, message", [
    (["train", "no-such-preset"], "unknown preset"),
    (["train", "cpu-sudoku6", "hidden_sise=64"], "did you mean"),
    (["train", "cpu-sudoku6", "T=abc"], "expects int"),
    (["train", "cpu-sudoku6", "data_path=/nonexistent/x", "data.task="], "not found"),
    (["eval", "/nonexistent/run"], "does not exist"),
    (["plot", "/nonexistent/run"], "not found"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_csvs(tmp_path, capsys):
    wrong_columns = tmp_path / "wrong.csv"
    wrong_columns.write_text("puzzle,solution\n" + "." * 81 + "," + "1" * 81 + "\n")
    code, _, err = run(["data", "sudoku", "--csv", str(wrong_columns), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "wrong.csv" in err and len(err.strip().splitlines()) == 1
    malformed = tmp_path / "bad.csv"
    malformed.write_text("source,question,answer,rating\nx,12x4,1234,0\n")
    code, _, err = run(["data", "sudoku", "--csv", str(malformed), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "bad.csv" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["data", "sudoku", "--csv", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "missing.csv" in err


def test_corrupt_dataset_file(tmp_path, capsys):
    code, _, _ = run(["data", "sudoku", "--size", "4", "--num-train", "20", "--num-test", "5", "--out",
                      str(tmp_path / "d"), "--workers", "1"], capsys)
    assert code == 0
    inputs = tmp_path / "d" / "train" / "all__inputs.npy"
    inputs.write_bytes(inputs.read_bytes()[:100])
    code, _, err = run(["train", "cpu-sudoku6", f"data_path={tmp_path / 'd'}", f"out_dir={tmp_path / 'r'}"], capsys)
    assert code == 2 and "all__inputs.npy" in err and len(err.strip().splitlines()) == 1


def test_console_script_runs_without_traceback():
    result = subprocess.run([sys.executable, "-m", "latentloop.cli", "train", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("latentloop: error: unknown preset") and "Traceback" not in result.stderr


def test_train_then_eval_end_to_end(tmp_path, capsys):
    """The whole path a user takes: generate data, train (data made on first use), evaluate, plot."""
    data, out = tmp_path / "sudoku4", tmp_path / "run"
    code, out_text, err = run(["train", "cpu-sudoku6", f"data_path={data}", f"out_dir={out}", "data.size=4",
                               "data.num_train=128", "data.num_test=32", "hidden_size=32", "global_batch_size=32",
                               "epochs=2", "eval_interval=1", "--no-progress"], capsys)
    assert code == 0, err
    assert "Held-out exact accuracy" in out_text and "after each supervision step" in out_text
    assert re.search(r"Time: data generation \d+ s, training \d+ s \([\d.]+ steps/s\), held-out evaluation \d+ s",
                     out_text), out_text
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "metrics.jsonl").exists()
    code, out_text, err = run(["eval", str(out), "--halt-early"], capsys)
    assert code == 0, err
    assert "exact accuracy" in out_text and "mean steps used" in out_text
    code, out_text, _ = run(["plot", str(out), "-o", str(tmp_path / "c.png")], capsys)
    assert code == 0 and (tmp_path / "c.png").exists()
