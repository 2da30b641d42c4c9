#!/usr/bin/env python
"""What test-time augmentation voting costs: `evaluate` with K transforms against K times one plain pass.

The K copies of a puzzle share the model's batches (evaluation/voting.py), so the ideal cost is K times a plain
evaluation of the same puzzles; the rest is the transforms, the mapping back and the vote. Each K is timed in
interleaved rounds with K = 1 (the same model and puzzles, the same load from other processes), and the table
gives the median ratio time(K) / (K x time(1)): 1.00 means the copies cost exactly their passes.

The model is the preset's, freshly initialised (the cost of a pass does not depend on the weights), on generated
puzzles of its task.

    python benchmarks/tta_cost.py                                  # cpu-sudoku6, K = 2, 4, 8, 16, 32
    python benchmarks/tta_cost.py --preset cpu-maze --tta 2,4,8 --puzzles 128 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from latentloop.api import prepare_run
from latentloop.data.format import read_split
from latentloop.evaluation.evaluate import evaluate
from latentloop.evaluation.voting import tta_count
from latentloop.models import build_model
from latentloop.tasks import task_of_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-sudoku6")
    parser.add_argument("--tta", default="2,4,8,16,32", help="comma-separated transform counts")
    parser.add_argument("--puzzles", type=int, default=256, help="test puzzles evaluated per timing")
    parser.add_argument("--batch", type=int, default=512, help="rows per forward pass (copies included)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = [int(k) for k in args.tta.split(",") if k.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cfg = prepare_run(args.preset, [f"data_path={data}", f"data.num_train={args.puzzles}",
                                        f"data.num_test={args.puzzles}"], log=lambda _: None)
        split, meta = read_split(data / "test")
        cfg.model.vocab_size, cfg.model.seq_len = meta.vocab_size, meta.seq_len
        cfg.model.num_puzzle_identifiers = meta.num_puzzle_identifiers
        model = build_model(cfg.model).eval()
        task = task_of_dataset(data)
        transforms = {k: tta_count(k, task) for k in counts}

        def timed(k: int) -> tuple[float, float]:
            """Wall and process CPU seconds of one evaluation with k transforms (CPU time is the less noisy of
            the two when other processes share the cores: it does not count the time this one waits)."""
            wall, cpu = time.perf_counter(), time.process_time()
            evaluate(model, split, meta, args.batch, torch.device("cpu"), augmentations=transforms.get(k, []))
            return time.perf_counter() - wall, time.process_time() - cpu

        timed(1)   # warm-up
        plain: list[tuple[float, float]] = []
        seconds: dict[int, list[tuple[float, float]]] = {k: [] for k in counts}
        ratios: dict[int, list[tuple[float, float]]] = {k: [] for k in counts}
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for k in counts:
                one, many = timed(1), timed(k)
                plain.append(one)
                seconds[k].append(many)
                ratios[k].append((many[0] / (k * one[0]), many[1] / (k * one[1])))
    load = os.getloadavg()[0]
    print(f"{args.preset}: {split.num_examples:,} puzzles, batch {args.batch} rows, torch threads "
          f"{torch.get_num_threads()}, {args.rounds} interleaved rounds; load average {load_before:.2f} before, "
          f"{load:.2f} after")
    print(f"plain evaluation (K=1): median {statistics.median(w for w, _ in plain):.3f} s wall, "
          f"{statistics.median(c for _, c in plain):.3f} s CPU\n")
    print("| K | median wall s | K x plain wall s | time(K) / (K x time(1)), wall | same, CPU time |")
    print("|---|---|---|---|---|")
    one = statistics.median(w for w, _ in plain)
    for k in counts:
        print(f"| {k} | {statistics.median(w for w, _ in seconds[k]):.3f} | {k * one:.3f} | "
              f"{statistics.median(r for r, _ in ratios[k]):.2f} | {statistics.median(c for _, c in ratios[k]):.2f} |")


if __name__ == "__main__":
    main()
