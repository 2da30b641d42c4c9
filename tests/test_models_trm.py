import pytest
import torch

from latentloop.config import load_preset
from latentloop.models import ModelConfig, build_model, count_parameters
from latentloop.models.trm import TRM


def test_parameter_counts_equal_the_official_ones():
    att = load_preset("trm-sudoku-att").model
    mlp = load_preset("trm-sudoku-mlp").model
    assert count_parameters(build_model(att)) == 6_828_034
    assert count_parameters(build_model(mlp)) == 5_028_866


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=2, T=3, n=2, N_sup=4,
                puzzle_emb_ndim=32, puzzle_emb_len=2, forward_dtype="float32")
    base.update(kw)
    return ModelConfig(**base)


def test_puzzle_embedding_and_init_states_are_buffers_not_parameters():
    model = TRM(tiny())
    names = {n for n, _ in model.named_parameters()}
    assert not any("puzzle_emb" in n or "init" in n for n in names)
    state = model.state_dict()
    assert {"y_init", "z_init", "encoder.puzzle_emb.weights"} <= set(state)
    assert torch.all(model.q_head.weight == 0) and torch.all(model.q_head.bias == -5)


def test_only_the_last_recursion_receives_gradient():
    torch.manual_seed(0)
    cfg = tiny(T=3, n=2)
    model = TRM(cfg)
    calls = []

    def hook(module, inputs, output):
        calls.append(output.requires_grad)

    model.net.register_forward_hook(hook)
    inputs = torch.randint(1, 6, (2, 8))
    state = model.initial_state(2, "cpu")
    new_state, out = model(state, inputs, torch.zeros(2, dtype=torch.long))
    # T * (n + 1) network calls; only the last n + 1 build a graph.
    assert calls == [False] * ((cfg.T - 1) * (cfg.n + 1)) + [True] * (cfg.n + 1)
    assert not new_state.y.requires_grad and not new_state.z.requires_grad
    out.logits.sum().backward()
    assert model.net.layers[0].mlp.down_proj.weight.grad is not None


def test_heads_read_y_and_q_head_uses_position_zero():
    torch.manual_seed(0)
    model = TRM(tiny())
    y = torch.randn(3, 10, 32)
    out = model.heads(y)
    assert out.logits.shape == (3, 8, 6)          # prefix positions dropped
    assert torch.allclose(out.logits, model.lm_head(y)[:, 2:])
    assert torch.allclose(out.q_halt, torch.full((3,), -5.0))
    with torch.no_grad():
        model.q_head.weight.normal_()
    y2 = y.clone()
    y2[:, 1:] += 1.0
    assert torch.allclose(model.heads(y2).q_halt, model.heads(y).q_halt)


def test_recursion_follows_the_pseudocode():
    """Replay the paper's pseudocode by hand with the model's own network and compare."""
    torch.manual_seed(0)
    cfg = tiny(T=2, n=3)
    model = TRM(cfg)
    inputs = torch.randint(1, 6, (2, 8))
    ids = torch.zeros(2, dtype=torch.long)
    state = model.initial_state(2, "cpu")
    _, out = model(state, inputs, ids)
    x = model.encoder(inputs, ids)
    rope = model.encoder.cos_sin()
    y, z = state.y, state.z
    for _ in range(cfg.T):
        for _ in range(cfg.n):
            z = model.net(z, y + x, rope)
        y = model.net(y, z, rope)
    assert torch.allclose(out.logits, model.lm_head(y)[:, 2:], atol=1e-5)


def test_learned_positions_and_rope_shapes():
    for pos in ("learned", "rope", "none"):
        model = TRM(tiny(pos_encodings=pos))
        _, out = model(model.initial_state(1, "cpu"), torch.randint(1, 6, (1, 8)), torch.zeros(1, dtype=torch.long))
        assert out.logits.shape == (1, 8, 6)
    with pytest.raises(ValueError):
        TRM(tiny(pos_encodings="sinusoidal"))


def test_bfloat16_forward_keeps_fp32_master_weights():
    model = TRM(tiny(forward_dtype="bfloat16"))
    state, out = model(model.initial_state(2, "cpu"), torch.randint(1, 6, (2, 8)), torch.zeros(2, dtype=torch.long))
    assert state.y.dtype == torch.bfloat16 and out.q_halt.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
