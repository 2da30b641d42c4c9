"""Tiny Recursive Model (Jolicoeur-Martineau, 2025): one tiny network refines an answer y through a latent z.

Read top to bottom: input encoding, the parts every inner model shares (`RecurrentModel`), then TRM's recursion as in
the paper's pseudocode, with the paper's ablations (Tables 1-3) as options of the same class. The ACT/deep-supervision
wrapper lives in act.py and the losses in losses.py, as in the official code; HRM (hrm.py) and the direct-prediction
baseline (baseline.py) reuse the shared parts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from latentloop.layers.blocks import CosSin, Embedding, Linear, ReasoningModule, RotaryEmbedding, embed_scale
from latentloop.layers.init import trunc_normal_
from latentloop.layers.puzzle_embedding import PuzzleEmbedding
from latentloop.models.config import ModelConfig


@dataclass
class TRMState:
    """The recurrent state carried between supervision steps: answer y (official z_H) and latent z (official z_L).

    HRM carries the same pair (y = z_H, z = z_L). With z_mode="multiscale", z is [B, num_z, positions, D].
    """

    y: torch.Tensor
    z: torch.Tensor


@dataclass
class LatentState:
    """TRM with a single z (Table 2's "single z"): the latent is also what the heads read (official z_L)."""

    z: torch.Tensor


@dataclass
class AnswerState:
    """The direct-prediction baseline carries only its output state (official z_H)."""

    y: torch.Tensor


@dataclass
class StepOutput:
    logits: torch.Tensor          # [B, seq_len, vocab]
    q_halt: torch.Tensor          # [B] fp32 logits
    q_continue: torch.Tensor      # [B] fp32 logits


def cast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """`tensor` in `dtype` (no copy when it already is), for the no-gradient recursions' own dtype."""
    return tensor if tensor is None else tensor.to(dtype)


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

    def cos_sin(self) -> CosSin | None:
        return self.rotary_emb() if self.cfg.pos_encodings == "rope" else None


class RecurrentModel(nn.Module):
    """What every inner model shares: the input encoder, the output heads, the fixed initial states, and the
    interface the ACT wrapper, the training loop and evaluation use (`initial_state`, `reset`, `forward`,
    `puzzle_emb`). Subclasses set `State` (a dataclass of tensors) and register one `<field>_init` buffer per field.
    """

    State: type = TRMState

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = InputEncoder(cfg)

    def reasoning_module(self, num_layers: int) -> ReasoningModule:
        """A stack of `num_layers` shared blocks: attention, or TRM-MLP's token mixing when cfg.mlp_t; URM's
        ConvSwiGLU as the channel MLP when cfg.mlp is conv_swiglu."""
        cfg = self.cfg
        return ReasoningModule(num_layers, width=cfg.hidden_size, num_heads=cfg.num_heads, expansion=cfg.expansion,
                               num_positions=cfg.num_positions, mixer="mlp" if cfg.mlp_t else "attention",
                               eps=cfg.rms_norm_eps, conv_kernel=cfg.conv_kernel if cfg.mlp == "conv_swiglu" else 0)

    def add_heads(self) -> None:
        self.lm_head = Linear(self.cfg.hidden_size, self.cfg.vocab_size)
        self.q_head = Linear(self.cfg.hidden_size, 2, bias=True)
        with torch.no_grad():  # Q starts near "never halt" (sigmoid(-5) = 0.007) so bootstrapping is stable.
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)

    def add_initial_state(self, name: str, *leading: int) -> None:
        """A fixed, untrained initial state (a buffer saved with the weights): one D-vector, or `leading` of them."""
        init = trunc_normal_(torch.empty(*leading, self.cfg.hidden_size, dtype=self.cfg.dtype), std=1.0)
        self.register_buffer(f"{name}_init", init)

    def _initial(self, name: str) -> torch.Tensor:
        """The `<name>_init` buffer shaped to broadcast over [B, *leading, positions, D]."""
        return getattr(self, f"{name}_init").unsqueeze(-2)

    def initial_state(self, batch_size: int, device: torch.device | str):
        fields = {}
        for f in dataclasses.fields(self.State):
            init = self._initial(f.name).to(device)
            fields[f.name] = init.expand(batch_size, *init.shape[:-2], self.cfg.num_positions, -1).clone()
        return self.State(**fields)

    def reset(self, state, reset: torch.Tensor):
        """Start rows where `reset` is True from the fixed initial states; keep the others."""
        fields = {}
        for f in dataclasses.fields(self.State):
            value = getattr(state, f.name)
            fields[f.name] = torch.where(reset.view((-1,) + (1,) * (value.ndim - 1)), self._initial(f.name), value)
        return self.State(**fields)

    def heads(self, y: torch.Tensor) -> StepOutput:
        """Logits for the token positions (prefix dropped) and the two Q logits from position 0."""
        logits = self.lm_head(y)[:, self.cfg.prefix_len:]
        q = self.q_head(y[:, 0]).float()
        return StepOutput(logits=logits, q_halt=q[..., 0], q_continue=q[..., 1])

    def compile_networks(self, backend: str = "inductor") -> None:
        """torch.compile every reasoning module in place. The recursion calls them T(n+1) times per step, so fusing
        their element-wise ops pays most there; compiling in place keeps parameter names (checkpoints, EMA).
        `backend="aot_eager"` traces the same graphs without generating code (quick, for tests)."""
        for module in self.modules():
            if isinstance(module, ReasoningModule):
                module.compile(backend=backend)

    @property
    def puzzle_emb(self) -> PuzzleEmbedding | None:
        return getattr(self.encoder, "puzzle_emb", None)


