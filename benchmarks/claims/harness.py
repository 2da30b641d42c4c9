"""Run small seeded experiments (variants x seeds), cache each run, and turn the results into tables and plots.

Every run is an ordinary training of a preset with `key=value` overrides through the library's API, so any table row
can be reproduced by hand with `latentloop train PRESET k=v ...`. A run's result is cached in its own folder under a
key made from its full overrides and seed: variants shared by several claims (the default TRM appears in four) are
trained once, and an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from latentloop.inspection.plots import save_figure  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """One configuration of an experiment. `steps_factor` trains a cheaper model for longer (on as many more fresh
    puzzles), for comparisons at equal wall clock; `eval_steps` > 0 also evaluates the final model for that many
    supervision steps (held-out accuracy after each one)."""

    label: str
    overrides: tuple[str, ...] = ()
    steps_factor: int = 1
    eval_steps: int = 0


@dataclass(frozen=True)
class Experiment:
    """A claim and the variants that test it, on `preset` with `shared` overrides for every run (the ones the task
    needs to learn in a short run), `steps` training steps and `num_test` held-out puzzles at scale 1. `plot` is
    "bars", "steps" (accuracy against test-time steps) or "lengths" (accuracy against the length of a sequence task's
    rows, from its `<task>/exact@L=<length>` metrics)."""

    key: str
    title: str
    claim: str
    variants: tuple[Variant, ...]
    plot: str = "bars"
    preset: str = "cpu-sudoku6"
    shared: tuple[str, ...] = ()
    steps: int = 400
    num_test: int = 500


@dataclass(frozen=True)
class Setup:
    """What every run shares: the preset, training length, held-out size, extra overrides and output folder.
    `scale` multiplies the training steps (and the generated training set, one epoch = one pass)."""

    preset: str
    base_steps: int
    batch_size: int
    num_test: int
    data_prefix: str
    out_dir: Path
    scale: float = 1.0
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """One training run (a variant at one seed), fully resolved to overrides and a cache folder."""

    experiment: str
    label: str
    seed: int
    preset: str
    overrides: tuple[str, ...]
    run_dir: Path
    eval_steps: int = 0


def job_overrides(setup: Setup, variant: Variant, seed: int) -> tuple[str, ...]:
    """The full override list of a run: one epoch over a generated set sized for the wanted number of steps, one
    evaluation at the end, only the last checkpoint kept, then the variant's and the user's overrides."""
    num_train = max(1, round(setup.base_steps * setup.scale)) * variant.steps_factor * setup.batch_size
    base = (f"data_path={setup.data_prefix}-{num_train}-{setup.num_test}", f"data.num_train={num_train}",
            f"data.num_test={setup.num_test}", f"global_batch_size={setup.batch_size}", "epochs=1",
            "eval_interval=1", "keep_last=1", "keep_best=", "threads=1", f"train.seed={seed}")
    return base + variant.overrides + setup.extra


def run_key(preset: str, overrides: tuple[str, ...]) -> str:
    """A short stable name for a run's configuration; identical configurations share a folder and a result."""
    return hashlib.sha1("\n".join((preset, *overrides)).encode()).hexdigest()[:10]


def plan(experiments: list[tuple[Experiment, Setup]], seeds: list[int]) -> list[Job]:
    """All runs, seed-major (every claim gets its first seed before any gets its second), without duplicates; a
    variant needing a longer evaluation than a duplicate of it keeps the longer one."""
    jobs: dict[Path, Job] = {}
    for seed in seeds:
        for experiment, setup in experiments:
            for variant in experiment.variants:
                overrides = job_overrides(setup, variant, seed)
                run_dir = setup.out_dir / "runs" / f"{run_key(setup.preset, overrides)}-s{seed}"
                existing = jobs.get(run_dir)
                if existing is None:
                    jobs[run_dir] = Job(experiment.key, variant.label, seed, setup.preset, overrides, run_dir,
                                        variant.eval_steps)
                elif variant.eval_steps > existing.eval_steps:
                    jobs[run_dir] = replace(existing, eval_steps=variant.eval_steps)
    return list(jobs.values())


def _quiet(*_: object) -> None:
    """The log function of runs in worker processes: their results go to result.json, not the terminal."""


