#!/usr/bin/env python
"""Time to held-out accuracy of two or more training recipes, measured side by side in one invocation.

Every recipe is an ordinary `latentloop train PRESET key=value ...` run, trained by the library's own loop
(`latentloop.training.loop.train`). Recipes that generate the same data share one dataset, generated once and timed
(the data phase of `make demo`).

How the recipes share the machine: they take turns. Each trains for one slice of its own training time (`--every`
seconds on the loop's clock), is stopped there through the loop's preemption path (SIGTERM: finish the step, save a
checkpoint), its checkpoint is evaluated on the whole held-out split, and the next recipe takes the machine. A
resumed run continues bit for bit where it stopped (tests/test_training_resume.py), so the accuracy curve is that
of the uninterrupted recipe; only the clock readings come from slices. Taking turns is fairer on 2 cores than
running the recipes at the same time with one thread each: every recipe trains with all cores and the thread
setting it would have in `make demo`, the background load of any minute is spread over all recipes alike, and a
recipe that finishes first leaves no recipe alone on the machine for the rest of its run (the 1.82x against 2.28x
of docs/performance.md, section 4).

The evaluation points are the marks every `--every` seconds of a recipe's training time (the step in progress at a
mark is finished first, so a point lies up to one step past its mark; its real training time is what is recorded).
Training time is what the loop's clock counts: training steps, plus any evaluation the recipe's own eval_interval
schedules; not the start-up of a slice (data and checkpoint loading) nor the evaluations made here.

    python benchmarks/time_to_accuracy.py                         # cpu-sudoku6 in float32 against forward_dtype=auto
    python benchmarks/time_to_accuracy.py --recipe old cpu-sudoku6 forward_dtype=float32 \\
        --recipe new cpu-sudoku6 forward_dtype=bfloat16 lr=2e-3 --every 15
    python benchmarks/time_to_accuracy.py --quick --out /tmp/tta  # a smoke test of a few seconds
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentloop.api import prepare_run
from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data.format import read_split
from latentloop.errors import ConfigError, LatentloopError
from latentloop.evaluation.evaluate import evaluate
from latentloop.models.config import BF16_CPU_FLAGS, cpu_flags, native_bf16
from latentloop.paths import check_output_dir
from latentloop.training.checkpoint import load_checkpoint, load_train_state, resolve_checkpoint
from latentloop.training.loop import pick_device, train

# The cpu-sudoku6 recipe as it was before it was tuned for time to accuracy, spelled out key by key so that the
# comparison still measures the same "old" run once the preset's defaults change.
OLD_RECIPE = ("old", "cpu-sudoku6", ("forward_dtype=float32", "hidden_size=128", "layers=2", "T=2", "n=2", "N_sup=4",
                                     "global_batch_size=64", "epochs=1", "eval_interval=1", "lr=1e-3",
                                     "lr_min_ratio=1.0", "lr_warmup_steps=100", "ema=false",
                                     "loss=softmax_cross_entropy", "eval_batch_size=512", "threads=0",
                                     "data.num_train=100000", "data.num_test=1000"))
# The preset as it is (forward_dtype auto: bf16 where native), and the same recipe forced to fp32: what a CPU
# without native bf16 gets.
NEW_RECIPES = (("new", "cpu-sudoku6", ()), ("new-fp32", "cpu-sudoku6", ("forward_dtype=float32",)))
THRESHOLDS = (0.50, 0.85, 0.95)
# --quick: a model and a dataset small enough that the whole comparison takes seconds (applied after the recipes'
# own overrides, so it also shrinks the pinned old recipe; the dtypes stay the recipes' own).
QUICK_OVERRIDES = ("hidden_size=32", "num_heads=2", "layers=1", "n=1", "N_sup=2", "puzzle_emb_ndim=32",
                   "global_batch_size=32", "lr_warmup_steps=5", "eval_batch_size=64", "data.num_train=256",
                   "data.num_test=32")
QUICK_EVERY, QUICK_MAX_SECONDS = 1.0, 2.0
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")   # a recipe's label names its run folder
DEFAULT_THREADS = torch.get_num_threads()


@dataclass
class Point:
    """One evaluation of a recipe's checkpoint."""

    seconds: float          # training time on the loop's clock when the checkpoint was saved
    step: int
    exact_accuracy: float
    accuracy: float         # cells
    eval_seconds: float     # wall time of this evaluation (for the final point: the loop's own final evaluation)
    load: float             # 1-minute load average when the evaluation ended


