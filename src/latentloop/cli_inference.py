"""Commands that use a trained checkpoint: solve, sweep, view (registered by cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from latentloop.errors import ConfigError, DataError


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
                                   "supervision steps used and the halting confidence. With an ARC checkpoint, "
                                   "PUZZLE is one ARC task JSON file: every augmentation of the task the model was "
                                   "trained on answers each test input, the answers vote, and the two best are "
                                   "printed (checked when the file has the output) and drawn beside the demo pairs.")
    p.add_argument("puzzle", help="a puzzle string or a file (ARC: a task .json file)")
    p.add_argument("--checkpoint", required=True, help="a run folder or checkpoint folder")
    p.add_argument("--steps", type=int, help="maximum supervision steps (default: the model's N_sup)")
    p.add_argument("--no-halt", action="store_true", help="always run every step (the official evaluation)")
    p.add_argument("--halt-threshold", type=float, default=0.5, help="halt when sigmoid(q_halt) exceeds this")
    p.add_argument("--trace", help="write the answer after every step as FILE.png or FILE.gif (first puzzle)")
    p.add_argument("--trace-recursions", action="store_true", help="trace every recursion, not only every step")
    p.add_argument("--out", help="write the answers, one per line, to this file (ARC: the two attempts per test "
                                 "input as a Kaggle submission JSON)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--task-id", help="ARC: the task's id in the training data (default: the file name)")
    p.add_argument("--data", help="the dataset the checkpoint was trained on (default: its data_path); ARC reads its "
                                  "identifiers.json, an official checkpoint file its sizes")
    p.add_argument("--png", help="ARC: where to draw the task and the attempts (default: TASK_ID.png, or beside "
                                 "--out)")
    p.add_argument("--colourings", type=int,
                   help="ARC, a task the checkpoint was not trained on: colourings per symmetry that vote "
                        "(default 4: 8 x 4 copies)")
    p.add_argument("--adapt-steps", type=int, default=0,
                   help="ARC, a task the checkpoint was not trained on: fit fresh embedding rows on its demo pairs "
                        "for this many passes, network frozen (default 0: vote with the blank embedding)")

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

    model, cfg = load_checkpoint(args.checkpoint, data=args.data)
    task = task_for_model(cfg.model)
    if task.name == "arc":
        _solve_arc(args, model, cfg, task)
        return
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


def _solve_arc(args, model, cfg, task) -> None:
    """Vote over the task's trained augmentations (or blank-embedding copies for an unseen task), print and draw."""
    from latentloop.data.format import IDENTIFIERS_FILE, read_identifiers
    from latentloop.evaluation.arc import ATTEMPTS
    from latentloop.evaluation.solve import (BLANK_COLOUR_VARIANTS, adapt_embedding, blank_variants, known_variants,
                                             solve_arc)
    from latentloop.inspection.arc_plot import plot_arc_rows

    if args.trace:
        raise ConfigError("--trace draws Sudoku and maze answers; an ARC task is drawn with its attempts (--png)")
    arc = task.read(args.puzzle, args.task_id)
    data = Path(args.data or cfg.train.data_path or ".")
    if not (data / IDENTIFIERS_FILE).is_file():
        raise DataError(f"{data / IDENTIFIERS_FILE} not found: pass --data with the ARC dataset this checkpoint was "
                        f"trained on (its puzzle identifiers say which embedding rows belong to which task)")
    names = read_identifiers(data)
    table = model.inner.puzzle_emb
    if table is not None and len(names) > table.num_embeddings:
        raise DataError(f"{data / IDENTIFIERS_FILE} names {len(names):,} identifiers but the checkpoint's puzzle "
                        f"embedding has {table.num_embeddings:,} rows: a different dataset")
    colourings = BLANK_COLOUR_VARIANTS if args.colourings is None else args.colourings
    if args.adapt_steps < 0 or colourings < 1:
        raise ConfigError(f"--adapt-steps must be 0 or more and --colourings 1 or more, got {args.adapt_steps} and "
                          f"{colourings}")
    variants = known_variants(arc.task_id, names)
    copies = f"8 symmetries x {colourings} colouring{'s' if colourings > 1 else ''}"
    if variants:
        print(f"task {arc.task_id}: {len(variants):,} trained augmentation(s) vote on each test input")
    elif args.adapt_steps:
        fresh = [v for _, v in blank_variants(colourings)]
        print(f"task {arc.task_id} is not in {data / IDENTIFIERS_FILE}: fitting {len(fresh)} fresh embedding rows "
              f"({copies}) on its {len(arc.demos)} demo pair(s) for {args.adapt_steps} pass(es), network frozen")
        variants = adapt_embedding(model, arc, fresh, args.adapt_steps, loss=cfg.train.loss,
                                   lr=cfg.train.puzzle_emb_lr, weight_decay=cfg.train.puzzle_emb_weight_decay,
                                   batch_size=args.batch_size)
    else:
        variants = blank_variants(colourings)
        print(f"task {arc.task_id} is not in {data / IDENTIFIERS_FILE}: no embedding row was trained for it, so "
              f"{len(variants)} copies ({copies}) vote with the blank embedding; expect weak answers "
              f"(--adapt-steps N fits rows for it)")
    answers = solve_arc(model, arc, variants, steps=args.steps, halt_early=not args.no_halt,
                        batch_size=args.batch_size, threshold=args.halt_threshold)
    rows = [[(f"demo {i + 1} input", x), (f"demo {i + 1} output", y)] for i, (x, y) in enumerate(arc.demos)]
    for number, answer in enumerate(answers, 1):
        shown = [c for c in answer.candidates if c.grid.size][:ATTEMPTS]
        print(f"test input {number} of {len(answers)}: {len(answer.candidates)} distinct answer(s) from "
              f"{answer.copies} copies")
        for attempt, grid in enumerate(answer.attempts, 1):
            source = (f"{shown[attempt - 1].votes} vote(s), mean halt confidence {shown[attempt - 1].mean_halt:.1%}"
                      if attempt <= len(shown) else "repeated" if shown else "no readable answer: the test input")
            print(f"attempt {attempt} ({source}):")
            print("\n".join("".join(map(str, row)) for row in grid.tolist()))
        verdict = {None: "no known output in the file", True: "right: an attempt matches the known output",
                   False: "wrong: neither attempt matches the known output"}[answer.correct]
        print(verdict)
        rows.append([(f"test {number} input", answer.test.input),
                     *((f"attempt {a}", g) for a, g in enumerate(answer.attempts, 1)),
                     *([("expected", answer.test.output)] if answer.test.output is not None else [])])
    if args.out:
        submission = {arc.task_id: [{f"attempt_{a}": g.tolist() for a, g in enumerate(answer.attempts, 1)}
                                    for answer in answers]}
        Path(args.out).write_text(json.dumps(submission))
        print(f"wrote the attempts to {args.out} (Kaggle submission format)")
    png = Path(args.png) if args.png else Path(args.out).with_suffix(".png") if args.out else Path(f"{arc.task_id}.png")
    print(f"wrote {plot_arc_rows(rows, png, title=f'{arc.task_id}: demo pairs, test inputs and attempts')}")


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
