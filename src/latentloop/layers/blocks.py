"""The one block library every model uses (the official HRM/TRM `models/layers.py`, `models/common.py`).

Post-norm Transformer blocks with weightless fp32 RMSNorm, bias-free linears, SwiGLU, RoPE and non-causal SDPA
attention, plus the token-mixing SwiGLU of TRM-MLP. Weights are stored in fp32 and cast to the activation dtype at use,
as the official code does, so bf16 runs keep fp32 master weights without autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from latentloop.layers.init import trunc_normal_

CosSin = tuple[torch.Tensor, torch.Tensor]


def round_up(value: int, multiple: int) -> int:
    return -(value // -multiple) * multiple


def swiglu_inner_size(width: int, expansion: float) -> int:
    """Official inner size: 2/3 of expansion*width, rounded up to a multiple of 256 (1536 for width 512)."""
    return round_up(round(expansion * width * 2 / 3), 256)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Weightless RMSNorm over the last axis, computed in fp32 and cast back. Not torch's fused `F.rms_norm`: same
    bits, but 3x slower on the token mixer's transposed layout in bf16 (docs/performance.md, section 1)."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + eps)
    return x32.to(x.dtype)


class Linear(nn.Module):
    """Linear layer with truncated LeCun-normal init (std 1/sqrt(fan_in)); bias only where asked (the Q-head)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), std=in_features**-0.5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class Embedding(nn.Module):
    """Embedding table stored in fp32, initialised with a truncated normal, looked up in the forward dtype."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num_embeddings, embedding_dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.dtype))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE tables (rotate-half convention) for every position, the puzzle-embedding prefix included."""

    def __init__(self, head_dim: int, num_positions: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(num_positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self) -> CosSin:
        return self.cos, self.sin


def apply_rotary(x: torch.Tensor, cos_sin: CosSin) -> torch.Tensor:
    """Rotate x [B, S, H, Dh] in fp32 (as the official code does) and cast back."""
    cos, sin = cos_sin
    x32 = x.float()
    rotated = x32 * cos.unsqueeze(-2) + rotate_half(x32) * sin.unsqueeze(-2)
    return rotated.to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head attention with a fused QKV projection and scaled_dot_product_attention."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.inner = self.head_dim * num_heads
        self.qkv_proj = Linear(width, 3 * self.inner)
        self.o_proj = Linear(self.inner, width)

    def forward(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        batch, seq, _ = x.shape
        qkv = self.qkv_proj(x).view(batch, seq, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)
        if cos_sin is not None:
            q, k = apply_rotary(q, cos_sin), apply_rotary(k, cos_sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, self.inner))


class SwiGLU(nn.Module):
    """silu(gate) * up with a fused gate+up projection; over channels, or over positions in TRM-MLP.

    `conv_kernel > 0` makes it URM's ConvSwiGLU (Gao et al. 2025, arXiv 2512.14693, and its official
    `models/layers.py`): down(silu(dwconv(silu(gate) * up))), where dwconv is a depthwise 1-D convolution with bias
    over the sequence axis. Output position t reads the gated features at t - k//2 .. t + k - 1 - k//2 (zeros past
    either end), so URM's k=2 mixes each position with the one before it. It adds inner * (k + 1) parameters (filter
    and bias per channel), initialised as torch's Conv1d does: U(-1/sqrt(k), 1/sqrt(k)).
    """

    def __init__(self, width: int, expansion: float, conv_kernel: int = 0) -> None:
        super().__init__()
        inner = swiglu_inner_size(width, expansion)
        self.gate_up_proj = Linear(width, 2 * inner)
        self.down_proj = Linear(inner, width)
        self.conv_kernel = conv_kernel
        if conv_kernel:
            bound = conv_kernel**-0.5
            self.conv_weight = nn.Parameter(torch.empty(inner, 1, conv_kernel).uniform_(-bound, bound))
            self.conv_bias = nn.Parameter(torch.empty(inner).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        # Without autograd (the no-grad recursions, evaluation) the product overwrites silu's output: same bits, one
        # large allocation fewer.
        hidden = F.silu(gate)
        hidden = hidden * up if torch.is_grad_enabled() else hidden.mul_(up)
        if self.conv_kernel:
            hidden = F.silu(self.short_conv(hidden))
        return self.down_proj(hidden)

    def short_conv(self, hidden: torch.Tensor) -> torch.Tensor:
        """The depthwise convolution of [B, S, inner] over S, keeping S positions."""
        before = self.conv_kernel // 2
        padded = F.pad(hidden.transpose(1, 2), (before, self.conv_kernel - 1 - before))
        out = F.conv1d(padded, self.conv_weight.to(hidden.dtype), self.conv_bias.to(hidden.dtype),
                       groups=hidden.shape[-1])
        return out.transpose(1, 2)


class Block(nn.Module):
    """Post-norm block: h = norm(h + mix(h)); h = norm(h + mlp(h)).

    `mixer="attention"` mixes positions with self-attention; `mixer="mlp"` is TRM-MLP's token-mixing SwiGLU over the
    sequence axis (hidden size = number of positions), with its residual and norm taken in the transposed layout.
    `conv_kernel > 0` makes the channel MLP a ConvSwiGLU (see SwiGLU); the token mixer stays a plain SwiGLU.
    """

    def __init__(self, width: int, num_heads: int, expansion: float, num_positions: int, mixer: str = "attention",
                 eps: float = 1e-5, conv_kernel: int = 0) -> None:
        super().__init__()
        self.mixer = mixer
        self.eps = eps
        if mixer == "attention":
            self.self_attn = Attention(width, num_heads)
        elif mixer == "mlp":
            self.mlp_t = SwiGLU(num_positions, expansion)
        else:
            raise ValueError(f"unknown mixer {mixer!r}; use 'attention' or 'mlp'")
        self.mlp = SwiGLU(width, expansion, conv_kernel)

    def forward(self, h: torch.Tensor, cos_sin: CosSin | None = None) -> torch.Tensor:
        if self.mixer == "mlp":
            ht = h.transpose(1, 2)
            h = rms_norm(ht + self.mlp_t(ht), self.eps).transpose(1, 2)
        else:
            h = rms_norm(h + self.self_attn(h, cos_sin), self.eps)
        return rms_norm(h + self.mlp(h), self.eps)


class ReasoningModule(nn.Module):
    """A stack of blocks applied to (state + injection): the `net` of the papers' pseudocode."""

    def __init__(self, num_layers: int, **block_kwargs) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(**block_kwargs) for _ in range(num_layers))

    def forward(self, state: torch.Tensor, injection: torch.Tensor, cos_sin: CosSin | None = None) -> torch.Tensor:
        h = state + injection
        for layer in self.layers:
            h = layer(h, cos_sin)
        return h


def embed_scale(width: int) -> float:
    """Inputs are multiplied by sqrt(D) so that embeddings initialised with std 1/sqrt(D) reach unit std."""
    return math.sqrt(width)