@dataclass
class Recipe:
    label: str
    preset: str
    overrides: list[str]
    cfg: RunConfig
    run_dir: Path
    points: list[Point] = field(default_factory=list)
    done: bool = False                      # no more slices: the run ended, or reached --max-seconds
    ended: bool = False                     # the run ended (its last point is the loop's final evaluation)
    precision: str = ""
    data_seconds: float = 0.0               # generation of its dataset (0 where another recipe's was reused)
    startup_seconds: list[float] = field(default_factory=list)   # per slice: train() called -> the loop's clock

    @property
    def seconds(self) -> float:
        return self.points[-1].seconds if self.points else 0.0


class Usage(Exception):
    """A bad command line: one line on stderr, exit code 2."""


# ----------------------------------------------------------------------------------------------------------------
# Conditions of the measurement


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the machine architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() or "cpu"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (what `uptime` prints); empty where the system has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def conditions() -> dict[str, Any]:
    """What the numbers depend on: the CPU and its bf16 support, torch, threads and the load on the machine."""
    flags = cpu_flags() or set()
    native, why = native_bf16(torch.device("cpu"))
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": DEFAULT_THREADS, "bf16_flags": [f for f in BF16_CPU_FLAGS if f in flags],
            "avx512f": "avx512f" in flags, "native_bf16": native, "native_bf16_why": why}


# ----------------------------------------------------------------------------------------------------------------
# Recipes and their data


def parse_recipes(specs: list[list[str]] | None, quick: bool, out: Path) -> list[Recipe]:
    """`--recipe LABEL PRESET [KEY=VALUE ...]` as configs, each with its run folder under `out`; the data path of
    recipes that do not name one is `out/data-N`, one per distinct data section, so equal data is generated once."""
    specs = specs or [[label, preset, *overrides] for label, preset, overrides in (OLD_RECIPE, *NEW_RECIPES)]
    if len(specs) < 2:
        raise Usage("give at least two --recipe LABEL PRESET [KEY=VALUE ...] to compare")
    labels = [spec[0] for spec in specs]
    for spec in specs:
        if len(spec) < 2:
            raise Usage(f"--recipe {spec[0]}: give a label and a preset, then any KEY=VALUE overrides")
        if not LABEL.match(spec[0]):
            raise Usage(f"recipe label {spec[0]!r} must be letters, digits, '_', '.' or '-' (it names a folder)")
    if len(set(labels)) < len(labels):
        raise Usage(f"recipe labels must differ: {' '.join(labels)}")
    datasets: dict[str, Path] = {}
    recipes = []
    for label, preset, *overrides in specs:
        overrides = [*overrides, *(QUICK_OVERRIDES if quick else ())]
        cfg = apply_overrides(load_preset(preset), overrides)
        if not any(o.split("=", 1)[0] in ("data_path", "train.data_path") for o in overrides):
            key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
            datasets.setdefault(key, out / f"data-{len(datasets) + 1}")
            overrides.append(f"data_path={datasets[key]}")
        run_dir = out / label
        overrides.append(f"out_dir={run_dir}")
        recipes.append(Recipe(label, preset, overrides, apply_overrides(load_preset(preset), overrides), run_dir))
    return recipes


def prepare_data(recipe: Recipe, log) -> None:
    """Generate the recipe's dataset unless it exists (another recipe's, or given), timing the generation."""
    start = time.perf_counter()
    existed = (Path(recipe.cfg.train.data_path) / "train" / "dataset.json").exists()
    recipe.cfg = prepare_run(recipe.preset, recipe.overrides, log=lambda line: log(f"  {recipe.label}: {line}"))
    if not existed:
        recipe.data_seconds = time.perf_counter() - start


# ----------------------------------------------------------------------------------------------------------------
# Training slices


