"""Run a trained model on token grids: a fixed number of supervision steps, or per-sample halting.

Per-sample halting uses continuous batching: when a puzzle halts (q_halt > 0) its row is handed to the next
puzzle in the queue, so the batch stays full and the compute a puzzle costs is the steps it actually used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from latentloop.models.act import ACT


@dataclass
class Prediction:
    tokens: np.ndarray            # [N, seq_len] predicted token ids
    halt_probability: np.ndarray  # [N] sigmoid(q_halt) at the step the answer was taken
    steps: np.ndarray             # [N] supervision steps used
    loss: np.ndarray | None = None         # [N] per-sequence loss at that step, when labels were given
    trajectory: np.ndarray | None = None   # [N, steps, seq_len] the decoded answer after every step, if asked
    halted: np.ndarray | None = None       # [N] whether the halting head fired (per-sample halting only)


def _select(state, keep: torch.Tensor):
    """Rows `keep` of a recurrent state (a dataclass of [B, ...] tensors)."""
    return type(state)(**{k: v[keep] for k, v in vars(state).items()})


@torch.no_grad()
def predict_halting(model: ACT, inputs: np.ndarray, puzzle_identifiers: np.ndarray, steps: int, batch_size: int,
                    labels: np.ndarray | None = None, loss_fn=None, threshold: float = 0.5) -> Prediction:
    """Per-sample halting with continuous batching: a puzzle stops at the first step where the halting probability
    sigmoid(q_halt) exceeds `threshold` (0.5 is TRM's training rule q_halt > 0), or at `steps`. A model trained with
    the continue head (HRM) halts by its own rule, q_halt > q_continue, and `threshold` does not apply."""
    logit_threshold = float(np.log(threshold / (1 - threshold)))
    own_rule = model.halt_rule == "q_halt_vs_continue"
    inner = model.inner
    device = next(model.parameters()).device
    n = len(inputs)
    x_all = torch.as_tensor(inputs, dtype=torch.long, device=device)
    id_all = torch.as_tensor(puzzle_identifiers, dtype=torch.long, device=device)
    y_all = torch.as_tensor(labels, dtype=torch.long, device=device) if labels is not None else None
    tokens = np.zeros(inputs.shape, dtype=np.int64)
    halt = np.zeros(n, dtype=np.float32)
    used = np.zeros(n, dtype=np.int64)
    fired = np.zeros(n, dtype=bool)
    losses = np.zeros(n, dtype=np.float64) if y_all is not None else None
    rows = torch.arange(min(batch_size, n), device=device)        # which example each row is working on
    next_example = len(rows)
    state = inner.initial_state(len(rows), device)
    count = torch.zeros(len(rows), dtype=torch.long, device=device)
    while len(rows):
        state, out = inner(state, x_all[rows], id_all[rows])
        count += 1
        halting = out.q_halt > out.q_continue if own_rule else out.q_halt > logit_threshold
        done = halting | (count >= steps)
        if bool(done.any()):
            finished = rows[done].cpu().numpy()
            tokens[finished] = out.logits[done].argmax(-1).cpu().numpy()
            halt[finished] = torch.sigmoid(out.q_halt[done]).cpu().numpy()
            used[finished] = count[done].cpu().numpy()
            fired[finished] = halting[done].cpu().numpy()
            if losses is not None:
                labels_done = y_all[rows[done]]
                divisor = (labels_done != -100).sum(-1).clamp_min(1)
                losses[finished] = (loss_fn(out.logits[done], labels_done).sum(-1) / divisor).cpu().numpy()
            # Hand finished rows to waiting puzzles; drop the rest once the queue is empty.
            free = torch.nonzero(done).flatten()
            refill = free[: max(0, min(len(free), n - next_example))]
            if len(refill):
                rows[refill] = torch.arange(next_example, next_example + len(refill), device=device)
                next_example += len(refill)
                count[refill] = 0
                reset = torch.zeros_like(done)
                reset[refill] = True
                state = inner.reset(state, reset)
            keep = torch.ones_like(done)
            keep[free[len(refill):]] = False
            if not bool(keep.all()):
                rows, count, state = rows[keep], count[keep], _select(state, keep)
    return Prediction(tokens=tokens, halt_probability=halt, steps=used, loss=losses, halted=fired)


@torch.no_grad()
def predict(model: ACT, inputs: np.ndarray, puzzle_identifiers: np.ndarray | None = None, steps: int | None = None,
            halt_early: bool = False, keep_trajectory: bool = False, batch_size: int = 256,
            threshold: float = 0.5) -> Prediction:
    """Decode answers for `inputs` [N, seq_len]; identifiers default to 0 (the single Sudoku/Maze embedding).
    A trajectory (the answer after every step) always runs every step, so it ignores `halt_early`."""
    model.eval()
    inner = model.inner
    device = next(model.parameters()).device
    steps = steps or model.N_sup
    inputs = np.asarray(inputs, dtype=np.int64)
    ids = np.zeros(len(inputs), dtype=np.int64) if puzzle_identifiers is None else np.asarray(puzzle_identifiers)
    if halt_early and not keep_trajectory:
        return predict_halting(model, inputs, ids, steps, batch_size, threshold=threshold)
    tokens, halts, trajectories = [], [], []
    for start in range(0, len(inputs), batch_size):
        x = torch.as_tensor(inputs[start:start + batch_size], device=device)
        pid = torch.as_tensor(ids[start:start + batch_size], device=device)
        state = inner.initial_state(len(x), device)
        history = []
        for _ in range(steps):
            state, out = inner(state, x, pid)
            history.append(out.logits.argmax(-1).cpu().numpy())
        tokens.append(history[-1])
        halts.append(torch.sigmoid(out.q_halt).cpu().numpy())
        trajectories.append(np.stack(history, axis=1))
    return Prediction(tokens=np.concatenate(tokens), halt_probability=np.concatenate(halts),
                      steps=np.full(len(inputs), steps), trajectory=np.concatenate(trajectories) if keep_trajectory else None)


@torch.no_grad()
def predict_trajectories(model: ACT, inputs: np.ndarray, puzzle_identifiers: np.ndarray, steps: int, batch_size: int,
                         trajectories: int, noise: float, seed: int = 0) -> Prediction:
    """Stochastic multi-trajectory inference (after "Probabilistic TRM"): run K copies of each puzzle, adding
    Gaussian noise of std `noise` to the latent z before every supervision step of copies 2..K (copy 1 stays
    noise-free), and keep the copy whose halting head is most confident at the end. No retraining."""
    inner = model.inner
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    per_batch = max(1, batch_size // trajectories)
    tokens, halts = [], []
    for start in range(0, len(inputs), per_batch):
        x = torch.as_tensor(inputs[start:start + per_batch], dtype=torch.long, device=device)
        pid = torch.as_tensor(puzzle_identifiers[start:start + per_batch], dtype=torch.long, device=device)
        count = len(x)
        x, pid = x.repeat_interleave(trajectories, 0), pid.repeat_interleave(trajectories, 0)
        noisy = (torch.arange(len(x), device=device) % trajectories != 0).view(-1, 1, 1)
        state = inner.initial_state(len(x), device)
        for _ in range(steps):
            z = state.z
            jitter = torch.randn(z.shape, generator=generator, device=device, dtype=torch.float32) * noise
            state = type(state)(**{**vars(state), "z": torch.where(noisy, z + jitter.to(z.dtype), z)})
            state, out = inner(state, x, pid)
        q = out.q_halt.view(count, trajectories)
        best = q.argmax(-1) + torch.arange(count, device=device) * trajectories
        tokens.append(out.logits.argmax(-1)[best].cpu().numpy())
        halts.append(torch.sigmoid(out.q_halt[best]).cpu().numpy())
    return Prediction(tokens=np.concatenate(tokens), halt_probability=np.concatenate(halts),
                      steps=np.full(len(inputs), steps))
