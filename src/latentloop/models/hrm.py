"""Hierarchical Reasoning Model (Wang et al., 2025): a slow high-level module H and a fast low-level module L.

One supervision step runs T high-level cycles (official H_cycles) of n low-level updates (official L_cycles):
z_L <- f_L(z_L + z_H + x) n times, then z_H <- f_H(z_H + z_L). Only the last L update and the last H update build
a graph: the paper's "1-step gradient" (the first term of the implicit-function-theorem Neumann series), so memory
does not grow with T or n. The heads read z_H. The state is carried as TRMState(y=z_H, z=z_L), the TRM paper's
reading of HRM, so the ACT wrapper, the training loop and evaluation treat both models alike.
"""

from __future__ import annotations

import torch

from latentloop.models.config import ModelConfig
from latentloop.models.trm import RecurrentModel, StepOutput, TRMState, cast


class HRM(RecurrentModel):
    """Two reasoning modules on the shared blocks: `H_net` (cfg.H_layers) and `L_net` (cfg.layers)."""

    State = TRMState

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.H_net = self.reasoning_module(cfg.H_layers)
        self.L_net = self.reasoning_module(cfg.layers)
        self.add_heads()
        self.add_initial_state("y")   # official H_init
        self.add_initial_state("z")   # official L_init

    def forward(self, state: TRMState, inputs: torch.Tensor,
                puzzle_identifiers: torch.Tensor) -> tuple[TRMState, StepOutput]:
        """One supervision step: every update but the last L and H ones without gradient; heads read z_H."""
        x = self.encoder(inputs, puzzle_identifiers)
        cos_sin = self.encoder.cos_sin()
        T, n = self.cfg.T, self.cfg.n
        z_H, z_L = state.y, state.z
        with torch.no_grad():
            low = self.cfg.no_grad_torch_dtype
            x_low, z_H, z_L = cast(x, low), cast(z_H, low), cast(z_L, low)
            for h in range(T):
                for l in range(n):
                    if (h, l) != (T - 1, n - 1):
                        z_L = self.L_net(z_L, z_H + x_low, cos_sin)
                if h != T - 1:
                    z_H = self.H_net(z_H, z_L, cos_sin)
            z_H, z_L = cast(z_H, x.dtype), cast(z_L, x.dtype)
        z_L = self.L_net(z_L, z_H + x, cos_sin)
        z_H = self.H_net(z_H, z_L, cos_sin)
        return TRMState(y=z_H.detach(), z=z_L.detach()), self.heads(z_H)