class SliceStopper:
    """Stops a `train()` call after a given training time through the loop's own SIGTERM path.

    The timer is (re)armed at every line the loop logs before its clock starts: the last of them (the memory report)
    comes right after the data, the model and any checkpoint are loaded. While the benchmark runs, a SIGTERM that
    reaches this process outside the loop's handler (one sent just as a slice ended by itself) is dropped if the
    stopper sent it, and ends the benchmark otherwise.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None
        self.armed = False
        self.fired = False
        self.called = 0.0
        self.clock_started = 0.0

    def __enter__(self) -> "SliceStopper":
        self.previous = signal.signal(signal.SIGTERM, self._stray)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self.previous)

    def _stray(self, signum: int, frame: object) -> None:
        if not self.fired:
            raise SystemExit(128 + signum)

    def _fire(self) -> None:
        with self.lock:
            if self.armed and not self.fired:   # a timer re-armed just as its predecessor fired stays quiet
                self.fired = True
                os.kill(os.getpid(), signal.SIGTERM)

    def train(self, cfg: RunConfig, seconds: float, resume: bool):
        """Train `cfg` for about `seconds` of training time; the TrainResult if the run ended, None if stopped."""
        self.fired, self.armed, self.called = False, True, time.perf_counter()
        self.clock_started = self.called

        def log(line: str) -> None:
            if self.fired:
                return
            if self.timer is not None:
                self.timer.cancel()
            self.clock_started = time.perf_counter()
            self.timer = threading.Timer(max(seconds, 0.0), self._fire)
            self.timer.daemon = True
            self.timer.start()

        torch.set_num_threads(cfg.train.threads or DEFAULT_THREADS)  # a previous recipe's setting must not linger
        try:
            return train(cfg, progress=False, resume=resume, log=log)
        except KeyboardInterrupt:
            if not self.fired:
                raise
            return None
        finally:
            with self.lock:
                self.armed = False
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None


def warm_up(recipes: list[Recipe], stopper: SliceStopper, folder: Path) -> None:
    """One training step of every recipe in a scratch folder, deleted afterwards: the first steps in a process pay
    one-time costs (lazy imports, kernel selection, allocator growth) that would otherwise fall on the clock of
    whichever recipe trains first."""
    for recipe in recipes:
        cfg = apply_overrides(copy.deepcopy(recipe.cfg), [f"out_dir={folder / recipe.label}"])
        stopper.train(cfg, 0.0, resume=False)
    shutil.rmtree(folder)


def evaluate_latest(recipe: Recipe) -> Point:
    """Evaluate the run's newest checkpoint on the held-out split, as the loop's own evaluation does."""
    directory = resolve_checkpoint(recipe.run_dir)
    state = load_train_state(directory)
    start = time.perf_counter()
    model, cfg = load_checkpoint(directory, pick_device(recipe.cfg.train.device))
    split, meta = read_split(Path(cfg.train.data_path) / "test")
    t = cfg.train
    result = evaluate(model, split, meta, t.eval_batch_size or t.global_batch_size, next(model.parameters()).device,
                      max_examples=t.eval_max_examples, loss=t.loss)
    return Point(seconds=round(float(state["seconds"]), 3), step=int(state["step"]),
                 exact_accuracy=result.exact_accuracy, accuracy=result.accuracy,
                 eval_seconds=round(time.perf_counter() - start, 3), load=(load_average() or [math.nan])[0])


def final_point(result) -> Point:
    """The point of a run that ended: the loop's final evaluation, at the time of its last training record."""
    trained = [r for r in result.history if "lr" in r and r["step"] == result.steps]
    seconds = trained[-1]["time"] if trained else result.seconds
    ev = result.final_eval
    return Point(seconds=round(float(seconds), 3), step=result.steps, exact_accuracy=ev.exact_accuracy,
                 accuracy=ev.accuracy, eval_seconds=round(result.seconds - seconds, 3),
                 load=(load_average() or [math.nan])[0])


def read_precision(run_dir: Path) -> str:
    """The precision the run uses, from the first record of its metrics.jsonl."""
    with open(run_dir / "metrics.jsonl") as handle:
        return json.loads(handle.readline()).get("precision", "")


def train_slice(recipe: Recipe, stopper: SliceStopper, every: float, max_seconds: float) -> Point:
    """Train the recipe to its next mark (or its end), then evaluate; the new point."""
    mark = (math.floor(recipe.seconds / every + 1e-9) + 1) * every
    if max_seconds:
        mark = min(mark, max_seconds)
    result = stopper.train(recipe.cfg, mark - recipe.seconds, resume=bool(recipe.points))
    recipe.startup_seconds.append(round(stopper.clock_started - stopper.called, 3))
    if not recipe.precision:
        recipe.precision = read_precision(recipe.run_dir)
    if result is not None:
        recipe.done = recipe.ended = True
        point = final_point(result)
    else:
        point = evaluate_latest(recipe)
        recipe.done = bool(max_seconds) and point.seconds >= max_seconds - 1e-6
    recipe.points.append(point)
    return point


# ----------------------------------------------------------------------------------------------------------------
# Results


def time_to(points: list[Point], threshold: float) -> Point | None:
    """The first point at or above `threshold` exact accuracy (so the time is known to one mark)."""
    return next((p for p in points if p.exact_accuracy >= threshold - 1e-12), None)


