import math

import torch

from latentloop.layers.blocks import (Attention, Block, Linear, RotaryEmbedding, SwiGLU, apply_rotary, rms_norm,
                                      swiglu_inner_size)
from latentloop.layers.init import trunc_normal_


def test_trunc_normal_has_requested_std_and_bounds():
    torch.manual_seed(0)
    x = trunc_normal_(torch.empty(200_000), std=0.5)
    assert abs(x.std().item() - 0.5) < 0.005
    assert x.abs().max().item() <= 2 * 0.5 * 1.14  # clipped at +-2 "raw" sigma (scale ~1.137 x std)
    assert torch.count_nonzero(trunc_normal_(torch.empty(10), std=0)) == 0


def test_linear_init_is_lecun_and_bias_free():
    torch.manual_seed(0)
    layer = Linear(512, 1024)
    assert layer.bias is None
    assert abs(layer.weight.std().item() - 512 ** -0.5) < 0.001


def test_swiglu_inner_size_matches_official_rounding():
    assert swiglu_inner_size(512, 4) == 1536
    assert swiglu_inner_size(97, 4) == 512      # TRM-MLP token mixer on Sudoku (81 + 16 positions)
    assert swiglu_inner_size(916, 4) == 2560    # 30x30 + 16


def test_rms_norm_is_weightless_fp32_and_keeps_dtype():
    x = torch.randn(2, 3, 8, dtype=torch.bfloat16) * 10
    y = rms_norm(x, 1e-5)
    assert y.dtype == torch.bfloat16
    ref = x.float() / torch.sqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)
    assert torch.allclose(y.float(), ref, atol=2e-2)


def test_rms_norm_gives_the_official_formulas_bits_forward_and_backward():
    def official(x: torch.Tensor, eps: float) -> torch.Tensor:
        x32 = x.to(torch.float32)
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    torch.manual_seed(0)
    for shape in [(4, 37, 128), (4, 97, 512), (3, 5, 7)]:
        for dtype in (torch.float32, torch.bfloat16):
            for transposed in (False, True):   # TRM-MLP normalises the token mixer's output in [B, D, S] layout
                x = (torch.randn(*shape) * 7).to(dtype)
                if transposed:
                    x = x.transpose(1, 2).contiguous().transpose(1, 2)
                ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
                a, b = rms_norm(ours, 1e-5), official(theirs, 1e-5)
                weight = torch.randn(a.shape)
                (a.float() * weight).sum().backward()
                (b.float() * weight).sum().backward()
                assert torch.equal(a, b) and torch.equal(ours.grad, theirs.grad), (shape, dtype, transposed)


def test_swiglu_gives_the_same_bits_with_and_without_autograd():
    torch.manual_seed(0)
    mlp = SwiGLU(32, 4)
    x = torch.randn(3, 5, 32)
    with torch.no_grad():
        fast = mlp(x)
    assert torch.equal(fast, mlp(x))


def test_rope_rotate_half_matches_complex_rotation():
    head_dim, positions = 8, 5
    rope = RotaryEmbedding(head_dim, positions)
    x = torch.randn(1, positions, 1, head_dim)
    y = apply_rotary(x, rope())
    half = head_dim // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    for p in range(positions):
        z = torch.complex(x[0, p, 0, :half], x[0, p, 0, half:]) * torch.exp(1j * p * inv_freq)
        assert torch.allclose(y[0, p, 0, :half], z.real, atol=1e-5)
        assert torch.allclose(y[0, p, 0, half:], z.imag, atol=1e-5)


def test_attention_is_non_causal_and_matches_manual_softmax():
    torch.manual_seed(0)
    attn = Attention(16, 2)
    x = torch.randn(1, 4, 16)
    out = attn(x, None)
    q, k, v = attn.qkv_proj(x).view(1, 4, 3, 2, 8).unbind(2)
    scores = torch.einsum("bshd,bthd->bhst", q, k) / math.sqrt(8)
    manual = torch.einsum("bhst,bthd->bshd", scores.softmax(-1), v).reshape(1, 4, 16)
    assert torch.allclose(out, attn.o_proj(manual), atol=1e-5)
    # Changing the last token changes the first output: no causal mask.
    x2 = x.clone()
    x2[0, -1] += 1
    assert not torch.allclose(attn(x2, None)[0, 0], out[0, 0])


def test_post_norm_block_outputs_unit_rms():
    torch.manual_seed(0)
    for mixer in ("attention", "mlp"):
        block = Block(width=32, num_heads=4, expansion=4, num_positions=6, mixer=mixer)
        y = block(torch.randn(2, 6, 32) * 3)
        assert torch.allclose(y.pow(2).mean(-1), torch.ones(2, 6), atol=1e-3)


def test_token_mixer_mixes_positions_and_normalises_over_them():
    torch.manual_seed(0)
    mlp = SwiGLU(6, 4)
    block = Block(width=32, num_heads=4, expansion=4, num_positions=6, mixer="mlp")
    assert block.mlp_t.gate_up_proj.weight.shape == (2 * swiglu_inner_size(6, 4), 6)
    assert mlp.down_proj.weight.shape == (6, swiglu_inner_size(6, 4))
