"""The Python API that mirrors the commands: build from a preset, load a checkpoint, train, evaluate, predict."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data.format import read_split
from latentloop.errors import ConfigError, DataError
from latentloop.evaluation.evaluate import EvalResult, evaluate, examples, format_rate
from latentloop.evaluation.voting import COMBINE_MODES, tta_count
from latentloop.hub import is_hub_path, parse as parse_hub_path
from latentloop.models import build_model
from latentloop.tasks import Task, task_class, task_of_config
from latentloop.paths import check_output_dir, check_output_file, ensure_output_file
from latentloop.training.checkpoint import WEIGHTS, load_checkpoint, resolve_checkpoint
from latentloop.training.loop import TrainResult, pick_device


DATA_OPTIONS_FILE = "data_options.json"   # the data.* options a dataset was built with, beside its splits


def prepare_run(preset: str, overrides: list[str] | None = None, log=print) -> RunConfig:
    """Load a preset with overrides and build its dataset with its task (`data.task`) if it does not exist yet."""
    from latentloop.training.distributed import world_size_from_env

    cfg = apply_overrides(load_preset(preset), overrides or [])
    data_path = Path(cfg.train.data_path) if cfg.train.data_path else None
    if data_path is None:
        raise ConfigError(f"preset {cfg.name!r} has no data_path; pass data_path=FOLDER")
    options = json.loads(json.dumps({k: v for k, v in asdict(cfg.data).items() if k != "task_module"}))
    recorded_at = data_path / DATA_OPTIONS_FILE
    if not (data_path / "train" / "dataset.json").exists():
        if not cfg.data.task:
            raise ConfigError(f"dataset {data_path} not found; build it first (see `latentloop data --help`)")
        task = task_class(cfg.data.task)
        if world_size_from_env() > 1:  # every rank would write the same files at the same time
            raise ConfigError(f"dataset {data_path} not found; build it before a distributed run: "
                              f"{task.data_command(data_path, cfg.data)}")
        check_output_dir(data_path)  # before announcing (and starting) the build
        log(task.build(data_path, cfg.data, log))
        recorded_at.write_text(json.dumps(options, indent=2, sort_keys=True) + "\n")
    elif cfg.data.task and recorded_at.is_file():
        check_data_options(data_path, json.loads(recorded_at.read_text()), options)
    return cfg


def check_data_options(data_path: Path, recorded: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse a dataset that a run built with other data.* options: training on it would silently run another
    recipe (a preset's data_path is reused by every run of that preset, whatever its data.* overrides)."""
    differ = [f"{key}={recorded.get(key)!r} (this run: {wanted.get(key)!r})"
              for key in sorted(set(recorded) | set(wanted)) if recorded.get(key) != wanted.get(key)]
    if differ:
        raise ConfigError(f"dataset {data_path} was built with other data options: {', '.join(differ)}; set "
                          f"data_path=ANOTHER_FOLDER for this run, or delete the folder to rebuild it")


def build_from_preset(preset: str, overrides: list[str] | None = None) -> torch.nn.Module:
    """A freshly initialised model for a preset (vocabulary and length as in the preset)."""
    return build_model(apply_overrides(load_preset(preset), overrides or []).model)


def report_training(result: TrainResult, data_seconds: float | None = None) -> str:
    """The plain-words summary printed at the end of `latentloop train`; `data_seconds`: the time spent building the
    dataset first, if it was built."""
    from latentloop.inspection.plots import plot_run

    png = plot_run(result.run_dir)
    lines = [f"Trained for {result.steps:,} steps in {result.seconds / 60:.1f} min ({result.num_params:,} parameters, "
             f"{result.precision})."]
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
        if "ARC/pooled_pass@2" in ev.metrics:
            lines.append(f"ARC pass@2 pooled over all {ev.metrics['ARC/pooled_evaluations']:.0f} evaluations' votes "
                         f"(arc_votes=pooled, the official logs' ARC/pass@2): {ev.metrics['ARC/pooled_pass@2']:.1%} "
                         f"(TRM), {ev.metrics['ARC/pooled_task_pass@2']:.1%} (HRM).")
    training = result.seconds - result.eval_seconds
    phases = [f"data generation {data_seconds:.0f} s"] if data_seconds is not None else []
    phases += [f"training {training:.0f} s ({result.steps / max(training, 1e-9):.1f} steps/s)",
               f"held-out evaluation {result.eval_seconds:.0f} s"]
    lines.append("Time: " + ", ".join(phases) + ".")
    lines.append(f"Files: {result.run_dir}/metrics.jsonl, {result.run_dir}/checkpoints/, {png}")
    return "\n".join(lines)


