"""Weight initialisation matching the JAX-style truncated normal the official code uses."""

from __future__ import annotations

import math

import torch


def trunc_normal_(tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill `tensor` from a normal truncated to [lower*s, upper*s] whose *actual* std equals `std`.

    `torch.nn.init.trunc_normal_` returns a smaller std than asked; the official models correct the scale (about
    1.137x for +-2 sigma) so that LeCun init really has std 1/sqrt(fan_in). std == 0 gives zeros.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        cdf_lo = math.erf(lower / math.sqrt(2))
        cdf_hi = math.erf(upper / math.sqrt(2))
        mass = (cdf_hi - cdf_lo) / 2
        pdf_lo = math.exp(-0.5 * lower**2) / math.sqrt(2 * math.pi)
        pdf_hi = math.exp(-0.5 * upper**2) / math.sqrt(2 * math.pi)
        variance = 1 - (upper * pdf_hi - lower * pdf_lo) / mass - ((pdf_hi - pdf_lo) / mass) ** 2
        scale = std / math.sqrt(variance)
        # Sample in fp32 then cast: erfinv is not implemented for every dtype (e.g. bf16 on CPU).
        sample = torch.empty(tensor.shape, dtype=torch.float32, device=tensor.device)
        sample.uniform_(cdf_lo, cdf_hi, generator=generator).erfinv_().mul_(math.sqrt(2) * scale)
        sample.clamp_(lower * scale, upper * scale)
        return tensor.copy_(sample)