class TRM(RecurrentModel):
    """The recursion of TRM for one supervision step, with the official parameter layout and initialisation.

    Ablations (cfg): `one_step_grad` backprops only the last z and y updates; `separate_nets` gives y its own network
    `net_y` (f_H; `net` is f_L); `z_mode` "single" keeps only z (z <- net(z + x) n times, then z <- net(z)), and
    "multiscale" keeps num_z latents, the i-th latent update writing z_i from the sum of all of them (official
    trm_hier6). T, n and layers are free; T and n are read at every call, so they can be changed at test time (and
    by the training loop's depth curriculum). `grad_cycles` = k backprops the last k recursions instead of the last
    one (URM's truncated backpropagation through loops, arXiv 2512.14693).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.State = LatentState if cfg.z_mode == "single" else TRMState
        self.net = self.reasoning_module(cfg.layers)
        if cfg.separate_nets:
            self.net_y = self.reasoning_module(cfg.layers)
        self.add_heads()
        if cfg.z_mode != "single":
            self.add_initial_state("y")
        self.add_initial_state("z", *((cfg.num_z,) if cfg.z_mode == "multiscale" else ()))

    def latent_recursion(self, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor, cos_sin: CosSin | None,
                         grad_from: int = 0) -> tuple[torch.Tensor | None, torch.Tensor]:
        """n latent updates z <- net(x, y, z), then one answer update y <- net(y, z) (x absent: the task switch).

        Latent updates numbered below `grad_from` run without gradient (the 1-step gradient ablation).
        """
        mode, grad = self.cfg.z_mode, torch.is_grad_enabled()
        if mode == "single":
            for i in range(self.cfg.n):
                with torch.set_grad_enabled(grad and i >= grad_from):
                    z = self.net(z, x, cos_sin)
            return None, self.net(z, torch.zeros((), dtype=z.dtype, device=z.device), cos_sin)
        net_y = self.net_y if self.cfg.separate_nets else self.net
        if mode == "multiscale":
            zs = list(z.unbind(1))
            for i in range(self.cfg.n):
                with torch.set_grad_enabled(grad and i >= grad_from):
                    zs[i] = self.net(sum(zs[1:], zs[0]), y + x, cos_sin)
            return net_y(y, sum(zs[1:], zs[0]), cos_sin), torch.stack(zs, 1)
        for i in range(self.cfg.n):
            with torch.set_grad_enabled(grad and i >= grad_from):
                z = self.net(z, y + x, cos_sin)
        return net_y(y, z, cos_sin), z

    def recomputed_recursion(self, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor,
                             cos_sin: CosSin | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """latent_recursion with gradient whose activations are recomputed in the backward pass instead of kept
        (activation checkpointing), so backpropagating through k recursions keeps about one recursion's activations.
        The networks draw no random numbers, so no RNG state needs saving for the recomputation."""
        if not torch.is_grad_enabled():
            return self.latent_recursion(x, y, z, cos_sin)
        return checkpoint(self.latent_recursion, x, y, z, cos_sin, use_reentrant=False, preserve_rng_state=False)

    def forward(self, state, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor) -> tuple[object, StepOutput]:
        """One supervision step: T-k recursions without gradient, then k with gradient (k = grad_cycles, 1 in the
        paper; at most the T of this call, which the depth curriculum may lower); heads read y."""
        x = self.encoder(inputs, puzzle_identifiers)
        cos_sin = self.encoder.cos_sin()
        y, z = getattr(state, "y", None), state.z
        k = min(self.cfg.grad_cycles, self.cfg.T)
        if self.cfg.T > k:
            with torch.no_grad():
                low = self.cfg.no_grad_torch_dtype
                x_low, y, z = cast(x, low), cast(y, low), cast(z, low)
                for _ in range(self.cfg.T - k):
                    y, z = self.latent_recursion(x_low, y, z, cos_sin)
                y, z = cast(y, x.dtype), cast(z, x.dtype)
        for _ in range(k - 1):
            y, z = self.recomputed_recursion(x, y, z, cos_sin)
        y, z = self.latent_recursion(x, y, z, cos_sin, grad_from=self.cfg.n - 1 if self.cfg.one_step_grad else 0)
        if y is None:
            return LatentState(z=z.detach()), self.heads(z)
        return TRMState(y=y.detach(), z=z.detach()), self.heads(y)
