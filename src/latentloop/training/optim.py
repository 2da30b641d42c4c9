"""The dense optimizer and the learning-rate schedule of the official recipes (AdamATan2 from the `adam-atan2`
package and `cosine_schedule_with_warmup_lr_lambda` in the official HRM/TRM `pretrain.py`), and the split of the
parameters for optimizer=muon (Muon on the reasoning networks' matrices, AdamATan2 on the rest).

`AdamATan2` reproduces the CUDA-only `adam-atan2` package in plain PyTorch so training runs on any device;
`lr_at` is the shared warmup + cosine schedule it and the puzzle embedding's sparse sign-SGD
(`latentloop.layers.puzzle_embedding.PuzzleEmbeddingSignSGD`) follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import ParamsT

from latentloop.errors import ConfigError
from latentloop.layers.blocks import ReasoningModule

OPTIMIZERS = ("adam_atan2", "muon")   # train.optimizer


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 1.0) -> float:
    """Learning rate at `step`: linear warmup from 0, then cosine from `base_lr` down to `min_ratio * base_lr`.

    The official default `min_ratio=1.0` makes the rate constant after warmup (only HRM's full-Sudoku recipe uses 0.1).
    Step 0 gives lr 0, which `AdamATan2` accepts. As in the official code the cosine is not clamped at
    `total_steps`; training loops stop updating there.
    """
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))))


class AdamATan2(torch.optim.Optimizer):
    """Adam with atan2 in place of m / (sqrt(v) + eps), as in the `adam-atan2` CUDA kernel the official runs use.

    Per parameter at step t (counted per parameter, from 1):
        p <- p * (1 - lr * wd);  m <- lerp(m, g, 1 - b1);  v <- lerp(v, g*g, 1 - b2)
        p <- p - lr / (1 - b1^t) * atan2(m, sqrt(v) / sqrt(1 - b2^t))
    atan2 is bounded and defined at (0, 0), so there is no epsilon and lr = 0 is allowed (the first warmup step).
    Weight decay applies to every parameter given. Parameters whose grad is None are skipped and keep their step.
    `foreach=True` batches the work over all tensors of a group sharing device and dtype with `torch._foreach_*` ops
    (many small tensors); `foreach=False` runs the same op sequence per tensor, with identical results on CPU.
    State is meant for fp32 (master) parameters: the moments take the parameter's dtype.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                 weight_decay: float = 0.1, foreach: bool = True) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "foreach": foreach})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; `closure` re-evaluates the loss, as in torch optimizers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            buckets: dict[tuple[torch.device, torch.dtype], list[list[Any]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamATan2 does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                bucket = buckets.setdefault((p.device, p.dtype), [[], [], [], [], []])
                for lst, item in zip(bucket, (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])):
                    lst.append(item)
            update = _adam_atan2_foreach if group["foreach"] else _adam_atan2_per_tensor
            beta1, beta2 = group["betas"]
            for params, grads, exp_avgs, exp_avg_sqs, steps in buckets.values():
                update(params, grads, exp_avgs, exp_avg_sqs, steps,
                       lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"])
        return loss


def split_for_muon(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(Muon's, AdamATan2's) parameters for optimizer=muon: Muon takes the 2-D weight matrices of the reasoning
    networks (the hidden layers it is made for); the embeddings, the output and Q heads and every parameter that is
    not a matrix (biases, ConvSwiGLU filters) stay with AdamATan2. Both lists keep the order of model.parameters()."""
    hidden = {id(p) for module in model.modules() if isinstance(module, ReasoningModule)
              for p in module.parameters() if p.ndim == 2}
    params = list(model.parameters())
    return [p for p in params if id(p) in hidden], [p for p in params if id(p) not in hidden]


def make_muon(params: list[nn.Parameter], weight_decay: float) -> torch.optim.Optimizer:
    """torch's Muon (2.9 and newer) with its default momentum (0.95, Nesterov) and Newton-Schulz iteration; the
    training loop sets its learning rate at every step."""
    muon = getattr(torch.optim, "Muon", None)
    if muon is None:
        raise ConfigError(f"optimizer=muon needs torch.optim.Muon (torch 2.9 or newer); this is torch "
                          f"{torch.__version__}")
    return muon(params, lr=0.0, weight_decay=weight_decay)


def _step_scalars(steps: list[int], lr: float, beta1: float, beta2: float) -> tuple[list[float], list[float]]:
    """Per-tensor (-lr / (1 - b1^t), sqrt(1 - b2^t)), computed in double as the CUDA kernel does."""
    neg_step_sizes = [-lr / (1 - beta1**t) for t in steps]
    bias_correction2_sqrts = [math.sqrt(1 - beta2**t) for t in steps]
    return neg_step_sizes, bias_correction2_sqrts


def _adam_atan2_foreach(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                        exp_avg_sqs: list[torch.Tensor], steps: list[int], *, lr: float, beta1: float, beta2: float,
                        weight_decay: float) -> None:
    """One AdamATan2 step over tensors that share device and dtype, batched with foreach kernels."""
    neg_step_sizes, bias_correction2_sqrts = _step_scalars(steps, lr, beta1, beta2)
    torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_lerp_(exp_avg_sqs, torch._foreach_mul(grads, grads), 1 - beta2)
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denoms, bias_correction2_sqrts)
    # There is no foreach atan2; write each result over its denominator to avoid another allocation.
    for exp_avg, denom in zip(exp_avgs, denoms):
        torch.atan2(exp_avg, denom, out=denom)
    torch._foreach_mul_(denoms, neg_step_sizes)
    torch._foreach_add_(params, denoms)


def _adam_atan2_per_tensor(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                           exp_avg_sqs: list[torch.Tensor], steps: list[int], *, lr: float, beta1: float,
                           beta2: float, weight_decay: float) -> None:
    """The same op sequence as `_adam_atan2_foreach`, one tensor at a time (the fallback and its check)."""
    neg_step_sizes, bias_correction2_sqrts = _step_scalars(steps, lr, beta1, beta2)
    for p, g, exp_avg, exp_avg_sq, neg_step_size, bc2_sqrt in zip(
            params, grads, exp_avgs, exp_avg_sqs, neg_step_sizes, bias_correction2_sqrts):
        p.mul_(1 - lr * weight_decay)
        exp_avg.lerp_(g, 1 - beta1)
        exp_avg_sq.lerp_(g * g, 1 - beta2)
        denom = exp_avg_sq.sqrt().div_(bc2_sqrt)
        torch.atan2(exp_avg, denom, out=denom)
        p.add_(denom.mul_(neg_step_size))
