#!/usr/bin/env python
"""Accuracy and puzzles/s of one checkpoint's evaluation under each precision setting, measured in one run.

bf16 is only a speed-up if the answers stay right, so this evaluates the same checkpoint on the same held-out puzzles
in fp32, with bf16 for the no-gradient recursions (model.no_grad_dtype) and with everything in bf16
(model.forward_dtype), whatever precision it was trained in, each with the official fixed N_sup steps and with per-puzzle halting (continuous
batching: a halted puzzle hands its row to the next one). The settings run interleaved over --rounds rounds and the
median puzzles/s is reported with its ratio to the first row.

    python benchmarks/profile_precision.py runs/cpu-sudoku6
    python benchmarks/profile_precision.py runs/cpu-sudoku6 --threshold 0.9 --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch

from latentloop.data.format import read_split
from latentloop.models import build_model
from latentloop.evaluation.evaluate import evaluate
from latentloop.training.checkpoint import load_checkpoint

SETTINGS = (("fp32", {"forward_dtype": "float32", "no_grad_dtype": ""}),
            ("no-grad recursions bf16", {"forward_dtype": "float32", "no_grad_dtype": "bfloat16"}),
            ("all bf16", {"forward_dtype": "bfloat16", "no_grad_dtype": ""}))


def with_precision(model, changes: dict[str, str]):
    """A copy of `model` whose config has `changes`, rebuilt so that embeddings take the new forward dtype."""
    cfg = copy.deepcopy(model.inner.cfg)
    for key, value in changes.items():
        setattr(cfg, key, value)
    copy_ = build_model(cfg)
    copy_.load_state_dict(model.state_dict())
    return copy_.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a run folder or checkpoint folder")
    parser.add_argument("--data", help="dataset folder (default: the one the model was trained on)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.9, help="halting threshold on sigmoid(q_halt)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, cfg = load_checkpoint(args.checkpoint)
    split, meta = read_split(Path(args.data or cfg.train.data_path) / "test")
    device = torch.device("cpu")
    modes = (("fixed", {}), ("halt", {"halt_early": True, "threshold": args.threshold}))
    runs = [(name, mode, with_precision(model, changes), options)
            for name, changes in SETTINGS for mode, options in modes]
    for _, _, variant, options in runs:  # warm up: first-call allocations and kernel selection
        evaluate(variant, split, meta, args.batch_size, device, loss=cfg.train.loss, max_examples=args.batch_size,
                 **options)
    results: dict[tuple[str, str], list] = {}
    for _ in range(args.rounds):
        for name, mode, variant, options in runs:
            result = evaluate(variant, split, meta, args.batch_size, device, loss=cfg.train.loss, **options)
            results.setdefault((name, mode), []).append(result)

    print(f"{args.checkpoint}: {split.num_examples} held-out puzzles, N_sup={cfg.model.N_sup}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds (median puzzles/s)")
    print("| precision | mode | exact acc | cells | mean steps | puzzles/s | x |")
    print("|---|---|---|---|---|---|---|")
    first = None
    for (name, mode), rs in results.items():
        rate = statistics.median(r.examples_per_second for r in rs)
        first = first or rate
        r = rs[-1]
        label = f"fixed {cfg.model.N_sup}" if mode == "fixed" else f"halt p>{args.threshold}"
        print(f"| {name} | {label} | {r.exact_accuracy:.1%} | {r.accuracy:.1%} | {r.steps:.2f} | {rate:,.0f} | "
              f"{rate / first:.2f} |")


if __name__ == "__main__":
    main()
