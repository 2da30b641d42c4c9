"""Solve a user's own puzzles with a trained checkpoint: read them in their task's notation, answer, check, report.

The task (`latentloop.tasks`, recorded with the checkpoint) reads, encodes, decodes, checks and draws the puzzles;
this module runs the model on them. Tasks whose puzzles are answered differently (ARC votes over augmented copies)
override `Task.solve_command`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from latentloop.evaluation.predict import predict
from latentloop.paths import ensure_output_file


@dataclass
class Solution:
    puzzle: np.ndarray
    answer: np.ndarray
    valid: bool | None
    steps: int
    halt_probability: float


def solve_puzzles(model, task, puzzles: list[Any], steps: int | None = None, halt_early: bool = True,
                  batch_size: int = 256, progress: bool = False, threshold: float = 0.5) -> tuple[list[Solution], float]:
    """Answer every puzzle; returns the solutions and the puzzles per second."""
    tokens = task.encode(puzzles)
    start = time.perf_counter()
    results: list[Solution] = []
    bar = tqdm(total=len(puzzles), unit="puzzle", desc="solve", disable=not progress)
    for lo in range(0, len(puzzles), batch_size):
        pred = predict(model, tokens[lo:lo + batch_size], steps=steps, halt_early=halt_early, batch_size=batch_size,
                       threshold=threshold)
        answers = task.decode(pred.tokens)
        for i, answer in enumerate(answers):
            puzzle = puzzles[lo + i]
            results.append(Solution(puzzle, answer, task.check(puzzle, answer), int(pred.steps[i]),
                                    float(pred.halt_probability[i])))
        bar.update(len(answers))
    bar.close()
    return results, len(puzzles) / max(time.perf_counter() - start, 1e-9)


def solve_command(task, args, model, cfg) -> None:
    """`latentloop solve` for a task that answers each puzzle once: print (or count) the answers, check them,
    write them one per line (--out) and draw the first puzzle's step-by-step trace (--trace)."""
    from latentloop.inspection.trace import record_trace, render_trace

    puzzles = task.read(args.puzzle)
    many = len(puzzles) > 1
    results, rate = solve_puzzles(model, task, puzzles, steps=args.steps, halt_early=not args.no_halt,
                                  batch_size=args.batch_size, progress=many, threshold=args.halt_threshold)
    if not many:
        r = results[0]
        print(task.format(r.answer))
        print(f"{task.verdicts[bool(r.valid)]}; {r.steps} supervision step(s), halt confidence "
              f"{r.halt_probability:.1%}")
    else:
        valid = sum(bool(r.valid) for r in results)
        mean_steps = sum(r.steps for r in results) / len(results)
        print(f"solved {valid:,} of {len(results):,} puzzles validly ({valid / len(results):.1%}); mean "
              f"{mean_steps:.2f} supervision steps; {rate:,.0f} puzzles/s")
    if args.out:
        ensure_output_file(args.out).write_text("".join(task.one_line(r.answer) + "\n" for r in results))
        print(f"wrote {len(results)} answers to {args.out}")
    if args.trace:
        tokens = task.encode(puzzles[:1])[0]
        frames = record_trace(model, tokens, steps=args.steps, per_recursion=args.trace_recursions)
        path = render_trace(frames, tokens, task.style(), args.trace, is_given=task.givens(puzzles[0]),
                            solution=task.reference(puzzles[0]),
                            title=f"{cfg.name}: the answer y after each step (yellow: changed, red: wrong)")
        print(f"wrote the trace to {path}")
