"""PuzzleEmbedding keeps its table out of parameters() and routes training gradients to a per-batch leaf copy."""

from __future__ import annotations

import torch

from latentloop.layers.puzzle_embedding import PuzzleEmbedding


def test_table_is_a_persistent_buffer_not_a_parameter() -> None:
    emb = PuzzleEmbedding(7, 4)
    assert list(emb.parameters()) == []
    assert torch.equal(emb.weights, torch.zeros(7, 4))
    assert emb.weights.dtype == torch.float32
    emb(torch.tensor([1, 2]))  # creates local_weights / local_ids
    assert set(emb.state_dict()) == {"weights"}
    assert emb.memory_bytes() == 7 * 4 * 4


def test_nonzero_init_std() -> None:
    torch.manual_seed(0)
    emb = PuzzleEmbedding(400, 50, init_std=0.5)
    assert abs(emb.weights.std().item() - 0.5) < 0.02


def test_training_gradient_lands_on_local_weights() -> None:
    emb = PuzzleEmbedding(5, 3)
    emb.weights.copy_(torch.arange(15.0).view(5, 3))
    ids = torch.tensor([4, 0, 4], dtype=torch.int32)
    out = emb(ids)
    assert out is emb.local_weights and out.is_leaf and out.requires_grad
    assert torch.equal(out, emb.weights[[4, 0, 4]])
    assert emb.local_ids is not None and emb.local_ids.dtype == torch.long
    assert torch.equal(emb.local_ids, torch.tensor([4, 0, 4]))
    upstream = torch.randn(3, 3)
    (out.to(torch.bfloat16).float() * upstream).sum().backward()
    assert emb.local_weights.grad is not None
    assert torch.allclose(emb.local_weights.grad, upstream.bfloat16().float(), atol=1e-2)
    assert emb.weights.grad is None
    # The copy is independent: editing it does not touch the table.
    with torch.no_grad():
        out.add_(1.0)
    assert torch.equal(emb.weights, torch.arange(15.0).view(5, 3))


def test_batch_size_is_free() -> None:
    emb = PuzzleEmbedding(5, 2)
    assert emb(torch.tensor([1])).shape == (1, 2)
    assert emb(torch.tensor([1, 2, 3, 4])).shape == (4, 2)


def test_eval_and_no_grad_paths_index_the_table() -> None:
    emb = PuzzleEmbedding(5, 2)
    emb.weights.copy_(torch.arange(10.0).view(5, 2))
    ids = torch.tensor([3, 1])
    with torch.no_grad():
        out = emb(ids)
    assert torch.equal(out, emb.weights[ids]) and not out.requires_grad
    assert emb.local_weights is None and emb.local_ids is None
    emb.eval()
    out = emb(ids)
    assert torch.equal(out, emb.weights[ids]) and not out.requires_grad
    assert emb.local_weights is None
