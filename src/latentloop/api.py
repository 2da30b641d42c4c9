"""The Python API that mirrors the commands: build from a preset, load a checkpoint, train, evaluate, predict."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data.format import read_split
from latentloop.data.grids import NUM_DIHEDRAL
from latentloop.errors import ConfigError
from latentloop.evaluation.arc import TEST_PUZZLES_FILE, ArcEvaluator, ArcScores, is_arc_data
from latentloop.evaluation.evaluate import EvalResult, evaluate, examples
from latentloop.evaluation.maze_metrics import MazeScores, is_maze_data, maze_scores
from latentloop.models import build_model
from latentloop.training.checkpoint import WEIGHTS, load_checkpoint, resolve_checkpoint
from latentloop.training.loop import TrainResult, pick_device


def prepare_run(preset: str, overrides: list[str] | None = None, log=print) -> RunConfig:
    """Load a preset with overrides and make its dataset if it is a generated one that does not exist yet."""
    cfg = apply_overrides(load_preset(preset), overrides or [])
    data_path = Path(cfg.train.data_path) if cfg.train.data_path else None
    if data_path is None:
        raise ConfigError(f"preset {cfg.name!r} has no data_path; pass data_path=FOLDER")
    if not (data_path / "train" / "dataset.json").exists():
        if cfg.data.task not in ("sudoku", "maze", "arc"):
            raise ConfigError(f"dataset {data_path} not found; build it first (see `latentloop data --help`)")
        if cfg.data.task == "maze":
            _generate_maze(data_path, cfg.data, log)
            return cfg
        if cfg.data.task == "arc":
            _build_arc(data_path, cfg.data, log)
            return cfg
        from latentloop.data import sudoku
        from latentloop.training.distributed import world_size_from_env

        d = cfg.data
        if world_size_from_env() > 1:  # every rank would write the same files at the same time
            raise ConfigError(f"dataset {data_path} not found; build it before a distributed run: latentloop data "
                              f"sudoku --size {d.size} --num-train {d.num_train} --num-test {d.num_test} "
                              f"--num-aug {d.num_aug} --seed {d.seed} --out {data_path}")
        log(f"generating {d.num_train:,} + {d.num_test:,} {d.size}x{d.size} Sudoku puzzles into {data_path} (seed {d.seed})")
        log(sudoku.build_generated(data_path, sudoku.shape_for_size(d.size), d.num_train, d.num_test, seed=d.seed,
                                   num_aug=d.num_aug, progress=True))
    return cfg


def _generate_maze(data_path: Path, d, log) -> None:
    """Generate a preset's maze dataset on first use (``data.task = "maze"``); ``num_aug`` 7 adds the dihedral set."""
    from latentloop.data import maze
    from latentloop.training.distributed import world_size_from_env

    if d.num_aug not in (0, NUM_DIHEDRAL - 1):
        raise ConfigError(f"data.num_aug for mazes is 0 or {NUM_DIHEDRAL - 1} (the dihedral images), got {d.num_aug}")
    command = (f"latentloop data maze --size {d.size} --num-train {d.num_train} --num-test {d.num_test} "
               f"--min-path {d.min_path} --seed {d.seed}{' --aug' if d.num_aug else ''} --out {data_path}")
    if world_size_from_env() > 1:  # every rank would write the same files at the same time
        raise ConfigError(f"dataset {data_path} not found; build it before a distributed run: {command}")
    log(f"generating {d.num_train:,} + {d.num_test:,} {d.size}x{d.size} mazes (path > {d.min_path} moves) into "
        f"{data_path} (seed {d.seed})")
    log(maze.build_generated(data_path, d.num_train, d.num_test, d.size, d.min_path, d.seed, augment=bool(d.num_aug),
                             workers=os.cpu_count() or 1, progress=True))