def summary(recipes: list[Recipe]) -> list[dict[str, Any]]:
    """Per recipe: times and steps to each threshold, the ratio of those times to the first recipe's, final
    accuracy, and the phases of a `make demo`-like run (data generation, start-up, training, evaluation)."""
    first = recipes[0]
    rows = []
    for r in recipes:
        row: dict[str, Any] = {"recipe": r.label, "precision": r.precision, "forward_dtype": r.cfg.model.forward_dtype,
                               "ended": r.ended,
                               "steps": r.points[-1].step if r.points else 0, "training_seconds": r.seconds,
                               "final_exact_accuracy": r.points[-1].exact_accuracy if r.points else math.nan,
                               "final_accuracy": r.points[-1].accuracy if r.points else math.nan,
                               "data_seconds": round(r.data_seconds, 2),
                               "startup_seconds": r.startup_seconds[0] if r.startup_seconds else 0.0,
                               "eval_seconds": statistics.median(p.eval_seconds for p in r.points) if r.points
                               else 0.0,
                               "final_eval_seconds": r.points[-1].eval_seconds if r.ended else None, "to": {}}
        for threshold in THRESHOLDS:
            hit, base = time_to(r.points, threshold), time_to(first.points, threshold)
            row["to"][f"{threshold:.2f}"] = {
                "seconds": hit.seconds if hit else None, "step": hit.step if hit else None,
                "ratio_to_first": round(hit.seconds / base.seconds, 3) if hit and base and base.seconds else None}
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], first: str) -> str:
    """The markdown table of the comparison: one row per recipe."""
    def seconds(value: float | None) -> str:
        return "not reached" if value is None else f"{value:,.1f}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    header = ["recipe", "dtype", "steps", "training s", "final exact", "cells",
              *(f"to {100 * t:.0f}% s" for t in THRESHOLDS), *(f"{100 * t:.0f}% / {first}" for t in THRESHOLDS)]
    body = []
    for row in rows:
        to = [row["to"][f"{t:.2f}"] for t in THRESHOLDS]
        body.append([row["recipe"], row["forward_dtype"], f"{row['steps']:,}", f"{row['training_seconds']:,.1f}",
                     f"{row['final_exact_accuracy']:.1%}", f"{row['final_accuracy']:.1%}",
                     *(seconds(x["seconds"]) for x in to), *(ratio(x["ratio_to_first"]) for x in to)])
    return markdown(header, body)


def format_phases(rows: list[dict[str, Any]]) -> str:
    """The phases of each recipe's run as `make demo` spends them once set up: data generation, start-up (data, model
    and optimizer built; imports not counted), training and the final evaluation (the median evaluation of the
    marks where the run did not reach its end)."""
    header = ["recipe", "data generation s", "start-up s", "training s", "evaluation s", "sum s",
              "evaluation s per mark (median)"]
    body = []
    for row in rows:
        final = row["final_eval_seconds"]
        evaluation = final if final is not None else row["eval_seconds"]
        total = row["data_seconds"] + row["startup_seconds"] + row["training_seconds"] + evaluation
        body.append([row["recipe"], f"{row['data_seconds']:,.1f}", f"{row['startup_seconds']:,.2f}",
                     f"{row['training_seconds']:,.1f}", f"{evaluation:,.1f}" + ("" if final is not None else " (mark)"),
                     f"{total:,.1f}", f"{row['eval_seconds']:,.1f}"])
    return markdown(header, body)


