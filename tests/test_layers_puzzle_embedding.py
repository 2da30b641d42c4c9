"""PuzzleEmbedding keeps its table out of parameters() and routes training gradients to a per-batch leaf copy;
PuzzleEmbeddingSignSGD updates only the touched rows, by the sign of their gradient summed over every rank."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from latentloop.layers.puzzle_embedding import PuzzleEmbedding, PuzzleEmbeddingSignSGD


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


def _sign_sgd_step(weights: torch.Tensor, ids: torch.Tensor, upstream: torch.Tensor, lr: float,
                   weight_decay: float) -> torch.Tensor:
    """One training forward/backward/step of a PuzzleEmbedding; returns the updated table."""
    emb = PuzzleEmbedding(*weights.shape)
    emb.weights.copy_(weights)
    opt = PuzzleEmbeddingSignSGD(emb, lr=lr, weight_decay=weight_decay)
    (emb(ids) * upstream).sum().backward()
    opt.step()
    return emb.weights.clone()


def test_sign_sgd_hand_computed() -> None:
    weights = torch.tensor([[1.0, 2.0], [1.0, 2.0], [5.0, 5.0], [-1.0, 4.0], [7.0, 7.0]])
    emb = PuzzleEmbedding(5, 2)
    emb.weights.copy_(weights)
    opt = PuzzleEmbeddingSignSGD(emb, lr=0.5, weight_decay=0.5)
    opt.param_groups[0]["lr"] = 0.1  # the schedule sets the rate each step
    ids = torch.tensor([1, 3, 1])
    upstream = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-3.0, 1.0]])
    (emb(ids) * upstream).sum().backward()
    opt.step()
    # id 1: summed grad [-2, -1] -> sign [-1, -1]; id 3: [0.5, 0] -> [1, 0]; decay factor 1 - 0.1 * 0.5 = 0.95.
    expected = weights.clone()
    expected[1] = torch.tensor([0.95 + 0.1, 1.9 + 0.1])
    expected[3] = torch.tensor([-0.95 - 0.1, 3.8])
    assert torch.allclose(emb.weights, expected, atol=1e-6, rtol=0)
    assert torch.equal(emb.weights[[0, 2, 4]], weights[[0, 2, 4]])  # untouched rows are not decayed
    # Signs taken per occurrence would cancel to [0, 0] for id 1 and leave it merely decayed.
    assert not torch.allclose(emb.weights[1], weights[1] * 0.95)

    after = emb.weights.clone()
    opt.step()  # no forward since the last step: nothing happens
    assert torch.equal(emb.weights, after)

    emb(torch.tensor([0]))[0, 0].backward()
    opt.zero_grad()
    opt.step()
    assert torch.equal(emb.weights, after)
    assert list(opt.state_dict()["state"]) == []


def _distributed_worker(rank: int, world_size: int, init_file: str, out_dir: str, weights: torch.Tensor,
                        ids: torch.Tensor, upstream: torch.Tensor) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        local = slice(rank * len(ids) // world_size, (rank + 1) * len(ids) // world_size)
        updated = _sign_sgd_step(weights, ids[local], upstream[local], lr=0.1, weight_decay=0.5)
        torch.save(updated, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # gloo aborts a process that tears down its connections while a peer still uses them
    finally:
        dist.destroy_process_group()


def test_sign_sgd_distributed_equals_single_process_on_concatenated_batch(tmp_path: Path) -> None:
    weights = torch.arange(12.0).view(6, 2) / 4 - 1
    # id 3 appears on both ranks with opposite signs: only the gathered sum gives sign [-1, 1].
    ids = torch.tensor([1, 3, 1, 3, 4, 0])
    upstream = torch.tensor([[1.0, -2.0], [0.5, 1.0], [-3.0, 1.0], [-2.0, -0.25], [1.0, 1.0], [0.0, -1.0]])
    expected = _sign_sgd_step(weights, ids, upstream, lr=0.1, weight_decay=0.5)
    rank0_alone = _sign_sgd_step(weights, ids[:3], upstream[:3], lr=0.1, weight_decay=0.5)
    assert not torch.equal(expected[3], rank0_alone[3])

    context = mp.start_processes(
        _distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path), weights, ids, upstream),
        nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("distributed sign-SGD workers did not finish")
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt"), expected)


def test_optimizer_state_dicts_restore_hyperparameters() -> None:
    emb = PuzzleEmbedding(3, 2)
    opt = PuzzleEmbeddingSignSGD(emb, lr=0.2, weight_decay=0.3)
    other = PuzzleEmbeddingSignSGD(PuzzleEmbedding(3, 2))
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert other.param_groups[0]["lr"] == 0.2 and other.param_groups[0]["weight_decay"] == 0.3
