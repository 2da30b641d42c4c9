"""Run a trained model on raw token grids (no labels): the answer after the last step, or per-sample halting."""

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
    trajectory: np.ndarray | None = None   # [N, steps, seq_len] the decoded answer after every step, if asked


@torch.no_grad()
def predict(model: ACT, inputs: np.ndarray, puzzle_identifiers: np.ndarray | None = None, steps: int | None = None,
            halt_early: bool = False, keep_trajectory: bool = False, batch_size: int = 256) -> Prediction:
    """Decode answers for `inputs` [N, seq_len]; identifiers default to 0 (the single Sudoku/Maze embedding)."""
    model.eval()
    inner = model.inner
    device = next(model.parameters()).device
    steps = steps or model.N_sup
    inputs = np.asarray(inputs, dtype=np.int64)
    ids = np.zeros(len(inputs), dtype=np.int64) if puzzle_identifiers is None else np.asarray(puzzle_identifiers)
    tokens, halts, used, trajectories = [], [], [], []
    for start in range(0, len(inputs), batch_size):
        x = torch.as_tensor(inputs[start:start + batch_size], device=device)
        pid = torch.as_tensor(ids[start:start + batch_size], device=device)
        state = inner.initial_state(len(x), device)
        done = torch.zeros(len(x), dtype=torch.bool, device=device)
        answer = torch.zeros_like(x)
        halt = torch.zeros(len(x), device=device)
        n_steps = torch.full((len(x),), steps, dtype=torch.long, device=device)
        history = []
        for s in range(steps):
            state, out = inner(state, x, pid)
            decoded = out.logits.argmax(-1)
            history.append(decoded.cpu().numpy())
            stop = ~done & ((out.q_halt > 0) if halt_early else torch.zeros_like(done))
            if s == steps - 1:
                stop = ~done
            answer[stop], halt[stop], n_steps[stop] = decoded[stop], torch.sigmoid(out.q_halt[stop]), s + 1
            done |= stop
            if bool(done.all()) and not keep_trajectory:
                break
        tokens.append(answer.cpu().numpy())
        halts.append(halt.cpu().numpy())
        used.append(n_steps.cpu().numpy())
        if keep_trajectory:
            trajectories.append(np.stack(history, axis=1))
    return Prediction(tokens=np.concatenate(tokens), halt_probability=np.concatenate(halts),
                      steps=np.concatenate(used),
                      trajectory=np.concatenate(trajectories) if keep_trajectory else None)
