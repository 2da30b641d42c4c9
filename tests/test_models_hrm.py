import torch
from torch import nn

from latentloop.config import load_preset
from latentloop.models import ACT, ModelConfig, build_model, count_parameters
from latentloop.models.hrm import HRM
from latentloop.models.trm import StepOutput, TRMState


def tiny(**kw) -> ModelConfig:
    base = dict(arch="hrm", vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=2, H_layers=1, T=3, n=2,
                N_sup=4, act_continue=True, puzzle_emb_ndim=32, puzzle_emb_len=0, forward_dtype="float32")
    base.update(kw)
    return ModelConfig(**base)


def full_size(preset: str) -> ACT:
    """The preset's model with its real shapes, on the meta device (no memory, no init time)."""
    with torch.device("meta"):
        return build_model(load_preset(preset).model)


def test_parameter_count_equals_the_official_one():
    assert count_parameters(full_size("hrm-sudoku-1k")) == 27_275_266
    # Learned positions add (81 + 1) x 512 (the full Sudoku-Hard recipe).
    assert count_parameters(full_size("hrm-sudoku-full")) == 27_275_266 + 82 * 512


def test_presets_follow_the_official_recipe():
    cfg = load_preset("hrm-sudoku-1k").model
    assert (cfg.T, cfg.n, cfg.layers, cfg.H_layers, cfg.prefix_len) == (2, 2, 4, 4, 1)
    assert cfg.act_continue and cfg.depth == 24 and cfg.forward_passes == 2
    model = full_size("hrm-sudoku-1k")
    assert model.halt_rule == "q_halt_vs_continue" and model.q_continue_target


def test_only_the_last_L_and_H_updates_build_a_graph():
    torch.manual_seed(0)
    cfg = tiny(T=3, n=2)
    model = HRM(cfg)
    calls: dict[str, list[bool]] = {"H": [], "L": []}
    model.H_net.register_forward_hook(lambda m, i, o: calls["H"].append(o.requires_grad))
    model.L_net.register_forward_hook(lambda m, i, o: calls["L"].append(o.requires_grad))
    state = model.initial_state(2, "cpu")
    new_state, out = model(state, torch.randint(1, 6, (2, 8)), torch.zeros(2, dtype=torch.long))
    assert calls["L"] == [False] * (cfg.T * cfg.n - 1) + [True]
    assert calls["H"] == [False] * (cfg.T - 1) + [True]
    assert not new_state.y.requires_grad and not new_state.z.requires_grad
    (out.logits.sum() + out.q_halt.sum()).backward()
    assert all(p.grad is not None for p in model.H_net.parameters())
    assert all(p.grad is not None for p in model.L_net.parameters())


def test_gradient_equals_that_of_the_last_two_updates_alone():
    """The 1-step gradient: backprop through the whole step equals backprop through the last L and H calls started
    from the (constant) states the no-grad part reached."""
    torch.manual_seed(0)
    cfg = tiny(T=2, n=3)
    model = HRM(cfg)
    inputs, ids = torch.randint(1, 6, (2, 8)), torch.zeros(2, dtype=torch.long)
    state = model.initial_state(2, "cpu")
    _, out = model(state, inputs, ids)
    loss = lambda o: o.logits.square().sum() + o.q_halt.sum() + o.q_continue.square().sum()  # noqa: E731
    loss(out).backward()
    full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    x, rope = model.encoder(inputs, ids), model.encoder.cos_sin()
    z_H, z_L = state.y, state.z
    with torch.no_grad():
        for h in range(cfg.T):
            for l in range(cfg.n):
                if (h, l) != (cfg.T - 1, cfg.n - 1):
                    z_L = model.L_net(z_L, z_H + x, rope)
            if h != cfg.T - 1:
                z_H = model.H_net(z_H, z_L, rope)
    z_H = model.H_net(z_H, model.L_net(z_L, z_H + x, rope), rope)
    loss(model.heads(z_H)).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(full, model.parameters()))


def test_one_prefix_position_and_fixed_initial_states():
    model = HRM(tiny())
    assert model.cfg.prefix_len == 1
    assert {"y_init", "z_init", "encoder.puzzle_emb.weights"} <= set(model.state_dict())
    assert not any("init" in name or "puzzle_emb" in name for name, _ in model.named_parameters())
    state = model.initial_state(3, "cpu")
    assert state.y.shape == (3, 9, 32) and torch.equal(state.y[1, 4], model.y_init)


class ScriptedInner(nn.Module):
    """An inner model whose Q logits are fixed per call, to check the Q-continue target by hand."""

    def __init__(self, q: list[tuple[list[float], list[float]]]) -> None:
        super().__init__()
        self.q = q
        self.calls = 0
        self.weight = nn.Parameter(torch.zeros(()))

    def initial_state(self, batch_size, device):
        return TRMState(y=torch.zeros(batch_size, 1, 1), z=torch.zeros(batch_size, 1, 1))

    def reset(self, state, reset):
        return state

    def forward(self, state, inputs, puzzle_identifiers):
        q_halt, q_continue = (torch.tensor(v) for v in self.q[self.calls])
        self.calls += 1
        return state, StepOutput(logits=torch.zeros(len(inputs), 1, 2) + self.weight, q_halt=q_halt,
                                 q_continue=q_continue)


def test_q_continue_target_by_hand():
    """target = sigmoid(max(q_halt', q_continue')) of the next step, or sigmoid(q_halt') at the last step."""
    inner = ScriptedInner([
        ([-5.0, -5.0], [-4.0, -4.0]),   # step 1 (nobody halts: q_halt < q_continue)
        ([1.0, -2.0], [0.5, 3.0]),      # the extra no-grad pass from step 1's new state
        ([-9.0, -9.0], [-1.0, -1.0]),   # step 2 = N_sup: every row halts
        ([2.0, -3.0], [7.0, 7.0]),      # the extra pass after the last step: only q_halt' counts
    ])
    act = ACT(inner, N_sup=2, exploration_prob=0.0, halt_rule="q_halt_vs_continue", q_continue_target=True)
    batch = {"inputs": torch.zeros(2, 1, dtype=torch.long), "puzzle_identifiers": torch.zeros(2, dtype=torch.long)}
    carry, out = act(act.initial_carry(batch), batch)
    assert torch.allclose(out["target_q_continue"], torch.sigmoid(torch.tensor([1.0, 3.0])))
    assert not carry.halted.any()
    carry, out = act(carry, batch)
    assert torch.allclose(out["target_q_continue"], torch.sigmoid(torch.tensor([2.0, -3.0])))
    assert carry.halted.all() and inner.calls == 4


def test_halts_when_q_halt_exceeds_q_continue():
    torch.manual_seed(0)
    model = build_model(tiny(N_sup=8, halt_exploration_prob=0.0))
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([-1.0, -2.0]))   # q_halt < 0 but > q_continue: HRM halts
    batch = {"inputs": torch.randint(1, 6, (3, 8)), "labels": torch.randint(1, 6, (3, 8)),
             "puzzle_identifiers": torch.zeros(3, dtype=torch.long)}
    carry, out = model(model.initial_carry(batch), batch)
    assert carry.halted.all() and "target_q_continue" in out
