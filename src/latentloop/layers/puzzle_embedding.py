"""Per-puzzle learned embedding trained by sparse sign-SGD (the official HRM/TRM `models/sparse_embedding.py`,
`CastedSparseEmbedding` and `CastedSparseEmbeddingSignSGD_Distributed`).

The table can hold one row per puzzle augmentation (about a million rows on ARC), so it is kept out of `parameters()`:
a dense optimizer would keep two Adam moments for every row and decay rows that are not in the batch, and EMA would
average it. Instead each training forward hands out a small leaf copy of the batch's rows; gradients land on that
copy, and `PuzzleEmbeddingSignSGD` (here, beside the table, so that evaluation code that fine-tunes rows, such as
ARC's unseen-task embeddings, needs nothing from `latentloop.training`) writes the update back into the touched rows
only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
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


class PuzzleEmbeddingSignSGD(torch.optim.Optimizer):
    """Sparse sign-SGD with decoupled decay for a `PuzzleEmbedding` (the official `CastedSparseEmbeddingSignSGD`).

    On `step()` the gradients on the module's `local_weights` (and those set aside by `collect()`) are gathered from
    all ranks (local batches must have equal size), summed per unique puzzle id, and each touched row gets
    w <- w * (1 - lr * wd) - lr * sign(sum).
    Rows absent from the global batch are neither moved nor decayed. The step is a no-op when no training forward
    and backward happened since the last one. `lr` and `weight_decay` live in `param_groups[0]` so a schedule can
    set `group["lr"]` each step; the optimizer keeps no other state. Every rank must call `step()` together.
    """

    def __init__(self, embedding: PuzzleEmbedding, lr: float = 1e-2, weight_decay: float = 0.1) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__([embedding.weights], {"lr": lr, "weight_decay": weight_decay})
        self.embedding = embedding
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def collect(self) -> None:
        """Set aside the gradient of the last forward: with gradient accumulation every micro-batch makes a new
        local copy of its rows, and the next step must see the rows of all of them, in order."""
        local = self.embedding.local_weights
        if local is not None and local.grad is not None:
            assert self.embedding.local_ids is not None  # set together with local_weights
            self._pending.append((local.grad, self.embedding.local_ids))
            local.grad = None

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply the sign update to the rows seen since the last step, then drop their gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.collect()
        if not self._pending:
            return loss
        grads = torch.cat([grad for grad, _ in self._pending])
        ids = torch.cat([ids for _, ids in self._pending])
        self._pending.clear()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grads, ids = _all_gather(grads), _all_gather(ids)
        unique_ids, inverse = torch.unique(ids, return_inverse=True)
        summed = torch.zeros(len(unique_ids), grads.shape[1], dtype=grads.dtype, device=grads.device)
        summed.index_add_(0, inverse, grads)
        group = self.param_groups[0]
        lr, weight_decay = group["lr"], group["weight_decay"]
        weights = self.embedding.weights
        rows = weights[unique_ids].mul_(1 - lr * weight_decay).add_(summed.sign_(), alpha=-lr)
        weights.index_copy_(0, unique_ids, rows)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop pending gradients (always to None), so `step()` is a no-op until the next backward."""
        self._pending.clear()
        local = self.embedding.local_weights
        if local is not None:
            local.grad = None


def _all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally shaped tensors from all ranks along dim 0, in rank order."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)
