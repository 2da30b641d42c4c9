"""ARC tasks as pictures in the standard ARC palette: the demo pairs, then each test input beside its attempts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from latentloop.inspection.plots import save_figure  # noqa: E402

# colours 0-9 as the ARC tools show them (black, blue, red, green, yellow, grey, magenta, orange, sky, maroon)
ARC_PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
               "#870C25")

Panel = tuple[str, np.ndarray]


def _draw(ax, title: str, grid: np.ndarray) -> None:
    rows, cols = grid.shape
    ax.imshow(grid, cmap=ListedColormap(ARC_PALETTE), vmin=0, vmax=len(ARC_PALETTE) - 1, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="#555555", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(f"{title} ({rows}x{cols})", fontsize=9)


def plot_arc_rows(rows: Sequence[Sequence[Panel]], out: str | Path, title: str = "") -> Path:
    """One figure row per sequence of (title, grid) panels, e.g. [demo input, demo output] and [test input,
    attempt 1, attempt 2, expected]; written as a PNG."""
    width = max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), width, figsize=(2.6 * width, 2.6 * len(rows)), squeeze=False)
    for ax_row, panels in zip(axes, rows):
        for ax in ax_row[len(panels):]:
            ax.axis("off")
        for ax, (name, grid) in zip(ax_row, panels):
            _draw(ax, name, np.asarray(grid))
    return save_figure(fig, out, title, dpi=90)
