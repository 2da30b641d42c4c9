"""init_from: a run started from a checkpoint's weights on a dataset with other puzzles. Rows of puzzles the
checkpoint knows (by identifier name) are its rows, new ones start as the blank or the mean row; init_train picks
what trains; a resumed run keeps its own weights; a checkpoint of another task, vocabulary or architecture is one
line, exit 2, nothing written. ARC test-time training end to end: cpu-arc-pretrain, then cpu-arc-ttt from it."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import latentloop.training.loop as loop
from latentloop.api import prepare_run
from latentloop.cli import main
from latentloop.config import apply_overrides, load_preset
from latentloop.data.arc_grid import parse_name
from latentloop.data.format import (DatasetMetadata, PuzzleSplit, read_identifiers, read_split, write_identifiers,
                                    write_split)
from latentloop.models.official_weights import export_official
from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint
from latentloop.training.init_from import TABLE
from conftest import write_toy_dataset
from test_training_loop import TINY

PRETRAIN = [f"p{i}" for i in range(8)]      # identifiers 1..8 of the pretraining set
FINETUNE = [f"p{i}" for i in range(4, 12)]  # p4..p7 known (checkpoint rows 5..8), p8..p11 new
KEPT = {0: 0, 1: 5, 2: 6, 3: 7, 4: 8}       # fine-tune row -> checkpoint row (0: the blank identifier)
NEW = [5, 6, 7, 8]
SETTINGS = ["data.task=", "puzzle_emb_lr=1e-2"]


def write_puzzles(root: Path, names: list[str], seed: int) -> Path:
    """A dataset whose puzzles need their embedding: puzzle pK maps each cell x to x + (K mod 3) + 1 (mod 4)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", 16), ("test", 4)):
        inputs = rng.integers(2, 6, size=(len(names) * count, 8), dtype=np.uint8)
        shifts = np.repeat([int(name[1:]) % 3 + 1 for name in names], count)[:, None]
        labels = ((inputs - 2 + shifts) % 4 + 2).astype(np.uint8)
        data = PuzzleSplit.from_counts(inputs=inputs, labels=labels, puzzle_identifiers=range(1, len(names) + 1),
                                       examples_per_puzzle=[count] * len(names), puzzles_per_group=[1] * len(names))
        write_split(root / split, data, DatasetMetadata.for_split(data, vocab_size=6,
                                                                  num_puzzle_identifiers=len(names) + 1))
    write_identifiers(root, ["<blank>", *names])
    return root


def config(data: Path, out: Path, *extra: str):
    return apply_overrides(load_preset("cpu-sudoku6"), TINY + SETTINGS + [f"data_path={data}", f"out_dir={out}",
                                                                          *extra])


def train(cfg, resume: bool = False, log: Callable[[str], None] = lambda _: None):
    return loop.train(cfg, progress=False, resume=resume, log=log)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Two puzzle sets, a 96-step run on the first, a toy set of vocabulary 7 and a 4x4 Sudoku set."""
    root = tmp_path_factory.mktemp("init_from")
    write_puzzles(root / "a", PRETRAIN, seed=0)
    write_puzzles(root / "b", FINETUNE, seed=1)
    write_toy_dataset(root / "vocab7", vocab=7)
    train(config(root / "a", root / "pre", "epochs=24", "eval_interval=24"))
    assert main(["data", "sudoku", "--size", "4", "--num-train", "16", "--num-test", "4",
                 "--out", str(root / "sudoku4")]) == 0
    return root


def spy_on_start(monkeypatch) -> dict[str, torch.Tensor]:
    """Filled with the model's state when the run makes its EMA: after init_from, before any step."""
    start: dict[str, torch.Tensor] = {}

    class StartingEMA(loop.EMA):
        def __init__(self, model, rate):
            start.update({k: v.clone() for k, v in model.state_dict().items()})
            super().__init__(model, rate)

    monkeypatch.setattr(loop, "EMA", StartingEMA)
    return start


