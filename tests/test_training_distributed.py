"""Data-parallel training: 2 gloo ranks under torchrun follow the 1-process trajectory, gradient accumulation gives
the result of the full batch, and evaluation shards cover the test split exactly once.

Tolerance, for both equivalences: every logged loss within a relative 1e-5 and every weight within 1e-5. Each row's
forward pass is the same computation in every setup (same data, same ACT carry, same exploration draws), but the
per-rank and per-micro-batch partial sums of the loss and of the gradients are added in a different order, and float
addition is not associative. Measured on the runs below: losses agree to 3e-7 relative and weights to 9e-8.
The runs are short on purpose: halting is a threshold (q_halt > 0), and over hundreds of steps one row's decision can
flip on such a difference and the runs then part further (seen once at 2.6e-4 relative after 100 steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latentloop.config import apply_overrides, load_preset
from latentloop.data.format import DatasetMetadata, PuzzleSplit, write_split
from latentloop.data.sampler import test_batches
from latentloop.training.checkpoint import resolve_checkpoint
from latentloop.training.distributed import Distributed, example_range
from latentloop.training.loop import train
from test_training_loop import TINY

RTOL = 1e-5
WEIGHT_ATOL = 1e-5


def write_puzzle_dataset(root: Path, seed: int = 0) -> Path:
    """Groups of 2 puzzles with 1-3 examples each and 6 puzzle identifiers, so batches mix whole puzzles, cut
    puzzles and repeated identifiers (the sparse embedding update sums duplicates across ranks)."""
    rng = np.random.default_rng(seed)
    for name, groups in (("train", 48), ("test", 12)):
        sizes = rng.integers(1, 4, size=2 * groups)
        inputs = rng.integers(2, 6, size=(int(sizes.sum()), 8), dtype=np.uint8)
        labels = ((inputs - 2 + 1) % 4 + 2).astype(np.uint8)
        split = PuzzleSplit.from_counts(inputs=inputs, labels=labels, puzzle_identifiers=rng.integers(1, 7, 2 * groups),
                                        examples_per_puzzle=sizes, puzzles_per_group=[2] * groups)
        write_split(root / name, split, DatasetMetadata.for_split(split, vocab_size=6, num_puzzle_identifiers=7))
    return root


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "cpu-sudoku6", *TINY, f"data_path={data}", f"out_dir={out}", "data.task=", "threads=1",
            "epochs=4", "eval_interval=2", "log_interval=1", "puzzle_emb_lr=1e-2", *extra, "--no-progress"]


def losses(run: Path) -> list[tuple[int, str, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], k, v) for r in records for k, v in r.items() if k.endswith("_loss") and v == v]


def assert_same_trajectory(a: Path, b: Path) -> None:
    la, lb = losses(a), losses(b)
    assert [(s, k) for s, k, _ in la] == [(s, k) for s, k, _ in lb] and len(la) > 20
    for (step, key, x), (_, _, y) in zip(la, lb):
        assert y == pytest.approx(x, rel=RTOL), f"{key} at step {step}: {x} vs {y}"
    wa = load_file(resolve_checkpoint(a) / "raw.safetensors")
    wb = load_file(resolve_checkpoint(b) / "raw.safetensors")
    for key in wa:
        assert torch.allclose(wa[key].float(), wb[key].float(), rtol=0, atol=WEIGHT_ATOL), key
    assert wa["inner.encoder.puzzle_emb.weights"].abs().sum() > 0  # the puzzle embeddings were trained too


def test_two_gloo_ranks_follow_the_single_process_trajectory(tmp_path):
    data = write_puzzle_dataset(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    single = subprocess.Popen([sys.executable, "-m", "latentloop.cli", *run_args(data, tmp_path / "one")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "latentloop.cli"]
    double = subprocess.run([*launcher, *run_args(data, tmp_path / "two")], capture_output=True, text=True,
                            env=env, timeout=300)
    out, err = single.communicate(timeout=300)
    assert single.returncode == 0, err
    assert double.returncode == 0, double.stderr[-3000:]
    assert "x 2 ranks" in double.stdout and double.stdout.count("Held-out exact accuracy") == 1
    assert_same_trajectory(tmp_path / "one", tmp_path / "two")
    evals = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
              if "eval/exact_accuracy" in line] for run in ("one", "two")]
    assert len(evals[0]) == len(evals[1]) == 2
    for a, b in zip(*evals):
        assert a["eval/num_examples"] == b["eval/num_examples"]
        for key in ("eval/exact_accuracy", "eval/accuracy", "eval/lm_loss", "eval/steps"):
            assert b[key] == pytest.approx(a[key], rel=RTOL, abs=1e-7), key


def test_gradient_accumulation_gives_the_full_batch_result(tmp_path):
    data = write_puzzle_dataset(tmp_path / "data")
    for name, accum in (("full", 1), ("accum", 4)):
        overrides = run_args(data, tmp_path / name, f"grad_accum_steps={accum}")[2:-1]  # no command, no flag
        cfg = apply_overrides(load_preset("cpu-sudoku6"), overrides)
        train(cfg, progress=False, log=lambda *_: None)
    assert_same_trajectory(tmp_path / "full", tmp_path / "accum")


def test_evaluation_shards_cover_every_example_once(tmp_path):
    write_puzzle_dataset(tmp_path / "data")
    from latentloop.data.format import read_split

    split, meta = read_split(tmp_path / "data" / "test")
    whole = next(test_batches(split, meta, split.num_examples))
    for world_size in (1, 2, 3, 5, split.num_examples + 2):
        parts = []
        for rank in range(world_size):
            start, end = Distributed(rank=rank, world_size=world_size).rows(split.num_examples)
            shard = example_range(split, start, end)
            shard.validate()
            parts += [b for b in test_batches(shard, meta, 7)]
        for key in ("inputs", "labels", "puzzle_identifiers"):
            got = np.concatenate([b[key][:b["num_valid"]] for b in parts])
            assert np.array_equal(got, whole[key]), (world_size, key)