def run_job(job: Job) -> dict[str, Any]:
    """Train (unless result.json exists), then evaluate for `eval_steps` steps if asked and not yet done."""
    from latentloop.api import evaluate_checkpoint, prepare_run
    from latentloop.training.loop import train

    path = job.run_dir / "result.json"
    if path.exists():
        record = json.loads(path.read_text())
    else:
        cfg = prepare_run(job.preset, [*job.overrides, f"out_dir={job.run_dir}"], log=_quiet)
        result = train(cfg, progress=False, log=_quiet)
        ev = result.final_eval
        assert ev is not None  # every run evaluates at its last step
        record = {"preset": job.preset, "overrides": list(job.overrides), "seed": job.seed,
                  "params": result.num_params, "steps": result.steps, "seconds": round(result.seconds, 1),
                  "exact_accuracy": ev.exact_accuracy, "accuracy": ev.accuracy, "num_examples": ev.num_examples,
                  "per_step_exact_accuracy": ev.per_step_exact_accuracy, "lengths": _per_length(ev.summary())}
    if job.eval_steps and len(record.get("test_time_steps", [])) < job.eval_steps:
        ev = evaluate_checkpoint(job.run_dir, steps=job.eval_steps, batch_size=500).result
        record["test_time_steps"] = ev.per_step_exact_accuracy
    path.write_text(json.dumps(record, indent=1))
    return record


def _per_length(summary: dict[str, Any]) -> dict[str, float]:
    """A sequence task's exact accuracy per row length (`<task>/exact@L=<length>`), keyed by the length."""
    return {key.rsplit("=", 1)[1]: value for key, value in summary.items() if "/exact@L=" in key}


def run_all(jobs: list[Job], workers: int, log=print) -> None:
    """Run the jobs, `workers` at a time, each in its own process (one thread each, set by the overrides)."""
    todo = [j for j in jobs if not _done(j)]
    log(f"{len(jobs) - len(todo)} of {len(jobs)} runs already done; running {len(todo)} with {workers} worker(s)")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in todo}
        for number, future in enumerate(futures, 1):
            record = future.result()
            job = futures[future]
            log(f"[{number}/{len(todo)}] {job.experiment}: {job.label} seed {job.seed}: exact "
                f"{record['exact_accuracy']:.1%} in {record['seconds'] / 60:.1f} min ({job.run_dir.name})")


def _done(job: Job) -> bool:
    path = job.run_dir / "result.json"
    if not path.exists():
        return False
    return not job.eval_steps or len(json.loads(path.read_text()).get("test_time_steps", [])) >= job.eval_steps


@dataclass
class Summary:
    """A variant's results over its seeds."""

    label: str
    overrides: tuple[str, ...]
    params: int
    steps: int
    minutes: float                       # mean wall time of one run
    exact: list[float]                   # final held-out exact accuracy, one per seed
    cell: list[float]
    test_time: list[list[float]] = field(default_factory=list)   # per seed: accuracy after each test-time step
    lengths: list[dict[int, float]] = field(default_factory=list)  # per seed: exact accuracy per row length

    @property
    def mean(self) -> float:
        return statistics.fmean(self.exact)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.exact) if len(self.exact) > 1 else 0.0


def summarise(experiment: Experiment, setup: Setup, seeds: list[int]) -> list[Summary]:
    """Collect each variant's finished runs (missing seeds are left out, so a partial sweep still reports)."""
    rows = []
    for variant in experiment.variants:
        records = []
        for seed in seeds:
            overrides = job_overrides(setup, variant, seed)
            path = setup.out_dir / "runs" / f"{run_key(setup.preset, overrides)}-s{seed}" / "result.json"
            if path.exists():
                records.append(json.loads(path.read_text()))
        if not records:
            continue
        rows.append(Summary(
            label=variant.label, overrides=variant.overrides, params=records[0]["params"],
            steps=records[0]["steps"], minutes=statistics.fmean(r["seconds"] for r in records) / 60,
            exact=[r["exact_accuracy"] for r in records], cell=[r["accuracy"] for r in records],
            test_time=[r["test_time_steps"] for r in records if "test_time_steps" in r],
            lengths=[{int(k): v for k, v in r["lengths"].items()} for r in records if r.get("lengths")]))
    return rows


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def spread(values: list[float]) -> str:
    """Mean ± sample standard deviation in percent; the mean alone for a single seed."""
    if len(values) < 2:
        return percent(values[0])
    return f"{percent(statistics.fmean(values))} ± {percent(statistics.stdev(values))}"