@dataclass
class CheckpointEval:
    checkpoint: str
    data: str
    result: EvalResult
    halt_early: bool
    task: str = ""                      # the task the test split holds
    task_report: str = ""               # the task's own metrics in words (maze paths, ARC votes), if any
    files: list[Path] = field(default_factory=list)   # what the task's metrics wrote (ARC: submission.json, ...)
    observer: Any = None                # the task's metric observer (ARC: its votes, for pool_arc_votes)
    combine_mode: str = "vote"          # how copies of a puzzle (TTA transforms, ensemble models) were combined
    ensemble: list[str] = field(default_factory=list)   # the checkpoints that answered with `checkpoint`

    def report(self) -> str:
        r = self.result
        mode = "stopping each puzzle when it halts" if self.halt_early else "running every supervision step"
        text = (f"{' + '.join([self.checkpoint, *self.ensemble])} on {self.data} ({self.task}, {r.num_examples:,} puzzles, {mode}):\n"
                f"  exact accuracy {r.exact_accuracy:.2%}, cell accuracy {r.accuracy:.2%}, "
                f"halting accuracy {r.q_halt_accuracy:.2%}, mean steps used {r.steps:.2f}, "
                f"{format_rate(r.examples_per_second)} puzzles/s")
        if r.per_step_exact_accuracy:
            text += "\n  exact accuracy by step: " + ", ".join(
                f"{i}: {a:.1%}" for i, a in enumerate(r.per_step_exact_accuracy, 1))
        if "agreement" in r.metrics:
            m = r.metrics
            text += (f"\n  {m['tta'] * m['models']:.0f} copies per puzzle ({m['tta']:.0f} transform(s) x "
                     f"{m['models']:.0f} model(s)) combined by {self.combine_mode}: "
                     f"{m['steps_per_puzzle']:.1f} supervision steps per puzzle, {m['agreement']:.1%} of copies "
                     f"agree with the answer kept")
        if self.task_report:
            text += "\n" + self.task_report
        if self.files:
            text += "\n  wrote " + ", ".join(map(str, self.files))
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
                        arc_out: str | Path | None = None, arc_votes: str = "per_eval", tta: int = 1,
                        tta_seed: int = 0, ensemble: Sequence[str | Path] = (),
                        combine_mode: str = "vote") -> CheckpointEval:
    """Evaluate a checkpoint; optionally save inputs, labels and predictions as .npz (for `latentloop view`).
    An official HRM/TRM checkpoint file is read with `config` (default: the all_config.yaml beside it).
    On ARC data the augmented copies also vote (test puzzles from the dataset's test_puzzles.json, or `arc_tasks`),
    and submission.json, candidates.json and scores.json go to `arc_out` (default: arc_<checkpoint> beside it).
    `arc_votes="pooled"` only checks, before the evaluation, that there are ARC votes to pool (pool_arc_votes).
    `tta` > 1 runs every puzzle under that many of its task's transforms (the identity first, drawn with
    `tta_seed`) and `ensemble` adds further checkpoints of the same task and encoding; their answers are combined by
    `combine_mode` ("vote" or "halt-first", evaluation/voting.py)."""
    if arc_out:  # output paths are checked before the (long) evaluation, not after it
        check_output_dir(arc_out)
    if save_predictions:
        check_output_file(save_predictions)
    if combine_mode not in COMBINE_MODES:
        raise ConfigError(f"unknown way to combine copies {combine_mode!r}; use one of {', '.join(COMBINE_MODES)}")
    model, cfg = load_checkpoint(checkpoint, pick_device(device), config=config, data=data)
    split, meta, data_path = load_eval_data(cfg, data)
    task = task_or_none(cfg, data_path if data else None)
    device_ = next(model.parameters()).device
    augmentations = tta_count(tta, task, "--tta", tta_seed)
    members = load_ensemble(ensemble, cfg, task, device_, data)
    if arc_tasks and (task is None or task.name != "arc"):
        raise ConfigError(f"--arc-tasks scores ARC data; {data_path} holds {task.name if task else 'plain token'!r} "
                          f"puzzles")
    observer = (task.metrics(data_path, split, meta, **({"tasks": arc_tasks} if arc_tasks else {}))
                if task is not None else None)
    if arc_votes == "pooled" and not _is_arc_evaluator(observer):
        raise ConfigError(f"--arc-votes pooled pools ARC votes; {data_path} " + (
            f"holds {task.name if task else 'plain token'!r} puzzles" if task is None or task.name != "arc"
            else "has no test puzzles to vote on (pass --arc-tasks)"))
    result = evaluate(model, split, meta, batch_size, device_, steps=steps, halt_early=halt_early,
                      max_examples=max_examples, loss=cfg.train.loss, progress=True, threshold=threshold,
                      trajectories=trajectories, noise=noise, keep_predictions=bool(save_predictions),
                      on_batch=observer.update if observer is not None else None, augmentations=augmentations,
                      ensemble=members, combine_mode=combine_mode)
    task_report, files = "", []
    if observer is not None:
        result.metrics.update(observer.metrics())
        task_report = observer.report() if hasattr(observer, "report") else ""
        if hasattr(observer, "write"):
            files = observer.write(arc_out or _beside_checkpoint(checkpoint, f"{task.name}_"))
    if save_predictions and result.prediction is not None:
        batches = list(examples(split, meta, batch_size, max_examples))
        inputs, labels = (np.concatenate([b[k] for b in batches]) for k in ("inputs", "labels"))
        pred = result.prediction
        np.savez_compressed(ensure_output_file(save_predictions), inputs=inputs, labels=labels,
                            predictions=pred.tokens, steps=pred.steps, halt_probability=pred.halt_probability,
                            vocab_size=meta.vocab_size,
                            **({"task": json.dumps({"name": task.name, "params": task.params()})} if task else {}))
    return CheckpointEval(str(checkpoint), str(data_path), result, halt_early, task.name if task else "tokens",
                          task_report, files, observer, combine_mode, [str(c) for c in ensemble])


