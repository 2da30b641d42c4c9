"""The bad-input catalogue (docs/bad-inputs.md): every entry ends in one line on stderr naming the problem, exit code 2,
and leaves every file that existed before byte for byte as it was (datasets, checkpoints, metrics, configs).

Entries already covered by tests/test_cli.py (unknown preset, misspelt override, ill-typed value, missing dataset
folder, missing checkpoint or run folder, malformed CSVs, truncated inputs .npy) are not repeated here.
"""

from __future__ import annotations

import errno
import hashlib
import json
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from latentloop.api import DATA_OPTIONS_FILE
from latentloop.cli import main
from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data.format import DatasetMetadata, PuzzleSplit, read_identifiers, write_split
from latentloop.models import ModelConfig, build_model
from latentloop.models.official_weights import export_official
from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint
from latentloop.training.loop import train
from conftest import write_toy_dataset
from test_training_loop import TINY


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A toy dataset (vocabulary 6), one with vocabulary 7, and a finished 16-step run; copied for every case."""
    root = tmp_path_factory.mktemp("pristine")
    write_toy_dataset(root / "data")
    write_toy_dataset(root / "data7", vocab=7)
    cfg = apply_overrides(load_preset("cpu-sudoku6"), TINY + [f"data_path={root / 'data'}", f"out_dir={root / 'run'}",
                                                              "epochs=2", "eval_interval=2"])
    train(cfg, progress=False, log=lambda *_: None)
    return root


def train_argv(w: Path, *extra: str, run: str = "run") -> list[str]:
    return ["train", "cpu-sudoku6", *TINY, f"data_path={w / 'data'}", f"out_dir={w / run}", "data.task=",
            "epochs=2", "eval_interval=2", *extra, "--no-progress"]


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def checkpoint(w: Path) -> Path:
    return resolve_checkpoint(w / "run")


def write_file(relative: str, text: str) -> Callable[[Path], None]:
    def write(w: Path) -> None:
        (w / relative).parent.mkdir(parents=True, exist_ok=True)
        (w / relative).write_text(text)
    return write


def empty_test_split(w: Path) -> None:
    shutil.rmtree(w / "data" / "test")
    split = PuzzleSplit.from_counts(inputs=np.zeros((0, 8), np.uint8), labels=np.zeros((0, 8), np.uint8),
                                    puzzle_identifiers=[], examples_per_puzzle=[], puzzles_per_group=[])
    write_split(w / "data" / "test", split, DatasetMetadata.for_split(split, vocab_size=6, num_puzzle_identifiers=1))


def replace_array(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        path = w / "data" / "train" / f"all__{name}.npy"
        np.save(path, change(np.load(path)))
    return setup


def step_4_is_latest_and_whole(w: Path) -> None:
    """The same run wrote step 4 before the failed save of step 8: it stays `latest`, complete and loadable."""
    assert sorted(p.name for p in (w / "full/checkpoints").iterdir()) == ["latest", "step_0000004"]
    load_checkpoint(w / "full")


def disk_full_on_second_checkpoint(monkeypatch) -> None:
    """The 3rd safetensors write (the first file of the second checkpoint) fails as a full disk does."""
    import latentloop.training.checkpoint as checkpoint_module

    real, calls = checkpoint_module.save_file, []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)


def no_work(module: str, name: str) -> Callable[[object], None]:
    """Make `module.name` (a generator, a task reader) fail loudly: the output path must be refused before it runs."""
    def patch(monkeypatch) -> None:
        def called(*args, **kwargs):
            raise AssertionError(f"{module}.{name} ran before the output path was checked")
        monkeypatch.setattr(f"{module}.{name}", called)
    return patch


def under_file(w: Path, *parts: str) -> str:
    """A path below the file a-file (made by the case's setup)."""
    return str(w.joinpath("a-file", *parts))


def record_data_options(w: Path) -> None:
    """Mark the toy dataset as built by `latentloop train cpu-sudoku6` (6x6, its data options)."""
    options = {k: v for k, v in asdict(load_preset("cpu-sudoku6").data).items() if k != "task_module"}
    (w / "data" / DATA_OPTIONS_FILE).write_text(json.dumps(options))


def arc_task_file(train_input: object = ((1, 2),), test_output: object = ((1,),)) -> str:
    """An ARC task file with one demonstration pair and one test pair."""
    return json.dumps({"train": [{"input": train_input, "output": [[1]]}],
                       "test": [{"input": [[1]], "output": test_output}]})


def arc_argv(w: Path, *extra: str) -> list[str]:
    return ["data", "arc", "--source", str(w / "arc"), "--out", str(w / "arc-built"), "--num-aug", "1", *extra]


def official_checkpoint_on_latentloop_arc(w: Path) -> None:
    """An ARC build in latentloop's numbering and an official-layout TRM with as many rows, trained elsewhere."""
    assert main(["data", "arc", "--source", "synthetic:2:1:5", "--canvas", "5", "--num-aug", "1", "--out",
                 str(w / "arc-ours")]) == 0
    cfg = RunConfig()
    cfg.model = ModelConfig(vocab_size=12, seq_len=25, hidden_size=16, num_heads=2, layers=1, T=1, n=1, N_sup=1,
                            puzzle_emb_ndim=16, num_puzzle_identifiers=len(read_identifiers(w / "arc-ours")),
                            forward_dtype="float32")
    cfg.train.data_path = str(w / "elsewhere")
    export_official(build_model(cfg.model), cfg, w / "official")


@dataclass
class Case:
    setup: Callable[[Path], object]
    argv: Callable[[Path], list[str]]
    message: str
    env: dict[str, str | None] = field(default_factory=dict)
    patch: Callable[[object], None] | None = None
    check: Callable[[Path], None] | None = None   # more to verify afterwards


CASES = {
    # configs and the command line
    "config file: unknown key": Case(write_file("bad.toml", "[train]\nglobal_batch_sise = 32\n"),
                                     lambda w: ["train", str(w / "bad.toml")],
                                     "unknown config key 'train.global_batch_sise'; did you mean "
                                     "'train.global_batch_size'?"),
    "config file: TOML syntax error": Case(write_file("bad.toml", "[train\nlr = 1\n"),
                                           lambda w: ["train", str(w / "bad.toml")], "cannot parse config file"),
    "config file: unknown section": Case(write_file("bad.toml", "[optimiser]\nlr = 1\n"),
                                         lambda w: ["train", str(w / "bad.toml")],
                                         "unknown config section(s): optimiser"),
    "override without '='": Case(lambda w: None, lambda w: train_argv(w, "lr"), "is not of the form key=value"),
    "unknown loss": Case(lambda w: None, lambda w: train_argv(w, "loss=cross_entropy"),
                         "unknown loss 'cross_entropy'"),
    "negative learning rate": Case(lambda w: None, lambda w: train_argv(w, "lr=-1e-3"),
                                   "config key 'lr' must be a non-negative number, got -0.001"),
    "eval_interval=0": Case(lambda w: None, lambda w: train_argv(w, "eval_interval=0"),
                            "config key 'eval_interval' must be a positive integer, got 0"),
    "non-positive model width": Case(lambda w: None, lambda w: train_argv(w, "hidden_size=-4"),
                                     "config key 'hidden_size' must be a positive integer, got -4"),
    "zero recursions (official key)": Case(lambda w: None, lambda w: train_argv(w, "arch.L_cycles=0"),
                                           "config key 'n' must be a positive integer, got 0"),
    "unknown arc_votes": Case(lambda w: None, lambda w: train_argv(w, "arc_votes=all"),
                              "arc_votes must be one of per_eval, pooled, not 'all'"),
    "probability above 1": Case(lambda w: None, lambda w: train_argv(w, "ema_rate=1.5"),
                                "config key 'ema_rate' must be a number in [0, 1], got 1.5"),
    "not a number": Case(lambda w: None, lambda w: train_argv(w, "weight_decay=nan"),
                         "config key 'weight_decay' must be a non-negative number, got nan"),
    "config file: negative width": Case(write_file("bad.toml", "[model]\nhidden_size = -4\n"),
                                        lambda w: ["train", str(w / "bad.toml")],
                                        "config key 'hidden_size' must be a positive integer, got -4"),
    "batch not divisible by grad_accum_steps": Case(lambda w: None, lambda w: train_argv(w, "grad_accum_steps=3"),
                                                    "global_batch_size 32 does not split into 1 rank(s) x "
                                                    "grad_accum_steps 3"),
    "keep_best names no metric": Case(lambda w: None, lambda w: train_argv(w, "keep_best=eval/acuracy"),
                                      "keep_best='eval/acuracy' is not an evaluation metric"),
    "memory estimate above max_memory_gb": Case(lambda w: None, lambda w: train_argv(w, "max_memory_gb=0.003"),
                                                "above max_memory_gb=0.003; set grad_accum_steps=2"),
    "device=cuda without a GPU": Case(lambda w: None, lambda w: train_argv(w, "device=cuda"), "no CUDA GPU"),
    # distributed launch
    "WORLD_SIZE does not divide the batch": Case(lambda w: None, lambda w: train_argv(w),
                                                 "does not split into 3 rank(s)", env={"WORLD_SIZE": "3", "RANK": "0"}),
    "WORLD_SIZE set without torchrun": Case(lambda w: None, lambda w: train_argv(w), "launch with torchrun",
                                            env={"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": None,
                                                 "MASTER_PORT": None}),
    "RANK outside WORLD_SIZE": Case(lambda w: None, lambda w: train_argv(w), "RANK=5 does not lie in WORLD_SIZE=2",
                                    env={"WORLD_SIZE": "2", "RANK": "5"}),
    "distributed run would generate the dataset": Case(
        lambda w: None, lambda w: train_argv(w, f"data_path={w / 'new'}", "data.task=sudoku"),
        "build it before a distributed run: latentloop data sudoku", env={"WORLD_SIZE": "2", "RANK": "0"}),
    # datasets
    "dataset.json disagrees with the arrays": Case(
        lambda w: edit_json(w / "data/train/dataset.json", lambda d: d.update(seq_len=9)), train_argv,
        "seq_len is 9 but the arrays have 8 tokens per row"),
    "dataset built with other data options": Case(
        record_data_options, lambda w: train_argv(w, "data.task=sudoku"),   # 9x9 of 1,000 puzzles, the defaults
        "was built with other data options: num_train=40960 (this run: 1000), size=6 (this run: 9); set "
        "data_path=ANOTHER_FOLDER"),
    "dataset.json is not JSON": Case(write_file("data/train/dataset.json", "{vocab_size: 6"), train_argv,
                                     "dataset.json: unreadable JSON"),
    "dataset.json lacks a key": Case(lambda w: edit_json(w / "data/train/dataset.json", lambda d: d.pop("vocab_size")),
                                     train_argv, "missing key 'vocab_size'"),
    "tokens outside the vocabulary": Case(
        lambda w: edit_json(w / "data/train/dataset.json", lambda d: d.update(vocab_size=5)), train_argv,
        "vocab_size is 5 but inputs contain token 5"),
    "train and test vocabularies differ": Case(
        lambda w: edit_json(w / "data/test/dataset.json", lambda d: d.update(vocab_size=7)), train_argv,
        "train split has seq_len 8 and vocab_size 6, test split 8 and 7"),
    "labels and inputs differ in shape": Case(replace_array("labels", lambda a: a[:10]), train_argv, "labels shape"),
    "inputs stored as floats": Case(replace_array("inputs", lambda a: a.astype(np.float32)), train_argv,
                                    "inputs must hold integers"),
    "puzzle identifier beyond the table": Case(replace_array("puzzle_identifiers", lambda a: a + 3), train_argv,
                                               "num_puzzle_identifiers is 1 but puzzle_identifiers range up to 3"),
    "a .npy that is not one": Case(write_file("data/train/all__labels.npy", "source,question,answer\n"), train_argv,
                                   "all__labels.npy: unreadable or truncated .npy file"),
    "an index file is missing": Case(lambda w: (w / "data/test/all__puzzle_indices.npy").unlink(), train_argv,
                                     "all__puzzle_indices.npy: file not found"),
    "empty test split": Case(empty_test_split, train_argv, "holds no examples to evaluate on"),
    "batch larger than the training set": Case(lambda w: None, lambda w: train_argv(w, "global_batch_size=1024",
                                                                                    run="big"),
                                               "cannot fill one batch of 1024 examples"),
    # ARC task files (latentloop data arc)
    "ARC: ragged grid": Case(write_file("arc/evaluation/t1.json", arc_task_file(train_input=[[1, 2], [3]])), arc_argv,
                             "arc/evaluation/t1.json train pair 0 input: ragged grid, rows have lengths [1, 2]"),
    "ARC: grid larger than 30x30": Case(write_file("arc/evaluation/t1.json", arc_task_file(train_input=[[1] * 31])),
                                        arc_argv, "train pair 0 input: grid is 1x31, larger than the 30x30 canvas"),
    "ARC: colour 10": Case(write_file("arc/evaluation/t1.json", arc_task_file(test_output=[[10]])), arc_argv,
                           "test pair 0 output: cell value 10 is not a colour 0-9"),
    "ARC: malformed task JSON": Case(write_file("arc/evaluation/t1.json", '{"train": ['), arc_argv,
                                     "arc/evaluation/t1.json: unreadable JSON"),
    "ARC: missing source folder": Case(lambda w: None, arc_argv, "arc: ARC source not found"),
    "ARC: no task in the test set": Case(write_file("arc/training/t1.json", arc_task_file()), arc_argv,
                                         "no task is in the test set evaluation; subsets found: arc/training"),
    "ARC: task without demonstration pairs": Case(
        write_file("arc/evaluation/t1.json", json.dumps({"train": [], "test": [{"input": [[1]]}]})), arc_argv,
        "arc/evaluation/t1.json: task has no demonstration ('train') pairs"),
    "ARC: --official-order with --strict": Case(write_file("arc/evaluation/t1.json", arc_task_file()),
                                                lambda w: arc_argv(w, "--official-order", "--strict"),
                                                "--strict has no counterpart in the official builder"),
    "ARC: --test-demos-only with --strict": Case(write_file("arc/evaluation/t1.json", arc_task_file()),
                                                 lambda w: arc_argv(w, "--test-demos-only", "--strict"),
                                                 "--test-demos-only trains on the test-set tasks' demonstration pairs "
                                                 "alone, so it cannot be combined with --strict"),
    # checkpoints and runs
    "resume with another architecture": Case(lambda w: None, lambda w: train_argv(w, "hidden_size=64", "--resume"),
                                             "has shape (6, 32), the model expects (6, 64)"),
    "resume with another batch size": Case(lambda w: None, lambda w: train_argv(w, "global_batch_size=64", "--resume"),
                                           "sampler state was saved with global_batch_size=32"),
    "resume from a truncated train_state.pt": Case(
        lambda w: (checkpoint(w) / "train_state.pt").write_bytes((checkpoint(w) / "train_state.pt").read_bytes()[:999]),
        lambda w: train_argv(w, "--resume"), "train_state.pt: "),
    "resume from a weights-only checkpoint": Case(lambda w: (checkpoint(w) / "train_state.pt").unlink(),
                                                  lambda w: train_argv(w, "--resume"), "cannot be resumed"),
    "resume with no checkpoint": Case(lambda w: None, lambda w: train_argv(w, "--resume", run="fresh"),
                                      "fresh holds no checkpoint"),
    "latest points at a missing folder": Case(write_file("run/checkpoints/latest", "step_0999999"),
                                              lambda w: ["eval", str(w / "run")], "missing or incomplete"),
    "checkpoint from another architecture": Case(
        lambda w: edit_json(checkpoint(w) / "config.json",
                            lambda d: d["config"]["model"].update(mlp_t=True, pos_encodings="none")),
        lambda w: ["eval", str(w / "run")], "does not match the model: missing"),
    "official ARC checkpoint on a latentloop-numbered build": Case(
        official_checkpoint_on_latentloop_arc, lambda w: ["eval", str(w / "official" / "step_0"), "--data",
                                                          str(w / "arc-ours")],
        "arc-ours numbers its ARC puzzles in latentloop's order, not the official builder's"),
    "checkpoint config is not JSON": Case(lambda w: (checkpoint(w) / "config.json").write_text("{"),
                                          lambda w: ["eval", str(w / "run")], "is not a valid checkpoint config"),
    "evaluation data with another vocabulary": Case(lambda w: None,
                                                    lambda w: ["eval", str(w / "run"), "--data", str(w / "data7")],
                                                    "has vocab_size 7 and seq_len 8; the checkpoint was trained on "
                                                    "vocab_size 6"),
    "eval --arc-votes pooled on data without ARC votes": Case(
        lambda w: None, lambda w: ["eval", str(w / "run"), "--arc-votes", "pooled"],
        "--arc-votes pooled pools ARC votes; ",
        patch=no_work("latentloop.api", "evaluate")),
    "eval of several checkpoints with --save-predictions": Case(
        lambda w: None, lambda w: ["eval", str(w / "run"), str(w / "run"), "--save-predictions", str(w / "p.npz")],
        "--save-predictions writes one checkpoint's predictions", patch=no_work("latentloop.api", "load_checkpoint")),
    "eval of several checkpoints with --arc-out but per_eval votes": Case(
        lambda w: None, lambda w: ["eval", str(w / "run"), str(w / "run"), "--arc-out", str(w / "arc")],
        "with several checkpoints --arc-out names the folder of their pooled votes",
        patch=no_work("latentloop.api", "load_checkpoint")),
    # output paths under an existing file: refused before any work (the patched generators would fail the case)
    "data sudoku --out under a file": Case(
        write_file("a-file", "x"),
        lambda w: ["data", "sudoku", "--size", "4", "--num-train", "4", "--num-test", "1", "--out", under_file(w, "x")],
        "a-file is a file, not a folder", patch=no_work("latentloop.data.sudoku_build", "generate_puzzles")),
    "data sudoku --out is a file": Case(write_file("a-file", "x"),
                                        lambda w: ["data", "sudoku", "--size", "4", "--out", under_file(w)],
                                        "a-file: it is a file, not a folder",
                                        patch=no_work("latentloop.data.sudoku_build", "generate_puzzles")),
    "data maze --out under a file": Case(write_file("a-file", "x"),
                                         lambda w: ["data", "maze", "--size", "6", "--out", under_file(w, "x")],
                                         "a-file is a file, not a folder",
                                         patch=no_work("latentloop.data.maze", "generate_mazes")),
    "data arc --out under a file": Case(write_file("a-file", "x"),
                                        lambda w: ["data", "arc", "--source", "synthetic:2:2", "--out",
                                                   under_file(w, "x")],
                                        "a-file is a file, not a folder",
                                        patch=no_work("latentloop.data.arc_sources", "source_tasks")),
    "generated dataset under a file": Case(write_file("a-file", "x"),
                                           lambda w: train_argv(w, f"data_path={under_file(w, 'd')}",
                                                                "data.task=sudoku"),
                                           "a-file is a file, not a folder",
                                           patch=no_work("latentloop.data.sudoku_build", "generate_puzzles")),
    "export under a file": Case(write_file("a-file", "x"), lambda w: ["export", str(w / "run"), under_file(w, "x")],
                                "a-file is a file, not a folder",
                                patch=no_work("latentloop.training.checkpoint", "load_checkpoint")),
    "eval --arc-out under a file": Case(write_file("a-file", "x"),
                                        lambda w: ["eval", str(w / "run"), "--arc-out", under_file(w, "arc")],
                                        "a-file is a file, not a folder",
                                        patch=no_work("latentloop.api", "load_checkpoint")),
    "eval --save-predictions under a file": Case(
        write_file("a-file", "x"), lambda w: ["eval", str(w / "run"), "--save-predictions", under_file(w, "p.npz")],
        "a-file is a file, not a folder", patch=no_work("latentloop.api", "load_checkpoint")),
    "view -o under a file": Case(write_file("a-file", "x"),
                                 lambda w: ["view", str(w / "data"), "-o", under_file(w, "v.html")],
                                 "a-file is a file, not a folder",
                                 patch=no_work("latentloop.inspection.viewer", "load_items")),
    "unwritable output folder": Case(write_file("a-file", "x"), lambda w: train_argv(w, f"out_dir={w / 'a-file/run'}"),
                                     "cannot write to the run folder"),
    "disk full while saving": Case(lambda w: None, lambda w: train_argv(w, "checkpoint_interval=4", run="full"),
                                   "step_0000008 ([Errno 28] No space left on device",
                                   patch=disk_full_on_second_checkpoint, check=step_4_is_latest_and_whole),
}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, pristine, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    if name == "device=cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    w = tmp_path / "w"
    shutil.copytree(pristine, w)
    case.setup(w)
    for key, value in case.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    if case.patch is not None:
        case.patch(monkeypatch)
    before = snapshot(w)
    capsys.readouterr()

    code = main(case.argv(w))

    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("latentloop: error: ") and "\n" not in err and "Traceback" not in err, err
    assert case.message in err, err
    after = snapshot(w)
    assert {path: digest for path, digest in after.items() if path in before} == before
    if case.check is not None:
        case.check(w)


def test_file_size_limit_during_save_is_one_line(pristine, tmp_path):
    """A real write failure, not a patched one: under RLIMIT_FSIZE every library (safetensors, torch.save, json)
    fails its own way (SafetensorError, RuntimeError, OSError EFBIG); all end in the same one-line message."""
    shutil.copytree(pristine, tmp_path / "w")
    w = tmp_path / "w"
    before = snapshot(w)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    argv = train_argv(w, "epochs=4", "checkpoint_interval=1", "--resume")  # the first save after step 16 fails
    result = subprocess.run([sys.executable, "-m", "latentloop.cli", *argv], capture_output=True, text=True,
                            timeout=300, preexec_fn=limit)
    assert result.returncode == 2, result.stderr[-2000:]
    err = result.stderr.strip()
    assert err.startswith("latentloop: error: could not write checkpoint") and "\n" not in err, err
    assert "step_0000016 is intact" in err
    # The resumed run may rewrite run/config.json and append to metrics.jsonl; all else is as it was.
    after = snapshot(w)
    assert {p: d for p, d in after.items() if p in before and not p.startswith("run/")} == \
        {p: d for p, d in before.items() if not p.startswith("run/")}
    assert {p: d for p, d in after.items() if p.startswith("run/checkpoints/")} == \
        {p: d for p, d in before.items() if p.startswith("run/checkpoints/")}
    assert (w / "run/metrics.jsonl").read_text().startswith((pristine / "run/metrics.jsonl").read_text())
