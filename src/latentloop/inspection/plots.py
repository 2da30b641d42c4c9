"""Training-curve pictures from a run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from latentloop.errors import DataError  # noqa: E402
from latentloop.paths import ensure_output_file  # noqa: E402


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(f"{path} not found: is this a training run folder?")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(f"{path}:{number} is not valid JSON") from None
    return records


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Loss, exact accuracy (train and held-out), halting accuracy, steps used, learning rate, and the held-out
    accuracy after each supervision step of the last evaluation, as one PNG."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if "train/lm_loss" in r]
    evals = [r for r in records if "eval/exact_accuracy" in r]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))

    def series(rows, key):
        return [r["step"] for r in rows], [r[key] for r in rows]

    panels = [
        (axes[0, 0], "loss (per sample)", [(train, "train/lm_loss", "train lm"), (train, "train/q_halt_loss", "train halt"),
                                            (evals, "eval/lm_loss", "held-out lm")]),
        (axes[0, 1], "exact accuracy", [(train, "train/exact_accuracy", "train (halted rows)"),
                                        (evals, "eval/exact_accuracy", "held-out")]),
        (axes[0, 2], "halting accuracy", [(train, "train/q_halt_accuracy", "train"),
                                          (evals, "eval/q_halt_accuracy", "held-out")]),
        (axes[1, 0], "supervision steps used", [(train, "train/steps", "train (halted rows)")]),
        (axes[1, 1], "learning rate", [(train, "lr", "lr")]),
    ]
    for ax, title, lines in panels:
        for rows, key, label in lines:
            rows = [r for r in rows if key in r]
            if rows:
                xs, ys = series(rows, key)
                ax.plot(xs, ys, marker="o" if rows is evals or len(rows) < 5 else None, label=label)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    ax = axes[1, 2]
    if evals and evals[-1].get("eval/per_step_exact_accuracy"):
        per_step = evals[-1]["eval/per_step_exact_accuracy"]
        ax.bar(range(1, len(per_step) + 1), per_step, color="tab:green")
        for i, value in enumerate(per_step, 1):
            ax.text(i, value, f"{value:.0%}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 1.05)
    ax.set_title("held-out exact accuracy after each supervision step")
    ax.set_xlabel("supervision step")
    return save_figure(fig, Path(out) if out else run_dir / "curves.png", title=run_dir.name)


def save_figure(fig, path: str | Path, title: str = "", dpi: int = 110) -> Path:
    """Title, lay out, write and close a figure: every PNG the project draws ends here (closing frees its memory in
    long sweeps)."""
    try:
        path = ensure_output_file(path)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