def evaluated(run: Path) -> dict[str, torch.Tensor]:
    """The weights a checkpoint evaluates with: the EMA (TINY has ema=true) and the puzzle-embedding table."""
    return load_file(resolve_checkpoint(run) / "model.safetensors")


def dense(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if k != TABLE}


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys() and all(torch.equal(got[k], v) for k, v in want.items())


def assert_rows(table: torch.Tensor, source: torch.Tensor, fill: torch.Tensor) -> None:
    assert table.shape == (9, source.shape[1])
    for row, theirs in KEPT.items():
        assert torch.equal(table[row], source[theirs]), row
    for row in NEW:
        assert torch.allclose(table[row], fill, rtol=1e-6, atol=0), row


def assert_loss_falls(run: Path) -> None:
    """The last quarter of the logged losses averages below 0.8 x the first quarter (one record is noisy: it holds
    the rows that happened to halt)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [r["train/lm_loss"] for r in records if "train/lm_loss" in r]
    quarter = len(curve) // 4
    assert quarter >= 2 and sum(curve[-quarter:]) < 0.8 * sum(curve[:quarter]), curve


def test_fine_tune_starts_from_the_checkpoint_keeps_named_rows_and_learns(world, tmp_path, monkeypatch):
    start = spy_on_start(monkeypatch)
    lines: list[str] = []
    run = tmp_path / "ft"
    train(config(world / "b", run, f"init_from={world / 'pre'}", "epochs=16", "eval_interval=16", "log_interval=4"),
          log=lines.append)
    source = evaluated(world / "pre")
    assert_same(dense(start), dense(source))
    assert not torch.equal(source[TABLE][5], source[TABLE][0])  # the pretraining moved the rows it kept
    assert_rows(start[TABLE], source[TABLE], source[TABLE][0])
    where = resolve_checkpoint(world / "pre")
    assert (f"init_from {where}: EMA weights, 5 of 9 puzzle-embedding rows kept by identifier name, 4 new ones start "
            f"as the blank row; fresh optimizer and schedule; everything trains") in lines
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert (first["init_from"], first["init_rows_kept"], first["init_rows_new"]) == (str(where), 5, 4)
    assert json.loads((run / "config.json").read_text())["train"]["init_from"] == str(world / "pre")
    assert_loss_falls(run)
    final = evaluated(run)
    assert not torch.equal(final[TABLE][NEW[0]], source[TABLE][0])
    assert not torch.equal(final["inner.lm_head.weight"], source["inner.lm_head.weight"])


def test_an_official_checkpoint_file_starts_the_run_the_same_way(world, tmp_path, monkeypatch):
    model, cfg = load_checkpoint(world / "pre")
    official = export_official(model, cfg, tmp_path / "official", step=96)
    start = spy_on_start(monkeypatch)
    train(config(world / "b", tmp_path / "ft", f"init_from={official}", "epochs=1", "eval_interval=1"))
    source = evaluated(world / "pre")
    assert_same(dense(start), dense(source))
    assert_rows(start[TABLE], source[TABLE], source[TABLE][0])


def test_network_only_keeps_the_table_as_it_started_with_mean_rows(world, tmp_path):
    run = tmp_path / "ft"
    train(config(world / "b", run, f"init_from={world / 'pre'}", "init_train=network", "init_new_rows=mean",
              "epochs=8", "eval_interval=8"))
    source, final = evaluated(world / "pre"), evaluated(run)
    assert_rows(final[TABLE], source[TABLE], source[TABLE][1:].mean(dim=0))
    assert not torch.equal(final["inner.lm_head.weight"], source["inner.lm_head.weight"])


def test_embeddings_only_freezes_the_network_also_when_resumed(world, tmp_path):
    run = tmp_path / "ft"
    train(config(world / "b", run, f"init_from={world / 'pre'}", "init_train=embeddings", "epochs=8",
                 "eval_interval=4", "log_interval=4"))
    # Resumed, the run continues from its own checkpoint: init_from is not read again (here it no longer exists).
    train(config(world / "b", run, f"init_from={tmp_path / 'moved'}", "init_train=embeddings", "epochs=16",
                 "eval_interval=4", "log_interval=4"), resume=True)
    source = evaluated(world / "pre")
    raw = load_file(resolve_checkpoint(run) / "raw.safetensors")
    assert resolve_checkpoint(run).name == "step_0000064"
    assert_same(dense(raw), dense(source))
    assert_same(dense(evaluated(run)), dense(source))
    assert not torch.equal(raw[TABLE][NEW[0]], source[TABLE][0])  # the new rows trained
    assert_loss_falls(run)


# ------------------------------------------------------------------------------------------- ARC test-time training

ARC_TINY = TINY + ["data.num_train=6", "data.num_test=3", "log_interval=4"]


def arc_run(preset: str, data: Path, out: Path, *extra: str, log: Callable[[str], None] = lambda _: None):
    """A tiny run of an ARC preset, its dataset built on first use as `latentloop train` builds it."""
    return train(prepare_run(preset, ARC_TINY + [f"data_path={data}", f"out_dir={out}", *extra], log=log), log=log)


def test_arc_test_time_training_pretrains_without_the_test_tasks_then_fine_tunes_on_their_demos(tmp_path, monkeypatch,
                                                                                                capsys):
    """cpu-arc-pretrain, then cpu-arc-ttt from its checkpoint: the pretraining leaves the evaluation tasks' rows
    blank; the fine-tune keeps every row the checkpoint names, starts the variants its build lacks (one more
    data.num_aug here) as init_new_rows says, learns the demonstrations and votes on the same test inputs. solve fits
    fresh rows for a task the pretraining named but never trained, and votes with the fine-tuned ones."""
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    arc_run("cpu-arc-pretrain", tmp_path / "d-pre", pre, "data.num_aug=1", "epochs=16", "eval_interval=16")
    source = evaluated(pre)[TABLE]
    theirs = {name: row for row, name in enumerate(read_identifiers(tmp_path / "d-pre"))}
    evaluation = set(json.loads((tmp_path / "d-pre" / "test_puzzles.json").read_text()))
    tested = {name for name in theirs if parse_name(name)[0] in evaluation}
    assert len(tested) == 6 and not source[[0, *(theirs[name] for name in tested)]].any()
    assert all(source[row].any() for name, row in theirs.items() if row and name not in tested)

    start = spy_on_start(monkeypatch)
    lines: list[str] = []
    result = arc_run("cpu-arc-ttt", tmp_path / "d-ft", ft, f"init_from={pre}", "init_new_rows=mean", "data.num_aug=2",
                     "epochs=128", "eval_interval=64", log=lines.append)
    names = read_identifiers(tmp_path / "d-ft")
    assert {parse_name(name)[0] for name in names[1:]} == evaluation and len(names) == 10
    assert (f"init_from {resolve_checkpoint(pre)}: EMA weights, 7 of 10 puzzle-embedding rows kept by identifier "
            f"name, 3 new ones start as the mean row; fresh optimizer and schedule; everything trains") in lines
    new = [row for row, name in enumerate(names) if name not in theirs]
    for row, name in enumerate(names):
        want = source[1:].mean(dim=0) if row in new else source[theirs[name]]
        assert torch.allclose(start[TABLE][row], want, rtol=1e-6, atol=0), name
    assert_same(dense(start), dense(evaluated(pre)))
    assert_loss_falls(ft)
    final = evaluated(ft)
    assert all(final[TABLE][row].any() for row in range(1, len(names)))
    assert not torch.equal(final["inner.lm_head.weight"], evaluated(pre)["inner.lm_head.weight"])
    # the same test inputs, voted on by one more variant each
    assert len({(tmp_path / data / "test_puzzles.json").read_text() for data in ("d-pre", "d-ft")}) == 1
    assert result.final_eval.num_examples == 3 * read_split(tmp_path / "d-pre" / "test")[0].num_examples // 2
    assert "ARC/pass@2" in result.final_eval.metrics

    task = sorted(evaluation)[0]
    png = str(tmp_path / "task.png")
    capsys.readouterr()
    assert main(["solve", str(tmp_path / "d-pre" / "test_puzzles.json"), "--task-id", task, "--checkpoint", str(pre),
                 "--adapt-steps", "1", "--colourings", "1", "--png", png]) == 0
    text = capsys.readouterr().out
    assert f"task {task} has embedding rows in {tmp_path / 'd-pre'} that were never trained" in text
    assert "fitting 8 fresh embedding rows (8 symmetries x 1 colouring)" in text
    assert main(["solve", str(tmp_path / "d-ft" / "test_puzzles.json"), "--task-id", task, "--checkpoint", str(ft),
                 "--png", png]) == 0
    assert f"task {task}: 3 trained augmentation(s) vote on each test input" in capsys.readouterr().out
    assert main(["solve", str(tmp_path / "d-ft" / "test_puzzles.json"), "--task-id", "nope", "--checkpoint", str(ft),
                 "--png", png]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("test_puzzles.json: no task 'nope' among its 3 tasks") and "\n" not in err


# ------------------------------------------------------------------------------------------------------ bad input

def argv(w: Path, data: str, *extra: str) -> list[str]:
    return ["train", "cpu-sudoku6", *TINY, *SETTINGS, f"data_path={w / data}", f"out_dir={w / 'ft'}", "epochs=2",
            "eval_interval=2", *extra, "--no-progress"]


def forget_dataset(w: Path) -> None:
    """The checkpoint's config names a dataset that is not here (and nothing beside it holds the names)."""
    path = resolve_checkpoint(w / "pre") / "config.json"
    saved = json.loads(path.read_text())
    saved["config"]["train"]["data_path"] = str(w / "gone")
    path.write_text(json.dumps(saved))


