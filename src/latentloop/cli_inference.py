"""Commands that use a trained checkpoint: solve, sweep, view (registered by cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from latentloop.errors import ConfigError
from latentloop.paths import check_output_file, ensure_output_file


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
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a run folder or checkpoint folder (repeat it, with --ensemble, for an ensemble)")
    p.add_argument("--steps", type=int, help="maximum supervision steps (default: the model's N_sup)")
    p.add_argument("--no-halt", action="store_true", help="always run every step (the official evaluation)")
    p.add_argument("--halt-threshold", type=float, default=0.5, help="halt when sigmoid(q_halt) exceeds this")
    p.add_argument("--trace", help="write the answer after every step as FILE.png or FILE.gif (first puzzle)")
    p.add_argument("--trace-recursions", action="store_true", help="trace every recursion, not only every step")
    p.add_argument("--tta", type=int, default=1, metavar="K",
                   help="run every puzzle under K of its task's transforms and let the answers vote (default 1)")
    p.add_argument("--tta-seed", type=int, default=0, help="seed that draws the --tta transforms (default 0)")
    p.add_argument("--ensemble", choices=["vote", "halt-first"],
                   help="with several --checkpoint: the models' answers vote, or the first to halt answers")
    p.add_argument("--out", help="write the answers, one per line, to this file (ARC: the two attempts per test "
                                 "input as a Kaggle submission JSON)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--task", help="the checkpoint's task, for checkpoints and datasets that do not record it")
    p.add_argument("--task-id", help="ARC: the task's id in the training data (default: the file name); in a file of "
                                     "several tasks (a dataset's test_puzzles.json) the one to solve")
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

    p = sub.add_parser("sweep", help="accuracy against test-time compute: steps, T and n, halting, TTA, trajectories, ensembles",
                       description="Evaluate a checkpoint with several numbers of supervision steps (and T, n, "
                                   "per-puzzle halting, test-time augmentation voting, noisy trajectories and an "
                                   "ensemble) and write a table and a PNG of accuracy against compute.")
    p.add_argument("checkpoint")
    p.add_argument("--steps", default="1,2,4,8,16", help="comma-separated step counts (default 1,2,4,8,16)")
    p.add_argument("--T", help="comma-separated T values to try (default: the trained T)")
    p.add_argument("--n", help="comma-separated n values to try (default: the trained n)")
    p.add_argument("--halt", default="0.5,0.9", help="halting thresholds to compare (default 0.5,0.9; '' for none)")
    p.add_argument("--tta", default="", help="comma-separated TTA transform counts to compare, e.g. 2,4,8,16,32 "
                                              "(voting, at the trained N_sup steps; default none)")
    p.add_argument("--trajectories", default="", help="comma-separated numbers of noisy trajectories to compare")
    p.add_argument("--ensemble", nargs="+", default=[], metavar="CHECKPOINT",
                   help="further checkpoints of the same task: adds rows for the ensemble's vote and halt-first")
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
    p.add_argument("--task", help="the puzzles' task, for data that does not record it")


def cmd_solve(args) -> None:
    from latentloop.api import load_ensemble
    from latentloop.evaluation.voting import tta_count
    from latentloop.tasks import Task, task_of_config
    from latentloop.training.checkpoint import load_checkpoint

    for path in (args.out, args.trace, args.png):
        if path:
            check_output_file(path)  # before solving, not after it
    first, *others = args.checkpoint
    if others and not args.ensemble:
        raise ConfigError("several --checkpoint answer together only as an ensemble: add --ensemble vote or "
                          "--ensemble halt-first")
    model, cfg = load_checkpoint(first, data=args.data)
    task = task_of_config(cfg, args.data, args.task)
    if (others or args.tta != 1) and type(task).solve_command is not Task.solve_command:
        raise ConfigError(f"task {task.name!r} answers with its own solve (it votes over its own augmented copies), "
                          f"which takes one checkpoint and no --tta")
    args.augmentations = tta_count(args.tta, task, "--tta", args.tta_seed)
    args.ensemble_models = load_ensemble(others, cfg, task, next(model.parameters()).device, args.data)
    args.checkpoint = first
    task.solve_command(args, model, cfg)


def cmd_sweep(args) -> None:
    from latentloop.api import load_ensemble, load_eval_data, task_or_none
    from latentloop.evaluation.voting import tta_count
    from latentloop.evaluation.sweep import format_table, plot_sweep, rows_as_dicts, sweep
    from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint

    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint).parent.parent / "sweep.png"
    for path in (out, out.with_suffix(".json"), out.with_suffix(".md")):
        check_output_file(path)  # before the sweep, not after it
    model, cfg = load_checkpoint(args.checkpoint)
    split, meta, data_path = load_eval_data(cfg, args.data)
    task = task_or_none(cfg, data_path if args.data else None)
    tta = [tta_count(k, task, "--tta") for k in (_int_list(args.tta, "--tta") if args.tta else [])]
    ensemble = load_ensemble(args.ensemble, cfg, task, next(model.parameters()).device, args.data)
    thresholds = [float(v) for v in args.halt.split(",") if v.strip()]
    rows = sweep(model, split, meta, _int_list(args.steps, "--steps"),
                 T_list=_int_list(args.T, "--T") if args.T else None,
                 n_list=_int_list(args.n, "--n") if args.n else None, halt_thresholds=thresholds,
                 batch_size=args.batch_size, max_examples=args.max_examples, loss=cfg.train.loss,
                 tta=[t for t in tta if t], ensemble=ensemble,
                 trajectories=_int_list(args.trajectories, "--trajectories") if args.trajectories else [])
    table = format_table(rows)
    print(f"{cfg.name} (trained with T={cfg.model.T}, n={cfg.model.n}, N_sup={cfg.model.N_sup}) on {data_path}:")
    print(table)
    plot_sweep(rows, out, title=f"{cfg.name}: test-time compute")
    ensure_output_file(out.with_suffix(".json")).write_text(json.dumps(rows_as_dicts(rows), indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out}, {out.with_suffix('.json')} and {out.with_suffix('.md')}")


def cmd_view(args) -> None:
    from latentloop.inspection.viewer import write_viewer

    print(f"wrote {write_viewer(args.source, args.out, limit=args.limit, task=args.task or '')}; open it in a browser")


COMMANDS = {"solve": cmd_solve, "sweep": cmd_sweep, "view": cmd_view}
