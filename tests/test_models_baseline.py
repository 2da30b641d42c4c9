import pytest
import torch

from latentloop.config import apply_overrides, load_preset
from latentloop.models import ModelConfig, build_model, count_parameters
from latentloop.models.baseline import TransformerBaseline
from latentloop.models.losses import act_loss, softmax_cross_entropy
from latentloop.models.trm import AnswerState


def full_size(preset: str, *overrides: str):
    with torch.device("meta"):
        return build_model(apply_overrides(load_preset(preset), list(overrides)).model)


def test_parameter_counts():
    # The TRM repo's config (12 heads: head_dim 42, attention width 504) on ARC (vocabulary 12, 30x30 grids).
    assert count_parameters(full_size("baseline-arc1", "vocab_size=12", "seq_len=900")) == 27_145_218
    assert count_parameters(full_size("baseline-sudoku-1k")) == 27_144_194
    # latentloop's earlier variant, 8 heads of 64: exactly HRM's 27,275,266 on Sudoku.
    assert count_parameters(full_size("baseline-sudoku-1k", "num_heads=8", "halt_vs_continue=false")) == 27_275_266


@pytest.mark.parametrize("preset", ["baseline-arc1", "baseline-maze-hard", "baseline-sudoku-1k"])
def test_presets_halt_as_the_official_baseline_and_never_train_q_continue(preset):
    model = full_size(preset)
    assert model.inner.cfg.num_heads == 12
    assert model.halt_rule == "q_halt_vs_continue" and not model.q_continue_target
    assert full_size(preset, "halt_vs_continue=false").halt_rule == "q_halt"


def test_halting_compares_q_halt_with_an_untrained_q_continue():
    torch.manual_seed(0)
    model = build_model(tiny(N_sup=4, halt_vs_continue=True, halt_exploration_prob=0.0))
    with torch.no_grad():   # q_halt below 0 everywhere but above q_continue: TRM's rule would not halt
        model.inner.q_head.bias.copy_(torch.tensor([-1.0, -3.0]))
    batch = {"inputs": torch.randint(1, 6, (3, 8)), "labels": torch.randint(1, 6, (3, 8)),
             "puzzle_identifiers": torch.zeros(3, dtype=torch.long)}
    model.train()
    carry, outputs = model(model.initial_carry(batch), batch)
    assert carry.halted.all() and "target_q_continue" not in outputs
    loss, _ = act_loss(outputs, carry.data["labels"], carry.halted, carry.steps, softmax_cross_entropy)
    loss.backward()
    q_weight = model.inner.q_head.weight.grad
    assert q_weight[0].abs().sum() > 0 and q_weight[1].abs().sum() == 0    # q_continue's row gets no gradient


def tiny(**kw) -> ModelConfig:
    base = dict(arch="baseline", vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=3, N_sup=3,
                puzzle_emb_ndim=32, puzzle_emb_len=0, forward_dtype="float32")
    base.update(kw)
    return ModelConfig(**base)


def test_one_pass_with_gradient_per_supervision_step():
    torch.manual_seed(0)
    model = TransformerBaseline(tiny())
    calls = []
    model.net.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    inputs, ids = torch.randint(1, 6, (2, 8)), torch.zeros(2, dtype=torch.long)
    state = model.initial_state(2, "cpu")
    assert isinstance(state, AnswerState) and state.y.shape == (2, 9, 32)
    new_state, out = model(state, inputs, ids)
    assert calls == [True] and not new_state.y.requires_grad
    expected = model.net(state.y, model.encoder(inputs, ids), model.encoder.cos_sin())
    assert torch.allclose(out.logits, model.lm_head(expected)[:, 1:], atol=1e-6)
    assert model.cfg.depth == 3 and model.cfg.network_calls == 1


def test_state_carries_across_steps_and_heads_need_not_divide_the_width():
    torch.manual_seed(0)
    model = build_model(tiny(hidden_size=50, puzzle_emb_ndim=50, num_heads=12))   # head_dim 4, attention width 48
    batch = {"inputs": torch.randint(1, 6, (2, 8)), "labels": torch.randint(1, 6, (2, 8)),
             "puzzle_identifiers": torch.zeros(2, dtype=torch.long)}
    carry, first = model(model.initial_carry(batch), batch)
    carry, second = model(carry, batch)
    assert not torch.allclose(first["logits"], second["logits"])
    assert carry.steps.tolist() == [2, 2]
