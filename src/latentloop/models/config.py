"""Architecture hyperparameters, named as in the papers (T, n, N_sup); official key names are aliases (config.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved next to every checkpoint."""

    arch: str = "trm"
    vocab_size: int = 11
    seq_len: int = 81
    num_puzzle_identifiers: int = 1
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    layers: int = 2                 # official: L_layers
    H_layers: int = 4               # HRM's high-level module; TRM ignores it, as the official code does
    T: int = 3                      # official: H_cycles; outer recursions per supervision step
    n: int = 6                      # official: L_cycles; latent updates per recursion
    N_sup: int = 16                 # official: halt_max_steps; supervision steps
    halt_exploration_prob: float = 0.1
    mlp_t: bool = False             # TRM-MLP: token-mixing SwiGLU instead of attention
    pos_encodings: str = "rope"     # rope | learned | none
    puzzle_emb_ndim: int = 512      # 0 disables the puzzle embedding
    puzzle_emb_len: int = 16        # prefix positions; 0 means ceil(puzzle_emb_ndim / hidden_size)
    forward_dtype: str = "bfloat16"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def dtype(self) -> torch.dtype:
        return {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[self.forward_dtype]

    @property
    def prefix_len(self) -> int:
        """Number of puzzle-embedding prefix positions in front of the tokens."""
        if self.puzzle_emb_ndim == 0:
            return 0
        return self.puzzle_emb_len or -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def num_positions(self) -> int:
        return self.seq_len + self.prefix_len
