"""Per-puzzle learned embedding trained by sparse sign-SGD (official-implementations.md §3.2, §8.2).

The table can hold one row per puzzle augmentation (about a million rows on ARC), so it is kept out of `parameters()`:
a dense optimizer would keep two Adam moments for every row and decay rows that are not in the batch, and EMA would
average it. Instead each training forward hands out a small leaf copy of the batch's rows; gradients land on that
copy, and `latentloop.training.optim.PuzzleEmbeddingSignSGD` writes the update back into the touched rows only.
"""

from __future__ import annotations

import torch
from torch import nn

from latentloop.layers.init import trunc_normal_


class PuzzleEmbedding(nn.Module):
    """A [num_embeddings, embedding_dim] fp32 table stored as a persistent buffer, looked up by puzzle id.

    In training (grad enabled) `forward` returns `local_weights`, a fresh leaf copy of the looked-up rows, and keeps
    the ids in `local_ids`; both are transient attributes, not part of the state dict. Do one forward per optimizer
    step: a second forward replaces the copy and the gradient of the first is lost.
    """

    weights: torch.Tensor
    local_weights: torch.Tensor | None
    local_ids: torch.Tensor | None

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float = 0.0) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        # The official models zero-initialise it, so every puzzle starts from the same prefix token.
        weights = trunc_normal_(torch.empty(num_embeddings, embedding_dim, dtype=torch.float32), std=init_std)
        self.register_buffer("weights", weights, persistent=True)
        self.local_weights = None
        self.local_ids = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows for `ids` [B] as [B, D] fp32; a gradient-collecting leaf in training, a plain lookup otherwise."""
        if ids.dim() != 1:
            raise ValueError(f"puzzle ids must have shape [batch], got {tuple(ids.shape)}")
        if not (self.training and torch.is_grad_enabled()):
            return self.weights[ids]
        self.local_ids = ids.detach().long()
        self.local_weights = self.weights[self.local_ids].requires_grad_(True)
        return self.local_weights

    def memory_bytes(self) -> int:
        """Size of the table, worth logging because it is not counted in `parameters()`."""
        return self.weights.numel() * self.weights.element_size()

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
