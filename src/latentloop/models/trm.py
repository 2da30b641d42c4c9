"""Tiny Recursive Model (Jolicoeur-Martineau, 2025): one tiny network refines an answer y through a latent z.

Read top to bottom: input encoding, the recursion of the paper's pseudocode, then the heads. The ACT/deep-supervision
wrapper lives in act.py and the losses in losses.py, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latentloop.layers.blocks import Embedding, Linear, ReasoningModule, RotaryEmbedding, embed_scale
from latentloop.layers.init import trunc_normal_
from latentloop.layers.puzzle_embedding import PuzzleEmbedding
from latentloop.models.config import ModelConfig


@dataclass
class TRMState:
    """The recurrent state carried between supervision steps: answer y (official z_H) and latent z (official z_L)."""

    y: torch.Tensor
    z: torch.Tensor


@dataclass
class StepOutput:
    logits: torch.Tensor          # [B, seq_len, vocab]
    q_halt: torch.Tensor          # [B] fp32 logits
    q_continue: torch.Tensor      # [B] fp32 logits


class InputEncoder(nn.Module):
    """Token embedding, the puzzle-embedding prefix, optional learned positions, all scaled by sqrt(D)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = embed_scale(cfg.hidden_size)
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size, init_std=1 / self.scale, dtype=cfg.dtype)
        if cfg.puzzle_emb_ndim > 0:
            self.puzzle_emb = PuzzleEmbedding(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim)
        if cfg.pos_encodings == "learned":
            self.embed_pos = Embedding(cfg.num_positions, cfg.hidden_size, init_std=1 / self.scale, dtype=cfg.dtype)
        elif cfg.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(cfg.hidden_size // cfg.num_heads, cfg.num_positions, cfg.rope_theta)
        elif cfg.pos_encodings != "none":
            raise ValueError(f"pos_encodings must be rope, learned or none, not {cfg.pos_encodings!r}")

    def forward(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x = self.embed_tokens(inputs)
        if cfg.puzzle_emb_ndim > 0:
            prefix = self.puzzle_emb(puzzle_identifiers).to(cfg.dtype)
            prefix = F.pad(prefix, (0, cfg.prefix_len * cfg.hidden_size - prefix.shape[-1]))
            x = torch.cat((prefix.view(-1, cfg.prefix_len, cfg.hidden_size), x), dim=-2)
        if cfg.pos_encodings == "learned":
            x = 0.707106781 * (x + self.embed_pos.embedding_weight.to(cfg.dtype))
        return self.scale * x

    def cos_sin(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.rotary_emb() if self.cfg.pos_encodings == "rope" else None


class TRM(nn.Module):
    """The recursion of TRM for one supervision step, with the official parameter layout and initialisation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = InputEncoder(cfg)
        self.net = ReasoningModule(
            cfg.layers, width=cfg.hidden_size, num_heads=cfg.num_heads, expansion=cfg.expansion,
            num_positions=cfg.num_positions, mixer="mlp" if cfg.mlp_t else "attention", eps=cfg.rms_norm_eps)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size)
        self.q_head = Linear(cfg.hidden_size, 2, bias=True)
        with torch.no_grad():  # Q starts near "never halt" (sigmoid(-5) = 0.007) so bootstrapping is stable.
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        # Fixed, untrained initial states (buffers, saved with the weights).
        self.register_buffer("y_init", trunc_normal_(torch.empty(cfg.hidden_size, dtype=cfg.dtype), std=1.0))
        self.register_buffer("z_init", trunc_normal_(torch.empty(cfg.hidden_size, dtype=cfg.dtype), std=1.0))

    def initial_state(self, batch_size: int, device: torch.device | str) -> TRMState:
        shape = (batch_size, self.cfg.num_positions, self.cfg.hidden_size)
        return TRMState(y=self.y_init.to(device).expand(shape).clone(), z=self.z_init.to(device).expand(shape).clone())

    def reset(self, state: TRMState, reset: torch.Tensor) -> TRMState:
        """Start rows where `reset` is True from the fixed initial states; keep the others."""
        mask = reset.view(-1, 1, 1)
        return TRMState(y=torch.where(mask, self.y_init, state.y), z=torch.where(mask, self.z_init, state.z))

    def latent_recursion(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, cos_sin) -> tuple[torch.Tensor, torch.Tensor]:
        """n latent updates z <- net(x, y, z), then one answer update y <- net(y, z) (x absent: the task switch)."""
        for _ in range(self.cfg.n):
            z = self.net(z, y + x, cos_sin)
        y = self.net(y, z, cos_sin)
        return y, z

    def forward(self, state: TRMState, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> tuple[TRMState, StepOutput]:
        """One supervision step: T-1 recursions without gradient, then one with gradient; heads read y."""
        x = self.encoder(inputs, puzzle_identifiers)
        cos_sin = self.encoder.cos_sin()
        y, z = state.y, state.z
        with torch.no_grad():
            for _ in range(self.cfg.T - 1):
                y, z = self.latent_recursion(x, y, z, cos_sin)
        y, z = self.latent_recursion(x, y, z, cos_sin)
        return TRMState(y=y.detach(), z=z.detach()), self.heads(y)

    def heads(self, y: torch.Tensor) -> StepOutput:
        logits = self.lm_head(y)[:, self.cfg.prefix_len:]
        q = self.q_head(y[:, 0]).float()
        return StepOutput(logits=logits, q_halt=q[..., 0], q_continue=q[..., 1])

    @property
    def puzzle_emb(self) -> PuzzleEmbedding | None:
        return getattr(self.encoder, "puzzle_emb", None)