BAD = {
    "another task": (None, lambda w: argv(w, "sudoku4", f"init_from={w / 'pre'}"),
                     "was trained on plain token data (no task), this run's data is 'sudoku' data: init_from needs "
                     "the same task"),
    "another vocabulary": (None, lambda w: argv(w, "vocab7", f"init_from={w / 'pre'}"),
                           "has another vocabulary: 6 tokens there, 7 in this run's data"),
    "another hidden_size": (None, lambda w: argv(w, "b", f"init_from={w / 'pre'}", "hidden_size=64"),
                            "is another architecture: hidden_size 32 there, 64 here (T, n and N_sup may differ)"),
    "another channel MLP": (None, lambda w: argv(w, "b", f"init_from={w / 'pre'}", "mlp=conv_swiglu"),
                            "is another architecture: mlp swiglu there, conv_swiglu here"),
    "a missing checkpoint": (None, lambda w: argv(w, "b", f"init_from={w / 'nothing'}"),
                             "init_from: checkpoint"),
    "unknown init_train": (None, lambda w: argv(w, "b", f"init_from={w / 'pre'}", "init_train=decoder"),
                           "init_train must be one of all, embeddings, network, not 'decoder'"),
    "init_new_rows without init_from": (None, lambda w: argv(w, "b", "init_new_rows=mean"),
                                        "set init_from=CHECKPOINT too"),
    "the checkpoint's identifiers are not here": (forget_dataset, lambda w: argv(w, "b", f"init_from={w / 'pre'}"),
                                                  "9 puzzle-embedding rows cannot be matched to this run's puzzles "
                                                  "by name; put that file at"),
    "the new dataset has no identifiers.json": (lambda w: (w / "b" / "identifiers.json").unlink(),
                                                lambda w: argv(w, "b", f"init_from={w / 'pre'}"),
                                                "has no identifiers.json, so its 9 puzzle-embedding rows cannot be "
                                                "matched to the checkpoint's by name"),
}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_init_from_is_one_line_exit_2_and_writes_nothing(name, world, tmp_path, capsys):
    setup, make_argv, message = BAD[name]
    w = tmp_path / "w"
    shutil.copytree(world, w)
    if setup is not None:
        setup(w)
    before = snapshot(w)
    capsys.readouterr()
    code = main(make_argv(w))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("latentloop: error: ") and "\n" not in err and message in err, err
    assert not (w / "ft").exists()
    assert snapshot(w) == before
