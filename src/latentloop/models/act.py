"""Deep supervision with adaptive computation time (the ACT wrapper's `forward` in HRM
`models/hrm/hrm_act_v1.py` and TRM `models/recursive_reasoning/trm.py`, with `ACTLossHead` in `models/losses.py`).

The carry travels across training batches: rows that halted are replaced by the same rows of the new batch and start
from the initial state; rows still thinking keep their example and their state. One call = one supervision step =
one optimizer step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Carry:
    state: object                       # the inner model's recurrent state (TRMState, ...)
    steps: torch.Tensor                 # [B] int32 supervision steps taken on the current example
    halted: torch.Tensor                # [B] bool
    data: dict[str, torch.Tensor] = field(default_factory=dict)   # the example each row is working on


class ACT(nn.Module):
    """Wraps a recurrent inner model with halting, exploration and (optionally) the Q-continue target.

    halt_rule "q_halt" halts when q_halt > 0 (TRM); "q_halt_vs_continue" halts when q_halt > q_continue (HRM).
    In eval mode no row halts early: every row runs N_sup steps, as in the official evaluation.
    """

    def __init__(self, inner: nn.Module, N_sup: int, exploration_prob: float = 0.1, halt_rule: str = "q_halt",
                 q_continue_target: bool = False) -> None:
        super().__init__()
        if halt_rule not in ("q_halt", "q_halt_vs_continue"):
            raise ValueError(f"unknown halt_rule {halt_rule!r}")
        self.inner = inner
        self.N_sup = N_sup
        self.exploration_prob = exploration_prob
        self.halt_rule = halt_rule
        self.q_continue_target = q_continue_target

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Carry:
        """All rows start halted, so the first call loads the whole batch and resets every state."""
        size = batch["inputs"].shape[0]
        device = batch["inputs"].device
        return Carry(state=self.inner.initial_state(size, device),
                     steps=torch.zeros(size, dtype=torch.int32, device=device),
                     halted=torch.ones(size, dtype=torch.bool, device=device),
                     data={k: torch.empty_like(v) for k, v in batch.items()})

    def forward(self, carry: Carry, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None,
                rows: tuple[int, int] | None = None) -> tuple[Carry, dict[str, torch.Tensor]]:
        """One supervision step. `rows=(first, total)` says this batch is rows first.. of a global batch of `total`:
        exploration then draws for all `total` rows and keeps this slice, so a row's random numbers do not depend on
        how the global batch is split across ranks or micro-batches."""
        halted = carry.halted
        state = self.inner.reset(carry.state, halted)
        steps = torch.where(halted, 0, carry.steps)
        data = {k: torch.where(halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v) for k, v in carry.data.items()}

        state, out = self.inner(state, data["inputs"], data["puzzle_identifiers"])
        outputs = {"logits": out.logits, "q_halt_logits": out.q_halt, "q_continue_logits": out.q_continue}

        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= self.N_sup
            new_halted = is_last
            if self.training and self.N_sup > 1:
                if self.halt_rule == "q_halt":
                    new_halted = new_halted | (out.q_halt > 0)
                else:
                    new_halted = new_halted | (out.q_halt > out.q_continue)
                # Exploration: with probability p a row must run at least U{2..N_sup} steps before it may halt.
                first, total = rows or (0, steps.shape[0])
                mine = slice(first, first + steps.shape[0])
                explore = torch.rand(total, generator=generator, device=steps.device)[mine] < self.exploration_prob
                min_steps = torch.randint(2, self.N_sup + 1, (total,), generator=generator, device=steps.device)[mine]
                new_halted = new_halted & (steps >= explore * min_steps)
                if self.q_continue_target:
                    # Q-learning target from one more no-grad step on the same data (no replay, no target net).
                    _, nxt = self.inner(state, data["inputs"], data["puzzle_identifiers"])
                    outputs["target_q_continue"] = torch.sigmoid(
                        torch.where(is_last, nxt.q_halt, torch.maximum(nxt.q_halt, nxt.q_continue)))
        return Carry(state=state, steps=steps, halted=new_halted, data=data), outputs
