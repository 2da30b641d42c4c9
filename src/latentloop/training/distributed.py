"""Data-parallel training on PyTorch's own collectives, as in the official HRM/TRM `pretrain.py`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; the process group uses NCCL on GPUs and gloo on CPUs. There is no DDP
wrapper: rank 0's parameters and buffers are broadcast once, each rank back-propagates the loss of its slice divided
by the *global* batch size, and the gradients are summed with one all-reduce, so the update is the global-batch mean.
Everything here is a no-op with one process, so single-process runs never touch torch.distributed.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from latentloop.data.format import PuzzleSplit
from latentloop.errors import ConfigError
from latentloop.evaluation.evaluate import EvalResult


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def _as_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The same memory seen as uint8, so collectives copy any dtype (bf16, bool) exactly, whatever the backend."""
    return (tensor if tensor.dim() else tensor.view(1)).view(torch.uint8)


_joined_group = False   # whether this process joined a process group (then it leaves through `exit_process`)


def exit_process(code: int) -> None:
    """End a process that was a rank of a multi-process job: flush its output and leave with os._exit.

    After destroy_process_group, gloo can still hold a transport thread that the C++ static destructors meet at
    interpreter exit; std::terminate then aborts the rank (SIGABRT, "terminate called without an active
    exception", no Python frame left) and torchrun reports the whole job failed. Seen in about 1 of 50 2-rank CPU
    runs. Everything a run writes is closed and fsynced before this point, so skipping the teardown loses nothing.
    A process that never joined a group returns and exits normally."""
    if not _joined_group:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def world_size_from_env() -> int:
    """The number of processes torchrun launched (1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


@dataclasses.dataclass
class Distributed:
    """This process's place in the job: rank, world size and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows the progress bar and writes checkpoints."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device, global_batch_size: int, grad_accum_steps: int) -> "Distributed":
        """Join the job torchrun describes in the environment (or an already initialised group).

        The batch split is checked before joining, so a bad setting fails at once instead of at the first collective.
        """
        if dist.is_available() and dist.is_initialized():
            rank, world_size, owns = dist.get_rank(), dist.get_world_size(), False
        else:
            rank, world_size, owns = _env_int("RANK", 0), world_size_from_env(), True
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"RANK={rank} does not lie in WORLD_SIZE={world_size}")
        if global_batch_size % (world_size * grad_accum_steps):
            raise ConfigError(f"global_batch_size {global_batch_size} does not split into {world_size} rank(s) x "
                              f"grad_accum_steps {grad_accum_steps} equal micro-batches")
        if world_size == 1:
            return cls(device=device)
        if device.type == "cuda":
            device = torch.device("cuda", _env_int("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
            torch.cuda.set_device(device)
        if owns:
            backend = "nccl" if device.type == "cuda" else "gloo"
            try:
                dist.init_process_group(backend, rank=rank, world_size=world_size)
            except (ValueError, RuntimeError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ConfigError(f"WORLD_SIZE={world_size} is set but the {backend} process group could not start "
                                  f"({reason}); launch with torchrun") from None
            global _joined_group
            _joined_group = True
        return cls(rank=rank, world_size=world_size, device=device, owns_group=owns)

    def barrier(self) -> None:
        """Wait for every rank, e.g. for rank 0 to finish writing a checkpoint before the others leave."""
        if self.world_size > 1:
            dist.barrier()

    def close(self, wait: bool) -> None:
        """Leave the process group; `wait` first lets every rank arrive (gloo aborts a process that tears down
        its connections while a peer still uses them). After an error there is no waiting: torchrun stops the rest."""
        if self.owns_group and dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()

    def rows(self, total: int) -> tuple[int, int]:
        """This rank's contiguous share [start, end) of `total` rows (the first ranks take one more if uneven)."""
        share, extra = divmod(total, self.world_size)
        start = self.rank * share + min(self.rank, extra)
        return start, start + share + (self.rank < extra)

    @torch.no_grad()
    def broadcast_model(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (bit for bit: sent as raw bytes, any dtype)."""
        if self.world_size == 1:
            return
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(_as_bytes(tensor.data), src=0)

    @torch.no_grad()
    def all_reduce_gradients(self, params: list[torch.Tensor]) -> None:
        """Sum every gradient over the ranks, in one flat all-reduce (every rank runs the same graph)."""
        grads = [p.grad for p in params if p.grad is not None]
        if self.world_size == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(part.view_as(grad))

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a small tensor (metric sums, flags) over the ranks; every rank gets the result."""
        if self.world_size > 1:
            dist.all_reduce(tensor)
        return tensor

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equally shaped per-rank tensors along dim 0 in rank order: the global batch's rows."""
        if self.world_size == 1:
            return tensor
        raw = _as_bytes(tensor.contiguous())
        parts = [torch.empty_like(raw) for _ in range(self.world_size)]
        dist.all_gather(parts, raw)
        return torch.cat(parts).view(tensor.dtype)

    def reduce_eval(self, local: EvalResult | None) -> EvalResult | None:
        """Combine per-rank results on disjoint shards into the result on the whole split (None when it is empty)."""
        if self.world_size == 1:
            return local
        per_step = len(local.per_step_exact_accuracy) if local is not None else 0
        size = torch.tensor([per_step], dtype=torch.float64, device=self.device)
        dist.all_reduce(size, op=dist.ReduceOp.MAX)
        steps = int(size.item())
        sums = torch.zeros(6 + steps, dtype=torch.float64, device=self.device)
        if local is not None and local.num_examples:
            n = local.num_examples
            values = [n, local.exact_accuracy, local.accuracy, local.q_halt_accuracy, local.lm_loss, local.steps]
            sums[0] = n
            sums[1:6] = torch.tensor(values[1:], dtype=torch.float64) * n
            if local.per_step_exact_accuracy:
                sums[6:] = torch.tensor(local.per_step_exact_accuracy, dtype=torch.float64) * n
        dist.all_reduce(sums)
        total = sums[0].item()
        if not total:
            return local
        means = (sums[1:] / total).tolist()
        base = local if local is not None else EvalResult(exact_accuracy=0.0, accuracy=0.0, q_halt_accuracy=0.0,
                                                          lm_loss=0.0, steps=0.0, num_examples=0)
        return dataclasses.replace(base, exact_accuracy=means[0], accuracy=means[1], q_halt_accuracy=means[2],
                                   lm_loss=means[3], steps=means[4], num_examples=int(total),
                                   per_step_exact_accuracy=means[5:])


def example_range(split: PuzzleSplit, start: int, end: int) -> PuzzleSplit:
    """Examples start..end-1 of a split as a split of their own (one group), each keeping its puzzle identifier."""
    offsets = np.asarray(split.puzzle_indices, dtype=np.int64)
    if end <= start:
        first = last = 0
        puzzle_indices = np.zeros(1, dtype=np.int32)
    else:
        first = int(np.searchsorted(offsets, start, side="right")) - 1
        last = int(np.searchsorted(offsets, end - 1, side="right"))
        puzzle_indices = (np.clip(offsets[first:last + 1], start, end) - start).astype(np.int32)
    return PuzzleSplit(inputs=split.inputs[start:end], labels=split.labels[start:end],
                       puzzle_identifiers=split.puzzle_identifiers[first:last],
                       puzzle_indices=puzzle_indices,
                       group_indices=np.array([0, last - first], dtype=np.int32))
