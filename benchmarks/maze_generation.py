#!/usr/bin/env python
"""Speed of the Maze-Hard generator: single-core throughput and acceptance rate, then the default build.

The single-core rows run seeded candidate chunks directly in this process (so the acceptance rate is exact: accepted
mazes / candidates drawn). The build row times `latentloop data maze` end to end (generation with the process pool,
labelling, dedupe, writing the official layout and the CSVs) for the given worker count.

    python benchmarks/maze_generation.py                        # 30x30, path > 110: 16 chunks, then 1000 + 1000
    python benchmarks/maze_generation.py --chunks 4 --num-train 100 --num-test 100
    python benchmarks/maze_generation.py --size 12 --min-path 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from latentloop.data import maze


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=30)
    parser.add_argument("--min-path", type=int, default=110)
    parser.add_argument("--chunks", type=int, default=16, help=f"single-core chunks of {maze.CHUNK} candidates")
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    start = time.perf_counter()
    accepted = sum(len(maze._generate_chunk(args.size, args.min_path, (0.3, 0.5), args.seed, c))
                   for c in range(args.chunks))
    seconds = time.perf_counter() - start
    candidates = args.chunks * maze.CHUNK
    rows.append(("chunks, 1 process", 1, candidates, accepted, seconds))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = maze.build_generated(out, args.num_train, args.num_test, args.size, args.min_path, args.seed,
                                       workers=args.workers)
        seconds = time.perf_counter() - start
    rows.append((f"build {args.num_train} + {args.num_test}", args.workers, None,
                 summary.train_mazes + summary.test_puzzles, seconds))

    print(f"{args.size}x{args.size} mazes, shortest path > {args.min_path} moves, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| run | workers | candidates | mazes | seconds | mazes/s | acceptance |")
    print("|---|---|---|---|---|---|---|")
    for name, workers, cand, mazes, secs in rows:
        rate = f"{mazes / cand:.3%}" if cand else ""
        print(f"| {name} | {workers} | {cand or ''} | {mazes} | {secs:.1f} | {mazes / secs:.1f} | {rate} |")
    print(f"test split: mean shortest path {summary.mean_test_rating:.1f} moves, "
          f"{summary.test_several_shortest:.1%} with more than one shortest path")


if __name__ == "__main__":
    main()