@dataclass
class PooledArcEval:
    """ARC votes pooled over several checkpoints' evaluations (the official run-long evaluator's number)."""

    checkpoints: list[str]
    metrics: dict[str, float]            # ARC/pooled_pass@K, ARC/pooled_task_pass@K, ARC/pooled_evaluations
    text: str
    files: list[Path] = field(default_factory=list)

    def report(self) -> str:
        text = f"pooled over {', '.join(self.checkpoints)}:\n" + self.text
        return text + ("\n  wrote " + ", ".join(map(str, self.files)) if self.files else "")


def check_arc_pool_outputs(checkpoints: Sequence[str | Path], arc_votes: str, arc_out: str | Path | None,
                           save_predictions: str | Path | None) -> None:
    """The options of an evaluation of several checkpoints that cannot work, before any checkpoint is read."""
    from latentloop.evaluation.arc import ARC_VOTES

    if arc_votes not in ARC_VOTES:
        raise ConfigError(f"--arc-votes must be one of {', '.join(ARC_VOTES)}, not {arc_votes!r}")
    if len(checkpoints) > 1 and save_predictions:
        raise ConfigError("--save-predictions writes one checkpoint's predictions; evaluate one checkpoint with it")
    if len(checkpoints) > 1 and arc_out and arc_votes != "pooled":
        raise ConfigError("with several checkpoints --arc-out names the folder of their pooled votes: add "
                          "--arc-votes pooled (each checkpoint's own files go beside it)")
    if arc_votes == "pooled" and arc_out:
        check_output_dir(arc_out)


def pool_arc_votes(evals: Sequence[CheckpointEval], out: str | Path | None = None) -> PooledArcEval:
    """Vote once over every evaluation's ARC predictions (as the official evaluator with aggregated_voting does
    across a run's evaluations) and write the pooled submission.json, candidates.json and scores.json to `out`
    (default: arc_pooled_<last checkpoint> beside the last checkpoint)."""
    observers = [e.observer for e in evals]
    if not observers or not all(map(_is_arc_evaluator, observers)):
        raise ConfigError("pooling needs the ARC votes of every evaluation (evaluate_checkpoint on ARC data)")
    pool = observers[0].pool_like()
    for observer in observers:
        pool.pool(observer)
    scores = pool.scores()
    files = pool.write(out or _beside_checkpoint(evals[-1].checkpoint, "arc_pooled_"), scores)
    return PooledArcEval([e.checkpoint for e in evals], scores.metrics(), scores.report(), files)


def load_ensemble(checkpoints: Sequence[str | Path], cfg: RunConfig, task: Task | None, device: torch.device,
                  data: str | Path | None = None) -> list[torch.nn.Module]:
    """Further models answering with the first (`cfg`, `task`): each must solve the same task in the same encoding,
    or their answers could not be compared; one line names the first that does not."""
    members = []
    for checkpoint in checkpoints:
        model, other = load_checkpoint(checkpoint, device, data=data)
        other_task = task_or_none(other, Path(data) if data else None)
        mine = (task.name, task.params()) if task else None
        theirs = (other_task.name, other_task.params()) if other_task else None
        if (mine, cfg.model.vocab_size, cfg.model.seq_len) != (theirs, other.model.vocab_size, other.model.seq_len):
            raise ConfigError(f"ensemble: {checkpoint} solves {other_task!r} (vocab_size {other.model.vocab_size}, "
                              f"seq_len {other.model.seq_len}), the first checkpoint {task!r} (vocab_size "
                              f"{cfg.model.vocab_size}, seq_len {cfg.model.seq_len}); an ensemble's models must "
                              f"share task and encoding")
        members.append(model)
    return members


def _is_arc_evaluator(observer: Any) -> bool:
    from latentloop.evaluation.arc import ArcEvaluator   # ARC modules load only when ARC votes are asked for

    return isinstance(observer, ArcEvaluator)


def task_or_none(cfg: RunConfig, data: Path | None) -> Task | None:
    """The checkpoint's task; None for plain token data of no known task (evaluated without task metrics)."""
    try:
        return task_of_config(cfg, data)
    except DataError:
        if cfg.task.get("name"):
            raise
        return None


def _beside_checkpoint(checkpoint: str | Path, prefix: str) -> Path:
    """A folder next to the checkpoint (folder, or official checkpoint file), named after it; for a Hub checkpoint
    one in the current folder (never inside the Hub's cache)."""
    if is_hub_path(checkpoint):
        return Path(f"{prefix}{parse_hub_path(str(checkpoint)).repo_id.replace('/', '_')}")
    path = Path(checkpoint)
    if not (path.is_file() and path.name != WEIGHTS):
        path = resolve_checkpoint(path)
    return path.parent / f"{prefix}{path.name}"
