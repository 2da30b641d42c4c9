"""Accuracy and speed against test-time compute: supervision steps, recursions T and n, early halting, test-time
augmentation voting, noisy trajectories and ensembles, so a user can pick an operating point.

This is the measurement behind "a model trained with 16 steps keeps most of its accuracy with fewer at test time".
Compute is counted as supervision steps per puzzle over all its copies (one step is T(n+1) network calls), and as
puzzles per second measured in the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from latentloop.evaluation.evaluate import evaluate, format_rate  # noqa: E402
from latentloop.inspection.plots import save_figure  # noqa: E402
from latentloop.tasks.augmentation import Augmentation  # noqa: E402


@dataclass
class SweepRow:
    mode: str            # "fixed" (every puzzle runs `steps`) or "halt p>x" (per-puzzle halting)
    steps: int           # supervision steps allowed
    T: int
    n: int
    exact_accuracy: float
    accuracy: float
    mean_steps: float
    puzzles_per_second: float
    steps_per_puzzle: float = 0.0   # supervision steps spent on a puzzle over all its copies (compute)


def _row(mode: str, steps: int, T: int, n: int, r) -> SweepRow:
    return SweepRow(mode, steps, T, n, r.exact_accuracy, r.accuracy, r.steps, r.examples_per_second,
                    r.metrics.get("steps_per_puzzle", r.steps))


def sweep(model, split, metadata, steps_list: list[int], T_list: list[int] | None = None,
          n_list: list[int] | None = None, halt_thresholds: list[float] | None = None, batch_size: int = 256,
          max_examples: int = 0, loss: str = "stablemax_cross_entropy", device=None,
          tta: Sequence[Sequence[Augmentation]] = (), trajectories: Sequence[int] = (), noise: float = 0.1,
          ensemble: Sequence = ()) -> list[SweepRow]:
    """One row per (T, n, steps) in fixed mode; one per halting threshold, halting within the largest step count;
    at the trained N_sup (the official evaluation), one per TTA transform set in `tta` (voting) and one per number
    of noisy `trajectories`; and with `ensemble` (further models) one row of their vote at N_sup and one of
    halt-first within the largest step count."""
    cfg = model.inner.cfg
    device = device or next(model.parameters()).device
    original = (cfg.T, cfg.n)
    rows: list[SweepRow] = []
    try:
        for T in T_list or [cfg.T]:
            for n in n_list or [cfg.n]:
                cfg.T, cfg.n = T, n
                for steps in steps_list:
                    r = evaluate(model, split, metadata, batch_size, device, steps=steps, max_examples=max_examples,
                                 loss=loss)
                    rows.append(_row("fixed", steps, T, n, r))
        cfg.T, cfg.n = original

        def at(steps: int, mode: str, **options) -> None:
            r = evaluate(model, split, metadata, batch_size, device, steps=steps, max_examples=max_examples,
                         loss=loss, **options)
            rows.append(_row(mode, steps, cfg.T, cfg.n, r))

        most, trained = max(steps_list), model.N_sup
        for threshold in halt_thresholds or []:
            at(most, f"halt p>{threshold:g}", halt_early=True, threshold=threshold)
        for augmentations in tta:
            at(trained, f"tta {len(augmentations)}", augmentations=augmentations)
        for k in trajectories:
            at(trained, f"trajectories {k}", trajectories=k, noise=noise)
        if ensemble:
            at(trained, f"ensemble {1 + len(ensemble)} vote", ensemble=ensemble)
            at(most, f"ensemble {1 + len(ensemble)} halt-first", ensemble=ensemble, halt_early=True,
               combine_mode="halt-first")
    finally:
        cfg.T, cfg.n = original
    return rows


def format_table(rows: list[SweepRow]) -> str:
    header = "| mode | steps | T | n | exact acc | cell acc | mean steps | steps per puzzle | puzzles/s |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r.mode} | {r.steps} | {r.T} | {r.n} | {r.exact_accuracy:.1%} | {r.accuracy:.1%} | "
                     f"{r.mean_steps:.2f} | {r.steps_per_puzzle:.1f} | {format_rate(r.puzzles_per_second)} |")
    return "\n".join(lines)


def plot_sweep(rows: list[SweepRow], path: str | Path, title: str = "") -> Path:
    """Exact accuracy (left) and puzzles per second (middle) against supervision steps, one line per (T, n), and
    exact accuracy against compute, supervision steps per puzzle over all its copies, for every row (right)."""
    fig, (acc_ax, speed_ax, compute_ax) = plt.subplots(1, 3, figsize=(16, 4))
    fixed = [r for r in rows if r.mode == "fixed"]
    for key in dict.fromkeys((r.T, r.n) for r in fixed):
        sel = [r for r in fixed if (r.T, r.n) == key]
        label = f"T={key[0]}, n={key[1]}"
        acc_ax.plot([r.steps for r in sel], [r.exact_accuracy for r in sel], marker="o", label=label)
        speed_ax.plot([r.steps for r in sel], [r.puzzles_per_second for r in sel], marker="o", label=label)
    for r in rows:
        if r.mode != "fixed":
            acc_ax.scatter([r.mean_steps], [r.exact_accuracy], marker="*", s=150, zorder=5,
                           label=f"{r.mode} (mean {r.mean_steps:.2f} steps)")
            speed_ax.scatter([r.mean_steps], [r.puzzles_per_second], marker="*", s=150, zorder=5, label=r.mode)
    for r in rows:
        compute_ax.scatter([r.steps_per_puzzle], [r.exact_accuracy], marker="o" if r.mode == "fixed" else "*",
                           s=40 if r.mode == "fixed" else 120, zorder=5, label=None if r.mode == "fixed" else r.mode)
        compute_ax.annotate(r.mode if r.mode != "fixed" else f"{r.steps}", (r.steps_per_puzzle, r.exact_accuracy),
                            fontsize=7, textcoords="offset points", xytext=(4, -8))
    compute_ax.set_xscale("log")
    for ax, name in ((acc_ax, "held-out exact accuracy"), (speed_ax, "puzzles per second"),
                     (compute_ax, "exact accuracy against compute")):
        ax.set_xlabel("supervision steps per puzzle, all copies" if ax is compute_ax
                      else "supervision steps at test time")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    acc_ax.set_ylim(0, 1.02)
    compute_ax.set_ylim(0, 1.02)
    return save_figure(fig, path, title)


def rows_as_dicts(rows: list[SweepRow]) -> list[dict]:
    return [asdict(r) for r in rows]