def _build_arc(data_path: Path, d, log) -> None:
    """Build a preset's ARC dataset on first use (``data.task = "arc"``) from its ``data.sources``; without sources,
    from ``num_train`` + ``num_test`` generated ARC-like tasks whose grids fit the canvas."""
    from latentloop.data import arc
    from latentloop.training.distributed import world_size_from_env

    sources = list(d.sources) or [f"synthetic:{d.num_train}:{d.num_test}:{min(d.canvas, 10)}"]
    if world_size_from_env() > 1:  # every rank would write the same files at the same time
        options = " ".join(f"--source {s}" for s in sources)
        raise ConfigError(f"dataset {data_path} not found; build it before a distributed run: latentloop data arc "
                          f"{options} --test-set {d.test_set} --num-aug {d.num_aug} --seed {d.seed} --layout "
                          f"{d.layout} --canvas {d.canvas}{' --strict' if d.strict else ''} --out {data_path}")
    log(f"building ARC from {', '.join(sources)} into {data_path} ({d.num_aug} variants per task, seed {d.seed})")
    log(arc.build_from_sources(data_path, sources, [d.test_set], num_aug=d.num_aug, seed=d.seed, strict=d.strict,
                               layout=d.layout, canvas=d.canvas, log=log))


def build_from_preset(preset: str, overrides: list[str] | None = None) -> torch.nn.Module:
    """A freshly initialised model for a preset (vocabulary and length as in the preset)."""
    return build_model(apply_overrides(load_preset(preset), overrides or []).model)


def report_training(result: TrainResult) -> str:
    """The plain-words summary printed at the end of `latentloop train`."""
    from latentloop.inspection.plots import plot_run

    png = plot_run(result.run_dir)
    lines = [f"Trained for {result.steps:,} steps in {result.seconds / 60:.1f} min ({result.num_params:,} parameters)."]
    ev = result.final_eval
    if ev is not None:
        lines.append(f"Held-out exact accuracy: {ev.exact_accuracy:.1%} of {ev.num_examples:,} puzzles solved "
                     f"completely (cells right: {ev.accuracy:.1%}; halting head right: {ev.q_halt_accuracy:.1%}).")
        if ev.per_step_exact_accuracy:
            steps = ", ".join(f"{i}: {a:.1%}" for i, a in enumerate(ev.per_step_exact_accuracy, 1))
            lines.append(f"Exact accuracy after each supervision step: {steps}.")
        if "ARC/pass@2" in ev.metrics:
            lines.append(f"ARC pass@2, voting over the augmented copies: {ev.metrics['ARC/pass@2']:.1%} (TRM: share of "
                         f"test inputs per task), {ev.metrics['ARC/task_pass@2']:.1%} (HRM: tasks fully solved).")
    lines.append(f"Files: {result.run_dir}/metrics.jsonl, {result.run_dir}/checkpoints/, {png}")
    return "\n".join(lines)


@dataclass
class CheckpointEval:
    checkpoint: str
    data: str
    result: EvalResult
    halt_early: bool
    maze: MazeScores | None = None      # path-aware scores when the test split holds mazes
    arc: ArcScores | None = None        # voted pass@K when the test split holds ARC tasks
    arc_files: list[Path] = field(default_factory=list)   # submission.json, candidates.json, scores.json
    arc_note: str = ""                  # why ARC data was not voted on

    def report(self) -> str:
        r = self.result
        mode = "stopping each puzzle when it halts" if self.halt_early else "running every supervision step"
        text = (f"{self.checkpoint} on {self.data} ({r.num_examples:,} puzzles, {mode}):\n"
                f"  exact accuracy {r.exact_accuracy:.2%}, cell accuracy {r.accuracy:.2%}, "
                f"halting accuracy {r.q_halt_accuracy:.2%}, mean steps used {r.steps:.2f}, "
                f"{r.examples_per_second:,.0f} puzzles/s")
        if r.per_step_exact_accuracy:
            text += "\n  exact accuracy by step: " + ", ".join(
                f"{i}: {a:.1%}" for i, a in enumerate(r.per_step_exact_accuracy, 1))
        if self.maze is not None:
            text += "\n" + self.maze.report()
        if self.arc is not None:
            text += ("\n  (exact accuracy above counts each augmented copy of a test input on its own; the ARC score "
                     "votes over the copies)\n" + self.arc.report())
        if self.arc_files:
            text += "\n  wrote " + ", ".join(map(str, self.arc_files))
        if self.arc_note:
            text += "\n  " + self.arc_note
        return text


