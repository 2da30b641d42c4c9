"""solve, trace, sweep, early halting, multi-trajectory inference and the HTML viewer, on a tiny checkpoint trained
here on generated 4x4 Sudoku."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.data import sudoku_grid
from latentloop.data.format import read_split
from latentloop.evaluation.evaluate import evaluate
from latentloop.evaluation.predict import predict, predict_halting, predict_trajectories
from latentloop.inspection.trace import record_trace
from latentloop.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    data, run = root / "sudoku4", root / "run"
    code = main(["train", "cpu-sudoku6", f"data_path={data}", f"out_dir={run}", "data.size=4", "data.num_train=512",
                 "data.num_test=64", "hidden_size=32", "global_batch_size=32", "epochs=2", "eval_interval=2",
                 "lr=3e-3", "--no-progress"])
    assert code == 0
    return data, run


def test_solve_one_puzzle_prints_answer_check_steps_and_trace(trained, tmp_path, capsys):
    data, run = trained
    split, _ = read_split(data / "test")
    puzzle = sudoku_grid.to_string(sudoku_grid.from_tokens(split.inputs[0], sudoku_grid.shape_for_size(4)))
    trace = tmp_path / "trace.png"
    assert main(["solve", puzzle, "--checkpoint", str(run), "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "supervision step(s), halt confidence" in out and ("valid" in out)
    assert trace.stat().st_size > 5_000
    gif = tmp_path / "trace.gif"
    assert main(["solve", puzzle, "--checkpoint", str(run), "--no-halt", "--trace", str(gif)]) == 0
    from PIL import Image
    assert Image.open(gif).n_frames == 1 + load_checkpoint(run)[1].model.N_sup   # the puzzle, then every step


def test_solve_a_file_of_many_puzzles(trained, tmp_path, capsys):
    data, run = trained
    split, _ = read_split(data / "test")
    grids = sudoku_grid.from_tokens(np.asarray(split.inputs[:20]), sudoku_grid.shape_for_size(4))
    source = tmp_path / "many.txt"
    source.write_text("".join(sudoku_grid.to_string(g) + "\n" for g in grids))
    answers = tmp_path / "answers.txt"
    assert main(["solve", str(source), "--checkpoint", str(run), "--out", str(answers)]) == 0
    assert "puzzles/s" in capsys.readouterr().out
    assert len(answers.read_text().splitlines()) == 20


def test_solve_rejects_a_bad_puzzle(trained, capsys):
    _, run = trained
    assert main(["solve", "12x4", "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err
    assert "needs 16" in err or "character" in err
    assert len(err.strip().splitlines()) == 1


def test_trace_has_one_frame_per_step_or_recursion(trained):
    data, run = trained
    model, cfg = load_checkpoint(run)
    split, _ = read_split(data / "test")
    frames = record_trace(model, np.asarray(split.inputs[0]))
    assert len(frames) == cfg.model.N_sup and frames[-1].label == f"step {cfg.model.N_sup}"
    frames = record_trace(model, np.asarray(split.inputs[0]), steps=2, per_recursion=True)
    assert len(frames) == 2 * cfg.model.T
    # The last recursion of a step is exactly that step's answer.
    per_step = record_trace(model, np.asarray(split.inputs[0]), steps=2)
    assert np.array_equal(frames[-1].tokens, per_step[-1].tokens)


def test_sweep_has_one_row_per_setting(trained, tmp_path, capsys):
    _, run = trained
    out = tmp_path / "sweep.png"
    assert main(["sweep", str(run), "--steps", "1,2,4", "--T", "1,2", "--halt", "0.5", "-o", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    fixed = [r for r in rows if r["mode"] == "fixed"]
    assert [(r["T"], r["steps"]) for r in fixed] == [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 4)]
    assert [r["mode"] for r in rows if r["mode"] != "fixed"] == ["halt p>0.5"]
    assert out.exists() and "| fixed | 4 |" in capsys.readouterr().out


def test_halting_matches_fixed_steps_when_nobody_halts_early(trained):
    data, run = trained
    model, _ = load_checkpoint(run)
    split, _ = read_split(data / "test")
    inputs = np.asarray(split.inputs[:40], dtype=np.int64)
    ids = np.zeros(40, dtype=np.int64)
    fixed = predict(model, inputs, steps=3)
    never = predict_halting(model, inputs, ids, steps=3, batch_size=16, threshold=1 - 1e-12)  # continuous batches
    assert np.array_equal(fixed.tokens, never.tokens) and (never.steps == 3).all()
    eager = predict_halting(model, inputs, ids, steps=3, batch_size=16, threshold=1e-12)       # halt after 1 step
    assert np.array_equal(eager.tokens, predict(model, inputs, steps=1).tokens) and (eager.steps == 1).all()


def test_one_noise_free_trajectory_is_plain_inference(trained):
    data, run = trained
    model, _ = load_checkpoint(run)
    split, meta = read_split(data / "test")
    inputs = np.asarray(split.inputs[:24], dtype=np.int64)
    ids = np.zeros(24, dtype=np.int64)
    single = predict_trajectories(model, inputs, ids, steps=2, batch_size=32, trajectories=1, noise=0.0)
    assert np.array_equal(single.tokens, predict(model, inputs, steps=2).tokens)
    many = predict_trajectories(model, inputs, ids, steps=2, batch_size=32, trajectories=4, noise=0.5, seed=1)
    again = predict_trajectories(model, inputs, ids, steps=2, batch_size=32, trajectories=4, noise=0.5, seed=1)
    assert np.array_equal(many.tokens, again.tokens)
    result = evaluate(model, split, meta, 32, "cpu", steps=2, trajectories=4, noise=0.5)
    assert result.num_examples == 64


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_html_viewer_loads_in_headless_chromium_without_errors(trained, tmp_path, capsys):
    data, run = trained
    preds = tmp_path / "preds.npz"
    assert main(["eval", str(run), "--save-predictions", str(preds)]) == 0
    page = tmp_path / "view.html"
    assert main(["view", str(preds), "-o", str(page)]) == 0
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'class="grid"' in result.stdout            # the script ran and drew the grids
    assert "exactly right" in result.stdout
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert main(["view", str(data), "-o", str(tmp_path / "data.html")]) == 0


def test_eval_with_tta_and_ensembles(trained, tmp_path, capsys):
    data, run = trained
    assert main(["eval", str(run)]) == 0
    single = capsys.readouterr().out
    assert main(["eval", str(run), "--tta", "4", "--tta-seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 copies per puzzle (4 transform(s) x 1 model(s)) combined by vote: 16.0 supervision steps" in out
    exact = [line.split("exact accuracy ")[1].split("%")[0] for line in (single, out)]
    assert main(["eval", str(run), str(run), "--ensemble", "vote"]) == 0   # two equal models: the single answers
    twice = capsys.readouterr().out
    scores = single.split("exact accuracy ")[1].split(", halting")[0]   # exact and cell accuracy
    assert f"exact accuracy {scores}, halting" in twice and "100.0% of copies agree" in twice
    from latentloop.api import evaluate_checkpoint
    tta = evaluate_checkpoint(run, tta=4, tta_seed=1).result
    assert f"{tta.exact_accuracy:.2%}" == exact[1] + "%" and 0 < tta.metrics["agreement"] <= 1
    capsys.readouterr()
    other = tmp_path / "sort-run"   # the same sizes (vocab 6, seq_len 16) but another task: refused
    shutil.copytree(run, other)
    for config in other.rglob("config.json"):
        record = json.loads(config.read_text())
        (record.get("config") or record)["task"] = {"name": "sort", "params": {"max_length": 16, "alphabet": 4}}
        config.write_text(json.dumps(record))
    assert main(["eval", str(run), str(other), "--ensemble", "halt-first"]) == 2
    err = capsys.readouterr().err.strip()
    assert "share task and encoding" in err and len(err.splitlines()) == 1
    assert main(["eval", str(run), "--tta", "0"]) == 2
    assert main(["eval", str(run), "--tta", "2", "--halt-early", "--trajectories", "2"]) == 0   # they combine
    assert "combined by vote" in capsys.readouterr().out


def test_solve_and_sweep_with_tta(trained, tmp_path, capsys):
    data, run = trained
    split, _ = read_split(data / "test")
    grids = sudoku_grid.from_tokens(np.asarray(split.inputs[:12]), sudoku_grid.shape_for_size(4))
    source = tmp_path / "many.txt"
    source.write_text("".join(sudoku_grid.to_string(g) + "\n" for g in grids))
    assert main(["solve", str(source), "--checkpoint", str(run), "--checkpoint", str(run), "--ensemble", "vote",
                 "--tta", "3", "--no-halt"]) == 0
    assert "of 12 puzzles validly" in capsys.readouterr().out
    assert main(["solve", str(source), "--checkpoint", str(run), "--checkpoint", str(run)]) == 2
    out = tmp_path / "sweep.png"
    assert main(["sweep", str(run), "--steps", "1,4", "--halt", "", "--tta", "2,4", "--trajectories", "2",
                 "--ensemble", str(run), "-o", str(out)]) == 0
    rows = {r["mode"]: r for r in json.loads(out.with_suffix(".json").read_text())}
    assert list(rows) == ["fixed", "tta 2", "tta 4", "trajectories 2", "ensemble 2 vote", "ensemble 2 halt-first"]
    assert [rows[m]["steps_per_puzzle"] for m in ("fixed", "tta 2", "tta 4", "trajectories 2", "ensemble 2 vote")] \
        == [4, 8, 16, 8, 8]   # TTA, trajectories and the vote at the trained N_sup=4: every copy's steps count
    assert rows["ensemble 2 vote"]["exact_accuracy"] == rows["fixed"]["exact_accuracy"]
