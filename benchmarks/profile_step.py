#!/usr/bin/env python
"""Where the time of one training step (and one evaluation step) goes: a torch.profiler table per phase and per op.

Measure before optimising: this runs the training step of benchmarks/throughput.py (ACT forward, act_loss, backward,
AdamATan2, sign-SGD, EMA) under `torch.profiler`, with each phase labelled, and prints

* the share of step time of each phase (forward split into its no-grad recursions and the one with gradient,
  loss, backward, the two optimizers, the EMA),
* the ops that take the most self time, and the same grouped into matmul / attention / element-wise / copy-and-cast
  / other, so it is clear whether a config is bound by matmul throughput or by overhead.

    python benchmarks/profile_step.py --config cpu-sudoku6
    python benchmarks/profile_step.py --config trm-sudoku-att --batch 64 --steps 1 --out docs/profiles/trm-att.txt
    python benchmarks/profile_step.py --config cpu-sudoku6 --set forward_dtype=bfloat16 compile=true
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections import defaultdict
from contextlib import redirect_stdout

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from latentloop.config import apply_overrides, load_preset
from latentloop.models.losses import act_loss
from throughput import PAPER_BATCH, Trainer, bench_config, build_model, is_paper_size, random_batch

PHASES = ("forward", "no-grad recursions", "loss", "backward", "optimizer", "sparse optimizer", "ema", "eval step")
CATEGORIES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "aten::_mm"),
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention"),
    "copy / cast": ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous", "aten::cat",
                    "aten::empty_like", "aten::index", "aten::where"),
}


def categorise(name: str) -> str:
    """Which kind of work an aten op is; element-wise is the default for the rest of aten."""
    for category, keys in CATEGORIES.items():
        if any(key in name for key in keys):
            return category
    return "element-wise / other aten" if name.startswith("aten::") else "other (python, compiled graphs)"


def profiled_step(trainer: Trainer, carry, batch: dict[str, torch.Tensor]):
    """The same work as Trainer.step, with every phase labelled for the profiler."""
    model = trainer.model
    with record_function("forward"):
        carry, outputs = model(carry, batch, generator=trainer.explore_rng)
    with record_function("loss"):
        loss, _ = act_loss(outputs, carry.data["labels"], carry.halted, carry.steps, trainer.loss_fn)
    with record_function("backward"):
        (loss / batch["inputs"].shape[0]).backward()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"loss became {loss.item()}")
    with record_function("optimizer"):
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
    with record_function("sparse optimizer"):
        if trainer.sparse_opt is not None:
            trainer.sparse_opt.step()
            trainer.sparse_opt.zero_grad()
    with record_function("ema"):
        trainer.ema.update(model)
    return carry


def label_no_grad_recursions(model) -> None:
    """Label the training step's no-grad work for the profiler: every network call made there while grad is off."""
    for module in (getattr(model.inner, name, None) for name in ("net", "net_y", "H_net", "L_net")):
        if module is None:
            continue
        original = module.forward

        def forward(*args, _original=original, **kwargs):
            if torch.is_grad_enabled() or not model.training:  # evaluation is all no-grad: labelled on its own
                return _original(*args, **kwargs)
            with record_function("no-grad recursions"):
                return _original(*args, **kwargs)

        module.forward = forward


def phase_table(events, steps: int) -> str:
    """Wall time per labelled phase, per step, and its share of the training step."""
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name in PHASES:
            totals[event.name] += event.cpu_time_total / 1000
    step_ms = sum(totals[p] for p in PHASES if p not in ("no-grad recursions", "eval step"))
    lines = ["| phase | ms per step | share of training step |", "|---|---|---|"]
    for phase in PHASES:
        if phase in totals:
            share = "" if phase == "eval step" else f"{100 * totals[phase] / step_ms:.1f}%"
            lines.append(f"| {phase} | {totals[phase] / steps:,.1f} | {share} |")
    lines.append(f"| training step (sum) | {step_ms / steps:,.1f} | 100% |")
    return "\n".join(lines)


def category_table(averages, steps: int) -> str:
    """Self CPU time grouped by kind of op, over training and evaluation together."""
    totals: dict[str, float] = defaultdict(float)
    for event in averages:
        if event.key in PHASES:
            continue
        totals[categorise(event.key)] += event.self_cpu_time_total / 1000
    everything = sum(totals.values())
    lines = ["| kind of op | self ms per step | share |", "|---|---|---|"]
    for category, ms in sorted(totals.items(), key=lambda item: -item[1]):
        lines.append(f"| {category} | {ms / steps:,.1f} | {100 * ms / everything:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="cpu-sudoku6", help="preset name or TOML file (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=0, help=f"batch (default {PAPER_BATCH} at paper size, else "
                                                             "the preset's global_batch_size)")
    parser.add_argument("--steps", type=int, default=0, help="profiled steps (default: 1 at paper size, else 10)")
    parser.add_argument("--warmup", type=int, default=2, help="unprofiled steps first (default: %(default)s)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. forward_dtype=bfloat16 compile=true threads=2")
    parser.add_argument("--rows", type=int, default=25, help="ops listed (default: %(default)s)")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)

    cfg = bench_config(apply_overrides(load_preset(args.config), args.set))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = torch.device("cpu")
    batch_size = args.batch or (PAPER_BATCH if is_paper_size(cfg) else cfg.train.global_batch_size)
    steps = args.steps or (1 if is_paper_size(cfg) else 10)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    trainer = Trainer(cfg, model, device)
    label_no_grad_recursions(model)
    if cfg.train.compile:
        model.inner.compile_networks()
    batch = random_batch(cfg, batch_size, device, torch.Generator().manual_seed(0))
    carry = model.initial_carry(batch)
    warmup_start = time.perf_counter()
    for _ in range(args.warmup):
        carry = profiled_step(trainer, carry, batch)
    warmup_seconds = time.perf_counter() - warmup_start
    state = model.inner.initial_state(batch_size, device)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        for _ in range(steps):
            carry = profiled_step(trainer, carry, batch)
        model.eval()
        with torch.no_grad():
            for _ in range(steps):
                with record_function("eval step"):
                    state, _ = model.inner(state, batch["inputs"], batch["puzzle_identifiers"])
        model.train()
    seconds = time.perf_counter() - start

    report = io.StringIO()
    with redirect_stdout(report):
        overrides = " ".join(args.set) or "none"
        print(f"# profile of {args.config}, batch {batch_size}, {steps} profiled training + eval step(s) after "
              f"{args.warmup} warmup, overrides: {overrides}")
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; warmup {warmup_seconds:.1f} s "
              f"(compilation included), {seconds:.1f} s under the profiler (which adds overhead per op)")
        print()
        print(phase_table(prof.events(), steps))
        print()
        averages = prof.key_averages()
        print(category_table(averages, steps))
        print()
        print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))
    sys.stdout.write(report.getvalue())
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(report.getvalue())


if __name__ == "__main__":
    main()