def markdown_table(rows: list[Summary]) -> str:
    """Exact accuracy as mean ± sample standard deviation over seeds and every seed's value, in percent."""
    lines = ["| variant | overrides | params | train steps | min/run | seeds | exact acc % (mean ± sd) | per seed | "
             "cell acc % |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        overrides = " ".join(f"`{o}`" for o in r.overrides) or "(shared setup)"
        seeds = ", ".join(percent(v) for v in r.exact)
        lines.append(f"| {r.label} | {overrides} | {r.params:,} | {r.steps:,} | {r.minutes:.1f} | {len(r.exact)} | "
                     f"{spread(r.exact)} | {seeds} | {percent(statistics.fmean(r.cell))} |")
    return "\n".join(lines)


def test_time_table(rows: list[Summary], steps: tuple[int, ...] = (1, 2, 4, 8, 16)) -> str:
    """Held-out exact accuracy (mean ± sd over seeds) after k test-time supervision steps, for each trained model."""
    rows = [r for r in rows if r.test_time]
    shown = [k for k in steps if all(len(t) >= k for r in rows for t in r.test_time)]
    lines = ["| trained as | " + " | ".join(f"{k} step{'s' * (k > 1)}" for k in shown) + " |",
             "|---|" + "---|" * len(shown)]
    for r in rows:
        lines.append(f"| {r.label} | " + " | ".join(spread([t[k - 1] for t in r.test_time]) for k in shown) + " |")
    return "\n".join(lines)


def length_table(rows: list[Summary]) -> str:
    """Held-out exact accuracy (mean ± sd over seeds) per row length, for each variant."""
    rows = [r for r in rows if r.lengths]
    if not rows:
        return ""
    shown = sorted(set.intersection(*(set(d) for r in rows for d in r.lengths)))
    lines = ["| variant | " + " | ".join(f"L={k}" for k in shown) + " |", "|---|" + "---|" * len(shown)]
    for r in rows:
        lines.append(f"| {r.label} | " + " | ".join(spread([d[k] for d in r.lengths]) for k in shown) + " |")
    return "\n".join(lines)


def plot(experiment: Experiment, rows: list[Summary], path: Path) -> Path:
    """Bars of mean exact accuracy with sd error bars and each seed as a dot, or accuracy against test-time steps."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.2))
    if experiment.plot == "steps":
        for r in rows:
            if not r.test_time:
                continue
            k = min(len(t) for t in r.test_time)
            xs = list(range(1, k + 1))
            means = [statistics.fmean(t[i] for t in r.test_time) * 100 for i in range(k)]
            sds = [(statistics.stdev([t[i] for t in r.test_time]) * 100 if len(r.test_time) > 1 else 0.0)
                   for i in range(k)]
            ax.plot(xs, means, marker="o", markersize=3, label=r.label)
            ax.fill_between(xs, [m - s for m, s in zip(means, sds)], [m + s for m, s in zip(means, sds)], alpha=0.2)
        ax.set_xscale("log", base=2)
        powers = [k for k in range(1, max(len(t) for r in rows for t in r.test_time) + 1) if k & (k - 1) == 0]
        ax.set_xticks(powers, [str(k) for k in powers])
        ax.set_xlabel("supervision steps at test time")
        ax.legend(fontsize=8)
    elif experiment.plot == "lengths":
        for r in rows:
            if not r.lengths:
                continue
            xs = sorted(set.intersection(*(set(d) for d in r.lengths)))
            means = [statistics.fmean(d[k] for d in r.lengths) * 100 for k in xs]
            (line,) = ax.plot(xs, means, marker="o", markersize=3, label=r.label)
            for d in r.lengths:
                ax.scatter(xs, [d[k] * 100 for k in xs], s=6, alpha=0.4, color=line.get_color())
        ax.set_xlabel("length of the held-out row")
        ax.legend(fontsize=8)
    else:
        xs = range(len(rows))
        ax.bar(xs, [r.mean * 100 for r in rows], yerr=[r.sd * 100 for r in rows], capsize=4, color="#8fb3d9")
        for x, r in zip(xs, rows):
            ax.scatter([x] * len(r.exact), [v * 100 for v in r.exact], color="black", s=10, zorder=3)
        ax.set_xticks(list(xs), [r.label for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("held-out exact accuracy (%)")
    ax.set_title(experiment.title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def report(experiment: Experiment, setup: Setup, seeds: list[int]) -> str:
    """Write `<key>.json`, `<key>.md` and `<key>.png` into the output folder; return the markdown."""
    rows = summarise(experiment, setup, seeds)
    text = f"## {experiment.title}\n\n{experiment.claim}\n\n{markdown_table(rows)}\n"
    if experiment.plot == "steps":
        text += f"\n{test_time_table(rows)}\n"
    if experiment.plot == "lengths":
        text += f"\n{length_table(rows)}\n"
    out = setup.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{experiment.key}.md").write_text(text)
    (out / f"{experiment.key}.json").write_text(json.dumps(
        [{**r.__dict__, "mean": r.mean, "sd": r.sd} for r in rows], indent=1))
    if rows:
        plot(experiment, rows, out / f"{experiment.key}.png")
    return text
