"""Model factory: every architecture is an inner recurrent model wrapped by the shared ACT wrapper."""

from __future__ import annotations

from latentloop.errors import ConfigError
from latentloop.models.act import ACT, Carry
from latentloop.models.config import ModelConfig
from latentloop.models.trm import TRM

ARCHITECTURES = {"trm": TRM}


def build_model(cfg: ModelConfig) -> ACT:
    """Build the ACT-wrapped model named by cfg.arch."""
    if cfg.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {cfg.arch!r}; available: {', '.join(sorted(ARCHITECTURES))}")
    if not cfg.mlp_t and cfg.hidden_size % cfg.num_heads:
        raise ConfigError(f"hidden_size {cfg.hidden_size} is not divisible by num_heads {cfg.num_heads}")
    if cfg.mlp_t and cfg.pos_encodings == "rope":
        raise ConfigError("mlp_t=true mixes positions with an MLP; set pos_encodings=none (or learned)")
    inner = ARCHITECTURES[cfg.arch](cfg)
    return ACT(inner, N_sup=cfg.N_sup, exploration_prob=cfg.halt_exploration_prob, halt_rule="q_halt")


def count_parameters(model) -> int:
    """Trainable dense parameters, as the papers count them (the puzzle-embedding table is a buffer)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["ACT", "Carry", "ModelConfig", "TRM", "build_model", "count_parameters"]
