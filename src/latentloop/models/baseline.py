"""The direct-prediction baseline: the papers' "Direct pred" row, a plain Transformer with no recursion.

What it is, exactly (the TRM repo's `transformers_baseline.py`, `Model_ACTV2`): the same input encoding, heads, puzzle
embedding and ACT/deep-supervision loop as HRM and TRM, and one stack of `layers` blocks (8 in the presets, the depth of
HRM's two 4-layer modules, so the parameter count equals HRM's: 27,275,266 on Sudoku). Each supervision step applies
it once, with gradient: y <- net(y + x), starting from a fixed y_init. No inner cycles, no latent z, one forward pass
per step. Differences from that file, by choice: 8 heads (head_dim 64) instead of its 12 (head_dim 42, attention
width 504; `num_heads=12` reproduces it, 27,145,218 parameters on ARC), and halting as in TRM (q_halt > 0) unless
act_continue=true (that file halts on q_halt > q_continue but never trains q_continue). Whether the papers' numbers
came from that file is not stated in either paper.
"""

from __future__ import annotations

import torch

from latentloop.models.config import ModelConfig
from latentloop.models.trm import AnswerState, RecurrentModel, StepOutput


class TransformerBaseline(RecurrentModel):
    """`layers` shared blocks applied once per supervision step; the heads read the result."""

    State = AnswerState

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.net = self.reasoning_module(cfg.layers)
        self.add_heads()
        self.add_initial_state("y")   # official H_init

    def forward(self, state: AnswerState, inputs: torch.Tensor,
                puzzle_identifiers: torch.Tensor) -> tuple[AnswerState, StepOutput]:
        y = self.net(state.y, self.encoder(inputs, puzzle_identifiers), self.encoder.cos_sin())
        return AnswerState(y=y.detach()), self.heads(y)
