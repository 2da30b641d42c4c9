"""Solve a user's own puzzles with a trained checkpoint: read them in their task's notation, answer, check, report.

The task (`latentloop.tasks`, recorded with the checkpoint) reads, encodes, decodes, checks and draws the puzzles;
this module runs the model on them. Tasks whose puzzles are answered differently (ARC votes over augmented copies)
override `Task.solve_command`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from latentloop.evaluation.evaluate import format_rate, row_predictor
from latentloop.evaluation.predict import predict
from latentloop.evaluation.voting import combine, run_copies
from latentloop.paths import ensure_output_file
from latentloop.tasks.augmentation import Augmentation


@dataclass
class Solution:
    puzzle: np.ndarray
    answer: np.ndarray
    valid: bool | None
    steps: int
    halt_probability: float


def solve_puzzles(model, task, puzzles: list[Any], steps: int | None = None, halt_early: bool = True,
                  batch_size: int = 256, progress: bool = False, threshold: float = 0.5,
                  augmentations: Sequence[Augmentation] = (), ensemble: Sequence[Any] = (),
                  combine_mode: str = "vote") -> tuple[list[Solution], float]:
    """Answer every puzzle; returns the solutions and the puzzles per second. With `augmentations` (TTA) or further
    models in `ensemble`, each puzzle runs as several copies whose answers are combined (evaluation/voting.py);
    a solution's steps are then the mean over its copies."""
    tokens = task.encode(puzzles)
    start = time.perf_counter()
    results: list[Solution] = []
    models = [model, *ensemble]
    copies = len(models) * max(1, len(augmentations))
    predictors = [row_predictor(m, steps or model.N_sup, batch_size, halt_early, threshold) for m in models]
    bar = tqdm(total=len(puzzles), unit="puzzle", desc="solve", disable=not progress)
    for lo in range(0, len(puzzles), max(1, batch_size // copies)):
        rows = tokens[lo:lo + max(1, batch_size // copies)]
        if copies > 1:
            pred, _ = combine(run_copies(predictors, rows, np.zeros(len(rows), dtype=np.int64), augmentations),
                              combine_mode)
        else:
            pred = predict(model, rows, steps=steps, halt_early=halt_early, batch_size=batch_size,
                           threshold=threshold)
        answers = task.decode(pred.tokens)
        for i, answer in enumerate(answers):
            puzzle = puzzles[lo + i]
            results.append(Solution(puzzle, answer, task.check(puzzle, answer), round(pred.steps[i] / copies),
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
                                  batch_size=args.batch_size, progress=many, threshold=args.halt_threshold,
                                  augmentations=args.augmentations, ensemble=args.ensemble_models,
                                  combine_mode=args.ensemble or "vote")
    if not many:
        r = results[0]
        print(task.format(r.answer))
        print(f"{task.verdicts[bool(r.valid)]}; {r.steps} supervision step(s), halt confidence "
              f"{r.halt_probability:.1%}")
    else:
        valid = sum(bool(r.valid) for r in results)
        mean_steps = sum(r.steps for r in results) / len(results)
        print(f"solved {valid:,} of {len(results):,} puzzles validly ({valid / len(results):.1%}); mean "
              f"{mean_steps:.2f} supervision steps; {format_rate(rate)} puzzles/s")
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
