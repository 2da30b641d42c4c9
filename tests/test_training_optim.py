"""AdamATan2 against the kernel's per-element formula, and the lr schedule."""

from __future__ import annotations

import io
import math

import pytest
import torch

from latentloop.training.optim import AdamATan2, lr_at

BETAS = (0.9, 0.95)


def reference_adam_atan2(initial: list[float], grads: list[list[float]], lrs: list[float],
                         weight_decay: float) -> list[float]:
    """The update of the official CUDA kernel written element by element in Python floats (double)."""
    beta1, beta2 = BETAS
    p = list(initial)
    m = [0.0] * len(p)
    v = [0.0] * len(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        for i in range(len(p)):
            p[i] *= 1 - lr * weight_decay
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] ** 2
            p[i] -= lr / (1 - beta1**t) * math.atan2(m[i], math.sqrt(v[i]) / math.sqrt(1 - beta2**t))
    return p


def _make_params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=dtype)) for shape in [(3, 4), (5,), ()]]


def _grads(params: list[torch.nn.Parameter], step: int) -> list[torch.Tensor]:
    """Deterministic per-step gradients, including exact zeros so atan2(0, 0) is exercised."""
    gen = torch.Generator().manual_seed(1000 + step)
    grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    grads[0][0, :2] = 0.0
    return grads


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("foreach", [True, False])
def test_adam_atan2_matches_reference_formula(dtype: torch.dtype, atol: float, foreach: bool) -> None:
    params = _make_params(dtype)
    initial = [p.detach().double().flatten().tolist() for p in params]
    lrs = [0.0, 0.05, 0.1, 0.02, 0.07]
    weight_decay = 0.5
    opt = AdamATan2(params, lr=lrs[0], betas=BETAS, weight_decay=weight_decay, foreach=foreach)
    all_grads = []
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        grads = _grads(params, step)
        all_grads.append(grads)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        if step == 0:  # lr = 0 on the first warmup step leaves the parameters untouched
            assert all(p.detach().double().flatten().tolist() == init for p, init in zip(params, initial))
    for k, p in enumerate(params):
        expected = reference_adam_atan2(initial[k], [g[k].double().flatten().tolist() for g in all_grads], lrs,
                                        weight_decay)
        assert torch.allclose(p.detach().double().flatten(), torch.tensor(expected, dtype=torch.float64),
                              atol=atol, rtol=0)
        assert opt.state[p]["step"] == len(lrs)


def test_adam_atan2_decay_applies_with_zero_gradient() -> None:
    p = torch.nn.Parameter(torch.tensor([2.0, -4.0]))
    opt = AdamATan2([p], lr=0.1, weight_decay=0.5)
    p.grad = torch.zeros(2)
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([2.0, -4.0]) * 0.95)


def test_adam_atan2_skips_params_without_grad_and_counts_steps_per_param() -> None:
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = AdamATan2([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and len(opt.state[b]) == 0
    b.grad = torch.ones(2)
    opt.step()
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1


def test_foreach_and_per_tensor_paths_are_identical() -> None:
    results = []
    for foreach in (True, False):
        params = _make_params(torch.float32, seed=3)
        opt = AdamATan2(params, lr=0.03, weight_decay=0.1, foreach=foreach)
        for step in range(4):
            for k, (p, g) in enumerate(zip(params, _grads(params, step))):
                p.grad = None if (step == 1 and k == 1) else g
            opt.step()
        results.append([p.detach().clone() for p in params])
    assert all(torch.equal(x, y) for x, y in zip(*results))


def _run_steps(params: list[torch.nn.Parameter], opt: AdamATan2, steps: range) -> None:
    for step in steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, 0.05, warmup_steps=2, total_steps=8, min_ratio=0.1)
        for p, g in zip(params, _grads(params, step)):
            p.grad = g
        opt.step()


def test_adam_atan2_state_dict_resume_is_bit_identical() -> None:
    params = _make_params(torch.float32, seed=5)
    opt = AdamATan2(params, weight_decay=1.0)
    _run_steps(params, opt, range(3))
    buffer = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buffer)
    _run_steps(params, opt, range(3, 7))

    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = [torch.nn.Parameter(t) for t in saved["params"]]
    resumed_opt = AdamATan2(resumed)
    resumed_opt.load_state_dict(saved["opt"])
    assert resumed_opt.param_groups[0]["weight_decay"] == 1.0
    _run_steps(resumed, resumed_opt, range(3, 7))
    assert all(torch.equal(x.detach(), y.detach()) for x, y in zip(params, resumed))
    for x, y in zip(params, resumed):
        assert opt.state[x]["step"] == resumed_opt.state[y]["step"] == 7
        assert torch.equal(opt.state[x]["exp_avg_sq"], resumed_opt.state[y]["exp_avg_sq"])


def test_lr_schedule() -> None:
    base = 1e-3
    assert lr_at(0, base, 100, 1000) == 0.0
    assert lr_at(50, base, 100, 1000) == pytest.approx(base / 2)
    assert lr_at(99, base, 100, 1000) == pytest.approx(base * 0.99)
    assert lr_at(100, base, 100, 1000, min_ratio=0.1) == pytest.approx(base)
    assert lr_at(550, base, 100, 1000, min_ratio=0.1) == pytest.approx(base * 0.55)
    assert lr_at(1000, base, 100, 1000, min_ratio=0.1) == pytest.approx(base * 0.1)
    # The official default keeps the rate constant after warmup.
    assert {lr_at(s, base, 100, 1000) for s in (100, 400, 999, 1000)} == {base}
    assert lr_at(5, base, 0, 10) == base
