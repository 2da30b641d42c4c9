"""Commands that use a trained checkpoint: solve, sweep, view (registered by cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from latentloop.errors import ConfigError


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name} takes comma-separated integers like 1,2,4, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{name} needs positive integers, got {text!r}")
    return values


def add_parsers(sub) -> None:
    p = sub.add_parser("solve", help="solve your own puzzles with a checkpoint",
                       description="Solve a puzzle given as a string (81 characters for 9x9, '.' or 0 for blanks), "
                                   "a grid in a text file, or a file of many puzzles (one per line, or a "
                                   "source,question,answer,rating CSV). Prints the answer, checks it, and reports the "
                                   "supervision steps used and the halting confidence.")
    p.add_argument("puzzle", help="a puzzle string or a file")
    p.add_argument("--checkpoint", required=True, help="a run folder or checkpoint folder")
    p.add_argument("--steps", type=int, help="maximum supervision steps (default: the model's N_sup)")
    p.add_argument("--no-halt", action="store_true", help="always run every step (the official evaluation)")
    p.add_argument("--halt-threshold", type=float, default=0.5, help="halt when sigmoid(q_halt) exceeds this")
    p.add_argument("--trace", help="write the answer after every step as FILE.png or FILE.gif (first puzzle)")
    p.add_argument("--trace-recursions", action="store_true", help="trace every recursion, not only every step")
    p.add_argument("--out", help="write the answers, one per line, to this file")
    p.add_argument("--batch-size", type=int, default=256)

    p = sub.add_parser("sweep", help="accuracy and speed against test-time steps, T and n",
                       description="Evaluate a checkpoint with several numbers of supervision steps (and T, n, "
                                   "and per-puzzle halting) and write a table and a PNG.")
    p.add_argument("checkpoint")
    p.add_argument("--steps", default="1,2,4,8,16", help="comma-separated step counts (default 1,2,4,8,16)")
    p.add_argument("--T", help="comma-separated T values to try (default: the trained T)")
    p.add_argument("--n", help="comma-separated n values to try (default: the trained n)")
    p.add_argument("--halt", default="0.5,0.9", help="halting thresholds to compare (default 0.5,0.9; '' for none)")
    p.add_argument("--data", help="dataset folder (default: the one the model was trained on)")
    p.add_argument("--max-examples", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("-o", "--out", help="output PNG (default CHECKPOINT_RUN/sweep.png); a .json and .md sit beside it")


    p = sub.add_parser("view", help="write a static HTML page to browse puzzles, labels and predictions",
                       description="Browse a dataset folder (its test split) or a predictions file written by "
                                   "`latentloop eval --save-predictions FILE.npz` in a browser; no server needed.")
    p.add_argument("source", help="dataset folder, split folder, or predictions .npz")
    p.add_argument("-o", "--out", required=True, help="output HTML file")
    p.add_argument("--limit", type=int, default=2000, help="at most this many puzzles (default 2000)")


def cmd_solve(args) -> None:
    from latentloop.evaluation.solve import solve_puzzles, task_for_model
    from latentloop.inspection.trace import record_trace, render_trace
    from latentloop.training.checkpoint import load_checkpoint

    model, cfg = load_checkpoint(args.checkpoint)
    task = task_for_model(cfg.model)
    puzzles = task.read(args.puzzle)
    many = len(puzzles) > 1
    halt = not args.no_halt
    results, rate = solve_puzzles(model, task, puzzles, steps=args.steps, halt_early=halt,
                                  batch_size=args.batch_size, progress=many, threshold=args.halt_threshold)
    if not many:
        r = results[0]
        verdict = task.verdicts[bool(r.valid)]
        print(task.format(r.answer))
        print(f"{verdict}; {r.steps} supervision step(s), halt confidence {r.halt_probability:.1%}")
    else:
        valid = sum(bool(r.valid) for r in results)
        mean_steps = sum(r.steps for r in results) / len(results)
        print(f"solved {valid:,} of {len(results):,} puzzles validly ({valid / len(results):.1%}); mean "
              f"{mean_steps:.2f} supervision steps; {rate:,.0f} puzzles/s")
    if args.out:
        Path(args.out).write_text("".join(task.one_line(r.answer) + "\n" for r in results))
        print(f"wrote {len(results)} answers to {args.out}")
    if args.trace:
        frames = record_trace(model, task.encode(puzzles[:1])[0], steps=args.steps,
                              per_recursion=args.trace_recursions)
        path = render_trace(frames, task.encode(puzzles[:1])[0], task.style(), args.trace,
                            is_given=task.givens(puzzles[0]), solution=task.reference(puzzles[0]),
                            title=f"{cfg.name}: the answer y after each step (yellow: changed, red: wrong)")
        print(f"wrote the trace to {path}")


def cmd_sweep(args) -> None:
    from latentloop.api import load_eval_data
    from latentloop.evaluation.sweep import format_table, plot_sweep, rows_as_dicts, sweep
    from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint

    model, cfg = load_checkpoint(args.checkpoint)
    split, meta, data_path = load_eval_data(cfg, args.data)
    thresholds = [float(v) for v in args.halt.split(",") if v.strip()]
    rows = sweep(model, split, meta, _int_list(args.steps, "--steps"),
                 T_list=_int_list(args.T, "--T") if args.T else None,
                 n_list=_int_list(args.n, "--n") if args.n else None, halt_thresholds=thresholds,
                 batch_size=args.batch_size, max_examples=args.max_examples, loss=cfg.train.loss)
    table = format_table(rows)
    print(f"{cfg.name} (trained with T={cfg.model.T}, n={cfg.model.n}, N_sup={cfg.model.N_sup}) on {data_path}:")
    print(table)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint).parent.parent / "sweep.png"
    plot_sweep(rows, out, title=f"{cfg.name}: test-time compute")
    out.with_suffix(".json").write_text(json.dumps(rows_as_dicts(rows), indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out}, {out.with_suffix('.json')} and {out.with_suffix('.md')}")


def cmd_view(args) -> None:
    from latentloop.inspection.viewer import write_viewer

    print(f"wrote {write_viewer(args.source, args.out, limit=args.limit)}; open it in a browser")


COMMANDS = {"solve": cmd_solve, "sweep": cmd_sweep, "view": cmd_view}
