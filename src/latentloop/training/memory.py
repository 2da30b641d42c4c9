"""A memory estimate per rank, printed before training starts, so a run that cannot fit fails in seconds, not hours.

Weights, gradients, the two AdamATan2 moments and the EMA are counted from the parameter sizes. Activations are
measured, not guessed: one training supervision step runs on the meta device (shapes only, no memory, no compute)
while `saved_tensors_hooks` records every tensor autograd keeps for the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentloop.models import build_model
from latentloop.models.config import ModelConfig
from latentloop.models.losses import act_loss

GIB = 2**30


def format_bytes(num_bytes: float) -> str:
    if num_bytes >= GIB / 2:
        return f"{num_bytes / GIB:.2f} GiB"
    return f"{num_bytes / 2**20:.{0 if num_bytes >= 10 * 2**20 else 1}f} MiB"


@dataclass
class MemoryEstimate:
    """Bytes per rank; `activations` is for one micro-batch of `micro_batch` rows and scales linearly with it."""

    weights: int
    gradients: int
    optimizer: int
    ema: int
    puzzle_embedding: int
    carry: int
    activations: int
    micro_batch: int

    @property
    def total(self) -> int:
        return (self.weights + self.gradients + self.optimizer + self.ema + self.puzzle_embedding + self.carry
                + self.activations)

    def with_micro_batch(self, rows: int) -> int:
        """The total if micro-batches had `rows` rows (more gradient accumulation, same global batch)."""
        return self.total - self.activations + self.activations * rows // self.micro_batch

    def report(self) -> str:
        parts = {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer, "EMA": self.ema,
                 "puzzle embeddings": self.puzzle_embedding, "carry": self.carry}
        listed = ", ".join(f"{name} {format_bytes(size)}" for name, size in parts.items())
        return (f"memory per rank (estimate): {listed}, activations {format_bytes(self.activations)} for "
                f"{self.micro_batch} rows; about {format_bytes(self.total)} in all")


def estimate_memory(cfg: ModelConfig, local_batch: int, micro_batch: int, ema: bool, loss_fn) -> MemoryEstimate:
    """Estimate one rank's training memory for `local_batch` rows per step in micro-batches of `micro_batch`."""
    with torch.device("meta"):
        model = build_model(cfg)
    model.train()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    inner = model.inner
    puzzle_emb = inner.puzzle_emb
    table = puzzle_emb.memory_bytes() if puzzle_emb is not None else 0
    state = inner.initial_state(1, "meta")
    carry_bytes = local_batch * sum(t.numel() * t.element_size() for t in vars(state).values())

    own = {p.untyped_storage()._cdata for p in model.parameters()}
    kept: dict[int, tuple[torch.Tensor, int]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in own:  # weights saved for the backward pass are counted once, above
            kept[storage._cdata] = (tensor, storage.nbytes())  # holding the tensor keeps the key unique
        return tensor

    shape = (micro_batch, cfg.seq_len)
    batch = {"inputs": torch.zeros(shape, dtype=torch.long, device="meta"),
             "labels": torch.zeros(shape, dtype=torch.long, device="meta"),
             "puzzle_identifiers": torch.zeros(micro_batch, dtype=torch.long, device="meta")}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        carry, outputs = model(model.initial_carry(batch), batch)
        act_loss(outputs, carry.data["labels"], carry.halted, carry.steps, loss_fn)
    return MemoryEstimate(weights=param_bytes, gradients=param_bytes, optimizer=2 * param_bytes,
                          ema=param_bytes if ema else 0, puzzle_embedding=table, carry=carry_bytes,
                          activations=sum(size for _, size in kept.values()), micro_batch=micro_batch)