def load_eval_data(cfg: RunConfig, data: str | Path | None = None):
    """The test split a checkpoint is evaluated on (its training data by default), checked against the model."""
    data_path = Path(data or cfg.train.data_path)
    split, meta = read_split(data_path / "test")
    if (meta.vocab_size, meta.seq_len) != (cfg.model.vocab_size, cfg.model.seq_len):
        raise ConfigError(f"{data_path} has vocab_size {meta.vocab_size} and seq_len {meta.seq_len}; the checkpoint "
                          f"was trained on vocab_size {cfg.model.vocab_size} and seq_len {cfg.model.seq_len}")
    return split, meta, data_path


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path | None = None, steps: int | None = None,
                        halt_early: bool = False, max_examples: int = 0, batch_size: int = 256,
                        device: str = "auto", threshold: float = 0.5,
                        save_predictions: str | Path | None = None, trajectories: int = 1,
                        noise: float = 0.0, config: str | Path | None = None, arc_tasks: str | Path | None = None,
                        arc_out: str | Path | None = None) -> CheckpointEval:
    """Evaluate a checkpoint; optionally save inputs, labels and predictions as .npz (for `latentloop view`).
    An official HRM/TRM checkpoint file is read with `config` (default: the all_config.yaml beside it).
    On ARC data the augmented copies also vote (test puzzles from the dataset's test_puzzles.json, or `arc_tasks`),
    and submission.json, candidates.json and scores.json go to `arc_out` (default: arc_<checkpoint> beside it)."""
    model, cfg = load_checkpoint(checkpoint, pick_device(device), config=config, data=data)
    split, meta, data_path = load_eval_data(cfg, data)
    device_ = next(model.parameters()).device
    is_maze = is_maze_data(split.inputs[:64], split.labels[:64], meta.vocab_size)
    arc, arc_note = None, ""
    if arc_tasks and not is_arc_data(meta):
        raise ConfigError(f"--arc-tasks scores ARC data; {data_path} has vocab_size {meta.vocab_size} and seq_len "
                          f"{meta.seq_len}, not ARC's 12 and 900")
    if is_arc_data(meta):
        if arc_tasks or (data_path / TEST_PUZZLES_FILE).exists():
            arc = ArcEvaluator.for_dataset(data_path, meta, arc_tasks)
        else:
            arc_note = (f"no ARC score: {data_path} has no {TEST_PUZZLES_FILE}; pass --arc-tasks with the folder of "
                        f"ARC task files its test split was built from")
    result = evaluate(model, split, meta, batch_size, device_, steps=steps, halt_early=halt_early,
                      max_examples=max_examples, loss=cfg.train.loss, progress=True, threshold=threshold,
                      trajectories=trajectories, noise=noise, keep_predictions=bool(save_predictions) or is_maze,
                      on_batch=arc.update if arc is not None else None)
    arc_scores, arc_files = None, []
    if arc is not None:
        arc_scores = arc.scores()
        result.metrics.update(arc_scores.metrics())
        arc_files = arc.write(arc_out or _beside_checkpoint(checkpoint, "arc_"), arc_scores)
    scores = None
    if result.prediction is not None:
        batches = list(examples(split, meta, batch_size, max_examples))
        inputs, labels = (np.concatenate([b[k] for b in batches]) for k in ("inputs", "labels"))
        pred = result.prediction
        scores = maze_scores(inputs, labels, pred.tokens) if is_maze else None
        if save_predictions:
            np.savez_compressed(save_predictions, inputs=inputs, labels=labels, predictions=pred.tokens,
                                steps=pred.steps, halt_probability=pred.halt_probability, vocab_size=meta.vocab_size)
    return CheckpointEval(str(checkpoint), str(data_path), result, halt_early, scores, arc_scores, arc_files, arc_note)


def _beside_checkpoint(checkpoint: str | Path, prefix: str) -> Path:
    """A folder next to the checkpoint (folder, or official checkpoint file), named after it."""
    path = Path(checkpoint)
    if not (path.is_file() and path.name != WEIGHTS):
        path = resolve_checkpoint(path)
    return path.parent / f"{prefix}{path.name}"
