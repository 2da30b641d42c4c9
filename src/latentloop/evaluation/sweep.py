"""Accuracy and speed against test-time compute: supervision steps, recursions T and n, and early halting.

This is the measurement behind "a model trained with 16 steps keeps most of its accuracy with fewer at test time".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from latentloop.evaluation.evaluate import evaluate  # noqa: E402
from latentloop.inspection.plots import save_figure  # noqa: E402


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


def sweep(model, split, metadata, steps_list: list[int], T_list: list[int] | None = None,
          n_list: list[int] | None = None, halt_thresholds: list[float] | None = None, batch_size: int = 256,
          max_examples: int = 0, loss: str = "stablemax_cross_entropy", device=None) -> list[SweepRow]:
    """One row per (T, n, steps) in fixed mode, plus one per halting threshold at the largest step count."""
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
                    rows.append(SweepRow("fixed", steps, T, n, r.exact_accuracy, r.accuracy, r.steps,
                                         r.examples_per_second))
        cfg.T, cfg.n = original
        for threshold in halt_thresholds or []:
            r = evaluate(model, split, metadata, batch_size, device, steps=max(steps_list), halt_early=True,
                         max_examples=max_examples, loss=loss, threshold=threshold)
            rows.append(SweepRow(f"halt p>{threshold:g}", max(steps_list), cfg.T, cfg.n, r.exact_accuracy,
                                 r.accuracy, r.steps, r.examples_per_second))
    finally:
        cfg.T, cfg.n = original
    return rows


def format_table(rows: list[SweepRow]) -> str:
    header = "| mode | steps | T | n | exact acc | cell acc | mean steps | puzzles/s |"
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r.mode} | {r.steps} | {r.T} | {r.n} | {r.exact_accuracy:.1%} | {r.accuracy:.1%} | "
                     f"{r.mean_steps:.2f} | {r.puzzles_per_second:,.0f} |")
    return "\n".join(lines)


def plot_sweep(rows: list[SweepRow], path: str | Path, title: str = "") -> Path:
    """Exact accuracy (left) and puzzles per second (right) against supervision steps, one line per (T, n)."""
    fig, (acc_ax, speed_ax) = plt.subplots(1, 2, figsize=(11, 4))
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
    for ax, name in ((acc_ax, "held-out exact accuracy"), (speed_ax, "puzzles per second")):
        ax.set_xlabel("supervision steps at test time")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    acc_ax.set_ylim(0, 1.02)
    return save_figure(fig, path, title)


def rows_as_dicts(rows: list[SweepRow]) -> list[dict]:
    return [asdict(r) for r in rows]
