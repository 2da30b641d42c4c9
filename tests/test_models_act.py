import torch

from latentloop.models import ModelConfig, build_model


def small_model(N_sup=4, exploration=0.0):
    cfg = ModelConfig(vocab_size=5, seq_len=6, hidden_size=16, num_heads=2, layers=1, T=1, n=1, N_sup=N_sup,
                      halt_exploration_prob=exploration, puzzle_emb_ndim=16, puzzle_emb_len=1,
                      forward_dtype="float32")
    torch.manual_seed(0)
    return build_model(cfg)


def batch(seed, size=4):
    g = torch.Generator().manual_seed(seed)
    return {"inputs": torch.randint(1, 5, (size, 6), generator=g), "labels": torch.randint(1, 5, (size, 6), generator=g),
            "puzzle_identifiers": torch.zeros(size, dtype=torch.long)}


def test_first_call_loads_the_whole_batch_and_counts_steps():
    model = small_model()
    b = batch(0)
    carry = model.initial_carry(b)
    assert carry.halted.all()
    carry, out = model(carry, b)
    assert torch.equal(carry.data["inputs"], b["inputs"])
    assert torch.equal(carry.steps, torch.ones(4, dtype=torch.int32))
    assert out["logits"].shape == (4, 6, 5)


def test_halted_rows_take_new_data_and_others_keep_theirs():
    model = small_model()
    b0, b1 = batch(0), batch(1)
    carry = model.initial_carry(b0)
    carry, _ = model(carry, b0)
    # With q_head bias -5 nobody halts by itself; force rows 1 and 3 to have halted.
    carry.halted = torch.tensor([False, True, False, True])
    kept_y = carry.state.y.clone()
    carry, _ = model(carry, b1)
    assert torch.equal(carry.data["inputs"][[0, 2]], b0["inputs"][[0, 2]])
    assert torch.equal(carry.data["inputs"][[1, 3]], b1["inputs"][[1, 3]])
    assert carry.steps.tolist() == [2, 1, 2, 1]
    assert not torch.equal(kept_y[0], model.inner.y_init.expand_as(kept_y[0]))


def test_reset_rows_restart_from_the_fixed_initial_state():
    model = small_model()
    inner = model.inner
    state = inner.initial_state(3, "cpu")
    state.y += 1.0
    reset = inner.reset(state, torch.tensor([True, False, True]))
    assert torch.equal(reset.y[0], inner.y_init.expand_as(reset.y[0]))
    assert torch.equal(reset.y[1], state.y[1])


def test_every_row_halts_at_N_sup_and_q_halt_positive_halts_in_training():
    model = small_model(N_sup=3)
    b = batch(0)
    carry = model.initial_carry(b)
    for _ in range(3):
        assert not carry.halted.all() or carry.steps.max() == 0
        carry, _ = model(carry, b)
    assert carry.halted.all()
    with torch.no_grad():
        model.inner.q_head.bias.fill_(5.0)   # q_halt > 0 everywhere: halt after one step
    carry, _ = model(model.initial_carry(b), b)
    assert carry.halted.all() and carry.steps.max() == 1


def test_eval_mode_never_halts_early():
    model = small_model(N_sup=3)
    with torch.no_grad():
        model.inner.q_head.bias.fill_(5.0)
    model.eval()
    b = batch(0)
    carry, _ = model(model.initial_carry(b), b)
    assert not carry.halted.any()


def test_exploration_forces_a_minimum_number_of_steps():
    model = small_model(N_sup=8, exploration=1.0)   # every row explores: min steps uniform in 2..8
    with torch.no_grad():
        model.inner.q_head.bias.fill_(5.0)
    b = batch(0, size=64)
    carry, _ = model(model.initial_carry(b), b, generator=torch.Generator().manual_seed(0))
    assert not carry.halted.any()                    # min steps >= 2 > 1
    model.exploration_prob = 0.5
    carry, _ = model(model.initial_carry(b), b, generator=torch.Generator().manual_seed(0))
    halted_share = carry.halted.float().mean().item()
    assert 0.3 < halted_share < 0.7                  # about half explore and must go on


def test_q_continue_target_uses_an_extra_no_grad_step():
    model = small_model(N_sup=3)
    model.q_continue_target = True
    b = batch(0)
    carry, out = model(model.initial_carry(b), b)
    assert "target_q_continue" in out and not out["target_q_continue"].requires_grad
    assert torch.all((out["target_q_continue"] > 0) & (out["target_q_continue"] < 1))