def markdown(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |" for cells in body])


def plot(recipes: list[Recipe], path: Path, title: str) -> Path:
    """Held-out exact accuracy against training seconds, one line per recipe, the thresholds dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentloop.inspection.plots import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in recipes:
        ax.plot([p.seconds for p in r.points], [100 * p.exact_accuracy for p in r.points], marker="o", markersize=3,
                label=f"{r.label} ({r.cfg.model.forward_dtype})")
    for threshold in THRESHOLDS:
        ax.axhline(100 * threshold, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("training seconds (the loop's clock)")
    ax.set_ylabel("held-out exact accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, title=title)


def write_json(path: Path, recipes: list[Recipe], info: dict[str, Any]) -> None:
    """Every point of every recipe, with the conditions; rewritten after each point so a run cut short keeps them."""
    record = {**info, "recipes": [{"label": r.label, "preset": r.preset, "overrides": r.overrides,
                                   "run_dir": str(r.run_dir), "data_path": r.cfg.train.data_path,
                                   "precision": r.precision, "forward_dtype": r.cfg.model.forward_dtype,
                                   "ended": r.ended, "data_seconds": round(r.data_seconds, 3),
                                   "startup_seconds": r.startup_seconds, "points": [asdict(p) for p in r.points]}
                                  for r in recipes]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", nargs="+", metavar="ARG",
                        help="LABEL PRESET [KEY=VALUE ...], as `latentloop train PRESET KEY=VALUE ...` takes them; "
                             "repeat for each recipe, the first is the reference of the ratios (default: old = "
                             "cpu-sudoku6 as it was, in float32; new = cpu-sudoku6; new-fp32 = cpu-sudoku6 "
                             "forward_dtype=float32)")
    parser.add_argument("--every", type=float, default=None,
                        help="seconds of training time between evaluations, also each recipe's turn on the machine "
                             f"(default 15, {QUICK_EVERY:g} with --quick)")
    parser.add_argument("--max-seconds", type=float, default=-1.0,
                        help="stop each recipe after this much training time (default 0: train every recipe to its "
                             f"end; {QUICK_MAX_SECONDS:g} with --quick)")
    parser.add_argument("--out", default="runs/time-to-accuracy",
                        help="folder for the datasets, the runs, results.json and accuracy.png (must not exist yet, "
                             "or be empty; default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test of seconds: a tiny model on a few hundred puzzles (the recipes' dtypes "
                             "are kept), 1 s marks, 2 s per recipe")
    args = parser.parse_args(argv)
    if args.every is None:
        args.every = QUICK_EVERY if args.quick else 15.0
    if args.max_seconds < 0:
        args.max_seconds = QUICK_MAX_SECONDS if args.quick else 0.0
    if not (math.isfinite(args.every) and args.every > 0 and math.isfinite(args.max_seconds)):
        raise Usage("--every must be a positive number of seconds and --max-seconds a finite one")
    return args


def run(args: argparse.Namespace, log=print) -> list[dict[str, Any]]:
    """The whole comparison; returns the summary rows (also printed, and written to results.json)."""
    out = Path(args.out)
    check_output_dir(out, what="the benchmark folder", hint="choose another with --out", error=ConfigError)
    if out.exists() and any(out.iterdir()):
        raise Usage(f"{out} already holds files; choose another folder with --out (the runs start from scratch)")
    recipes = parse_recipes(args.recipe, args.quick, out)
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "every": args.every,
                            "max_seconds": args.max_seconds, "quick": args.quick, "conditions": conditions(),
                            "load_before": load_average()}
    c = info["conditions"]
    log(f"time to accuracy on {c['cpu']} ({c['logical_cpus']} logical CPUs, {c['native_bf16_why']}), torch "
        f"{c['torch']}, {c['threads']} threads; load average {info['load_before']} (1, 5, 15 min)")
    log(f"recipes take turns of {args.every:g} s of training time, each evaluated on its held-out split after its "
        f"turn" + (f", up to {args.max_seconds:g} s each" if args.max_seconds else ", each to its end"))
    for recipe in recipes:
        prepare_data(recipe, log)
        if recipe.data_seconds:
            log(f"  {recipe.label}: generated {recipe.cfg.train.data_path} in {recipe.data_seconds:.1f} s")
    results = out / "results.json"
    with SliceStopper() as stopper:
        warm_up(recipes, stopper, out / "warm-up")
        while not all(r.done for r in recipes):
            for recipe in recipes:
                if recipe.done:
                    continue
                point = train_slice(recipe, stopper, args.every, args.max_seconds)
                log(f"  {recipe.label:>8} {point.seconds:8.1f} s, step {point.step:6,}: exact {point.exact_accuracy:6.1%}"
                    f" (cells {point.accuracy:.1%}), evaluated in {point.eval_seconds:.1f} s, load {point.load:.2f}"
                    + ("  (end)" if recipe.done else ""))
                write_json(results, recipes, info)
    info["load_after"] = load_average()
    rows = summary(recipes)
    info["summary"] = rows
    write_json(results, recipes, info)
    png = plot(recipes, out / "accuracy.png", f"time to accuracy, {c['cpu']}")
    log("")
    log(format_table(rows, recipes[0].label))
    log("")
    log(format_phases(rows))
    log("")
    log("precision: " + "; ".join(f"{r.label}: {r.precision}" for r in recipes))
    log(f"Time to X% = training time of the first evaluation at or above X% held-out exact accuracy (known to one "
        f"mark of {args.every:g} s); X% / {recipes[0].label} = that time over {recipes[0].label}'s. Load average "
        f"before {info['load_before']}, after {info['load_after']} (1, 5, 15 min; numbers from a loaded machine are "
        f"not comparable with idle ones, the ratios between recipes are).")
    log(f"wrote {results} and {png}")
    return rows


def main(argv: list[str] | None = None) -> int:
    try:
        run(parse_args(argv))
    except (Usage, LatentloopError) as exc:
        print(f"time_to_accuracy: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("time_to_accuracy: interrupted; the points so far are in results.json", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
