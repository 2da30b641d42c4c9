"""EMA averages trainable parameters only and swaps its weights in and out without disturbing the raw ones."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from latentloop.layers.puzzle_embedding import PuzzleEmbedding
from latentloop.training.ema import EMA


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.ones(2))
        self.register_buffer("init_state", torch.full((3,), 2.0))
        self.puzzle = PuzzleEmbedding(6, 3)


def _perturb(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))


def test_tracks_parameters_only() -> None:
    ema = EMA(TinyModel())
    assert set(ema.shadow) == {"linear.weight", "linear.bias", "scale"}


def test_update_formula() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    rate = 0.9
    ema = EMA(model, rate=rate)
    expected = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    for seed in range(3):
        _perturb(model, seed)
        ema.update(model)
        for name, p in model.named_parameters():
            expected[name] = rate * expected[name] + (1 - rate) * p.detach().double()
    for name, shadow in ema.shadow.items():
        assert torch.allclose(shadow.double(), expected[name], atol=1e-6, rtol=0)
    # The shadows are copies, not views of the live parameters.
    assert not torch.equal(ema.shadow["scale"], model.scale.detach())


def test_swapped_in_restores_raw_weights_exactly() -> None:
    torch.manual_seed(1)
    model = TinyModel()
    ema = EMA(model, rate=0.5)
    _perturb(model, 0)
    ema.update(model)
    _perturb(model, 1)
    model.puzzle.weights.fill_(3.0)
    raw = copy.deepcopy(model.state_dict())
    with ema.swapped_in(model) as swapped:
        assert swapped is model
        for name, p in model.named_parameters():
            assert torch.equal(p, ema.shadow[name])
        assert torch.equal(model.puzzle.weights, raw["puzzle.weights"])
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, raw[name]), name
    with pytest.raises(RuntimeError), ema.swapped_in(model):
        raise RuntimeError("evaluation failed")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, raw[name]), name


def test_copy_to_and_state_dict_round_trip() -> None:
    torch.manual_seed(2)
    model = TinyModel()
    ema = EMA(model, rate=0.8)
    _perturb(model, 0)
    ema.update(model)
    saved = copy.deepcopy(ema.state_dict())

    restored = EMA(TinyModel(), rate=0.1)
    restored.load_state_dict(saved)
    assert restored.rate == 0.8
    for name in ema.shadow:
        assert torch.equal(restored.shadow[name], ema.shadow[name])

    target = TinyModel()
    restored.copy_to(target)
    for name, p in target.named_parameters():
        assert torch.equal(p, ema.shadow[name])

    with pytest.raises(KeyError):
        restored.load_state_dict({"rate": 0.8, "shadow": {"scale": torch.ones(2)}})
