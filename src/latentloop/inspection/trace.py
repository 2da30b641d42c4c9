"""Watch the model think: the decoded answer after every supervision step (or every recursion), and its pictures.

The papers' story is that the answer y improves step by step while z serves as scratch paper. `record_trace` decodes
y after each step (and, for TRM, after each of the T recursions inside a step) so that story can be seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from latentloop.errors import ConfigError  # noqa: E402
from latentloop.inspection.plots import save_figure  # noqa: E402
from latentloop.paths import ensure_output_file  # noqa: E402
from latentloop.tasks.base import GridStyle  # noqa: E402


@dataclass
class Frame:
    label: str                 # e.g. "step 2" or "step 2, recursion 1"
    tokens: np.ndarray         # [seq_len] decoded answer
    halt_probability: float    # sigmoid(q_halt) when the frame was taken


@torch.no_grad()
def record_trace(model, inputs: np.ndarray, puzzle_identifier: int = 0, steps: int | None = None,
                 per_recursion: bool = False) -> list[Frame]:
    """Frames for one puzzle: the answer after each supervision step, or after each recursion (TRM only)."""
    model.eval()
    inner = model.inner
    device = next(model.parameters()).device
    x_tokens = torch.as_tensor(np.asarray(inputs, dtype=np.int64)[None], device=device)
    ids = torch.tensor([puzzle_identifier], device=device)
    state = inner.initial_state(1, device)
    frames: list[Frame] = []
    if per_recursion and (not hasattr(inner, "latent_recursion") or inner.cfg.z_mode != "yz"):
        raise ConfigError("per-recursion traces need a TRM with an answer y and a latent z (z_mode=yz); "
                          f"this model is {type(inner).__name__} with z_mode={inner.cfg.z_mode}")
    for step in range(1, (steps or model.N_sup) + 1):
        if per_recursion:
            x = inner.encoder(x_tokens, ids)
            cos_sin = inner.encoder.cos_sin()
            y, z = state.y, state.z
            for t in range(1, inner.cfg.T + 1):
                y, z = inner.latent_recursion(x, y, z, cos_sin)
                out = inner.heads(y)
                frames.append(_frame(f"step {step}, recursion {t}", out))
            state = type(state)(y=y, z=z)
        else:
            state, out = inner(state, x_tokens, ids)
            frames.append(_frame(f"step {step}", out))
    return frames


def _frame(label: str, out) -> Frame:
    return Frame(label=label, tokens=out.logits.argmax(-1)[0].cpu().numpy(),
                 halt_probability=float(torch.sigmoid(out.q_halt[0])))


def _draw_grid(ax, tokens: np.ndarray, style: GridStyle, given: np.ndarray | None = None,
               changed: np.ndarray | None = None, wrong: np.ndarray | None = None) -> None:
    grid = tokens.reshape(style.rows, style.cols)
    for r in range(style.rows):
        for c in range(style.cols):
            i = r * style.cols + c
            face = style.color(int(grid[r, c]))
            if changed is not None and changed[i]:
                face = "#ffe066"
            ax.add_patch(Rectangle((c, style.rows - 1 - r), 1, 1, facecolor=face, edgecolor="#bbbbbb", lw=0.5))
            label = style.text(int(grid[r, c]))
            if label:
                weight = "bold" if given is not None and given[i] else "normal"
                colour = "#c0392b" if wrong is not None and wrong[i] else ("#222222" if weight == "bold" else "#1f4e99")
                ax.text(c + 0.5, style.rows - 0.5 - r, label, ha="center", va="center", fontsize=11,
                        fontweight=weight, color=colour)
    if style.box:
        br, bc = style.box
        for r in range(0, style.rows + 1, br):
            ax.plot([0, style.cols], [r, r], color="black", lw=1.5)
        for c in range(0, style.cols + 1, bc):
            ax.plot([c, c], [0, style.rows], color="black", lw=1.5)
    ax.set_xlim(0, style.cols)
    ax.set_ylim(0, style.rows)
    ax.set_aspect("equal")
    ax.axis("off")


def render_trace(frames: list[Frame], puzzle: np.ndarray, style: GridStyle, path: str | Path,
                 is_given: np.ndarray | None = None, solution: np.ndarray | None = None,
                 title: str = "") -> Path:
    """Write the frames as a PNG strip (the puzzle, then one panel per frame) or an animated GIF.

    Cells that changed since the previous frame are yellow; with a known solution, wrong cells are red.
    """
    path = Path(path)
    if path.suffix.lower() not in (".png", ".gif"):
        raise ConfigError(f"trace file must end in .png or .gif, not {path.name!r}")
    ensure_output_file(path)
    panels = [("puzzle", puzzle, None, None, None)]
    previous = puzzle
    for frame in frames:
        changed = frame.tokens != previous
        wrong = frame.tokens != solution if solution is not None else None
        panels.append((f"{frame.label}\nhalt p={frame.halt_probability:.2f}", frame.tokens, changed, wrong, frame))
        previous = frame.tokens
    if path.suffix.lower() == ".png":
        per_row = min(len(panels), 7)
        rows = -(-len(panels) // per_row)
        fig, axes = plt.subplots(rows, per_row, figsize=(2.6 * per_row, 3.3 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (label, tokens, changed, wrong, _) in zip(axes.flat, panels):
            _draw_grid(ax, tokens, style, given=is_given, changed=changed, wrong=wrong)
            ax.set_title(label, fontsize=9)
        return save_figure(fig, path, title, dpi=100)
    fig, ax = plt.subplots(figsize=(3.6, 4.0))

    def draw(index: int) -> None:
        ax.clear()
        label, tokens, changed, wrong, _ = panels[index]
        _draw_grid(ax, tokens, style, given=is_given, changed=changed, wrong=wrong)
        ax.set_title(f"{title}\n{label}" if title else label, fontsize=9)

    animation = FuncAnimation(fig, draw, frames=len(panels), interval=900)
    animation.save(str(path), writer=PillowWriter(fps=1.2))
    plt.close(fig)
    return path
