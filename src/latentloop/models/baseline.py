"""The direct-prediction baseline: the papers' "Direct pred" row, a plain Transformer with no recursion.

What it is, exactly (the TRM repo's `transformers_baseline.py`, `Model_ACTV2`, and its arch config
`transformers_baseline.yaml`): the same input encoding, heads, puzzle embedding and ACT/deep-supervision loop as HRM
and TRM, and one stack of `layers` blocks (8, the depth of HRM's two 4-layer modules) with 12 heads (head_dim 42,
attention width 504 of 512): 27,145,218 parameters on ARC, 27,144,194 on Sudoku. Each supervision step applies it
once, with gradient: y <- net(y + x), starting from a fixed y_init. No inner cycles, no latent z, one forward pass per
step. Training halts a row when q_halt > q_continue (`halt_vs_continue=true`), and no target ever trains q_continue
(the file computes one only when called with compute_target_q, which its loss head never passes). The baseline-*
presets are that; `num_heads=8 halt_vs_continue=false` is latentloop's earlier variant (head_dim 64, HRM's parameter
count 27,275,266 on Sudoku, TRM's halting on q_halt > 0). Whether the papers' numbers came from that file is not
stated in either paper.
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
