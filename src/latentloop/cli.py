"""`latentloop` command line: a thin layer over the Python API. Every user error ends in one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
import time
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
    from latentloop.tasks import task_class, task_names

    p = sub.add_parser("data", help="build a dataset in the official on-disk layout",
                       description="Build datasets in the official layout (train/ and test/ with all__*.npy and "
                                   "dataset.json, which also names the task), readable by the official HRM/TRM code "
                                   "too. Tasks of your own join this list with --task-module FILE.py.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in task_names():
        try:
            cls = task_class(name)
        except LatentloopError as exc:  # a broken plugin breaks its own command only, and says why there
            broken = tasks.add_parser(name, help=f"(cannot be loaded: {exc})", add_help=False)
            broken.set_defaults(task_error=exc)   # main() then ignores its arguments and reports the error
            continue
        cls.add_data_arguments(tasks.add_parser(name, help=cls.summary, description=cls.summary))


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
                       description="Evaluate checkpoints (run folders or checkpoint folders), one after another. By "
                                   "default every puzzle runs N_sup supervision steps, the official protocol; "
                                   "--halt-early stops each puzzle when its halting head fires and reports the steps "
                                   "used. --tta K runs every puzzle under K of its task's transforms and lets the "
                                   "answers vote; --ensemble combines the listed checkpoints into one answer. On "
                                   "ARC, --arc-votes pooled also votes once over all their predictions.")
    p.add_argument("checkpoint", nargs="+", help="one or more run or checkpoint folders, official files, or hf:OWNER/REPO[@REV][/SUB] "
                        "(docs/hub.md)")
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
    p.add_argument("--tta", type=int, default=1, metavar="K",
                   help="test-time augmentation: run every puzzle under K of its task's transforms (the identity "
                        "first), map the answers back and let them vote (default 1: none)")
    p.add_argument("--tta-seed", type=int, default=0, help="seed that draws the --tta transforms (default 0)")
    p.add_argument("--ensemble", choices=["vote", "halt-first"],
                   help="evaluate the listed checkpoints as one ensemble: their answers vote, or the first model "
                        "whose halting head fires answers (the most confident when none does)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--config", help="all_config.yaml of an official HRM/TRM checkpoint file (default: beside it)")
    p.add_argument("--arc-tasks", metavar="PATH", help="ARC: test_puzzles.json or a folder of task files to score "
                                                        "against (default: the dataset's test_puzzles.json)")
    p.add_argument("--arc-out", metavar="DIR", help="ARC: where submission.json, candidates.json and scores.json go "
                                                     "(default: arc_<checkpoint> beside the checkpoint); with "
                                                     "several checkpoints, those of the pooled votes")
    p.add_argument("--arc-votes", choices=["per_eval", "pooled"], default="per_eval",
                   help="ARC: per_eval scores each checkpoint's votes alone; pooled also votes over every "
                        "checkpoint's predictions together, as the official evaluator does across a run's "
                        "evaluations (ARC/pooled_pass@K; files in arc_pooled_<last checkpoint>)")


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
    p.add_argument("target", help="preset name, .toml/.json config, run or checkpoint folder, official checkpoint, "
                                  "or hf:OWNER/REPO[@REV][/SUB]")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for a preset")
    p.add_argument("--data", help="dataset of an official RoPE checkpoint (its length is not in the weights)")


def _add_push(sub) -> None:
    p = sub.add_parser("push", help="publish a run to the Hugging Face Hub (weights, config, metrics, model card)",
                       description="Upload a run's checkpoint as model.safetensors + config.json, the dataset's "
                                   "metadata and identifiers, metrics.jsonl, curves.png and a generated README.md "
                                   "model card; anyone can then `latentloop eval hf:OWNER/REPO`. Needs "
                                   "`pip install 'latentloop[hub]'` and a Hub token (`hf auth login`).")
    p.add_argument("run_dir", help="the run folder (as `latentloop train` wrote it)")
    p.add_argument("repo", help="OWNER/REPO on the Hub (created if it does not exist)")
    p.add_argument("--checkpoint", help="a checkpoint under RUN_DIR/checkpoints/ (default: latest), e.g. best")
    p.add_argument("--dry-run", metavar="DIR", help="write the folder it would upload to DIR and upload nothing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentloop", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Recursive reasoning models (TRM, HRM): build data, train with deep supervision, evaluate.")
    parser.add_argument("--task-module", action="append", default=[], metavar="FILE.py",
                        help="a Python file or module that defines a task of your own (repeatable; also "
                             "task_module=FILE.py in a config, or $LATENTLOOP_TASK_MODULES)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_export(sub)
    _add_info(sub)
    _add_push(sub)
    p = sub.add_parser("presets", help="list the built-in presets")
    p.add_argument("name", nargs="?", help="show one preset's full configuration")
    cli_inference.add_parsers(sub)
    p = sub.add_parser("plot", help="draw a run's training curves as a PNG")
    p.add_argument("run_dir")
    p.add_argument("-o", "--out", help="output PNG (default RUN_DIR/curves.png)")
    return parser


def cmd_data(args) -> None:
    from latentloop.paths import check_output_dir
    from latentloop.tasks import task_class

    if getattr(args, "task_error", None):
        raise args.task_error
    check_output_dir(args.out)  # before any work
    print(task_class(args.task).build_from_args(args, log=lambda line: print(f"latentloop: {line}", file=sys.stderr)))


def cmd_train(args) -> None:
    from latentloop.api import prepare_run, report_training

    from latentloop.training.loop import train

    built: list[str] = []   # prepare_run logs only when it builds the dataset

    def log(line: str) -> None:
        built.append(line)
        print(line)

    start = time.perf_counter()
    cfg = prepare_run(args.preset, args.overrides, log=log)
    data_seconds = time.perf_counter() - start if built else None
    result = train(cfg, progress=not args.no_progress, resume=args.resume)
    if result.rank == 0:  # under torchrun only rank 0 reports and draws curves.png
        print(report_training(result, data_seconds))


def cmd_eval(args) -> None:
    from latentloop.api import check_arc_pool_outputs, evaluate_checkpoint, pool_arc_votes

    groups = [args.checkpoint] if args.ensemble else [[c] for c in args.checkpoint]
    several = len(groups) > 1
    check_arc_pool_outputs([g[0] for g in groups], args.arc_votes, args.arc_out, args.save_predictions)
    evals = []
    for checkpoint, *ensemble in groups:
        evals.append(evaluate_checkpoint(checkpoint, data=args.data, steps=args.steps, halt_early=args.halt_early,
                                         max_examples=args.max_examples, batch_size=args.batch_size,
                                         threshold=args.halt_threshold, save_predictions=args.save_predictions,
                                         trajectories=args.trajectories, noise=args.noise, config=args.config,
                                         arc_tasks=args.arc_tasks, arc_out=None if several else args.arc_out,
                                         arc_votes=args.arc_votes, tta=args.tta, tta_seed=args.tta_seed,
                                         ensemble=ensemble, combine_mode=args.ensemble or "vote"))
        print(evals[-1].report())
    if args.arc_votes == "pooled":
        print(pool_arc_votes(evals, args.arc_out if several else None).report())
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

    from latentloop.models.official_weights import export_official
    from latentloop.paths import check_output_dir
    from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint

    check_output_dir(args.out)  # before reading the checkpoint
    model, cfg = load_checkpoint(args.checkpoint)
    step = re.fullmatch(r"step_0*(\d+)", resolve_checkpoint(args.checkpoint).name)
    print(f"wrote {export_official(model, cfg, args.out, int(step.group(1)) if step else 0)} and all_config.yaml")


def cmd_info(args) -> None:
    from latentloop.hub import is_hub_path
    from latentloop.models.info import model_info, preset_info
    from latentloop.training.checkpoint import load_checkpoint

    if is_hub_path(args.target) or Path(args.target).exists() and Path(args.target).suffix not in (".toml", ".json"):
        model, cfg = load_checkpoint(args.target, data=args.data)
        print(model_info(model, cfg.train.global_batch_size).report())
    else:
        print(preset_info(args.target, args.overrides).report())


def cmd_push(args) -> None:
    from latentloop.hub import push

    print(push(args.run_dir, args.repo, dry_run=args.dry_run, checkpoint=args.checkpoint))


COMMANDS = {"data": cmd_data, "train": cmd_train, "eval": cmd_eval, "export": cmd_export, "info": cmd_info,
            "push": cmd_push,
            "presets": cmd_presets,
            "plot": cmd_plot,
            **cli_inference.COMMANDS}


def _preload_task_modules(argv: list[str]) -> None:
    """Import the task modules named on the command line before the parser is built: their tasks get
    `data` subcommands, and configs that name them resolve."""
    from latentloop.tasks import load_task_module

    for i, arg in enumerate(argv):
        if arg == "--task-module" and i + 1 < len(argv):
            load_task_module(argv[i + 1])
        elif arg.startswith("--task-module="):
            load_task_module(arg.split("=", 1)[1])
        elif arg.lstrip("+").split("=", 1)[0] in ("task_module", "data.task_module") and "=" in arg:
            load_task_module(arg.split("=", 1)[1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _preload_task_modules(argv)
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown and not getattr(args, "task_error", None):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except LatentloopError as exc:
        print(f"latentloop: error: {exc}", file=sys.stderr)
        return 2
    code = _run(args)
    if args.command == "train":   # a torchrun rank leaves without the C++ teardown that can abort it
        from latentloop.training.distributed import exit_process

        exit_process(code)
    return code


def _run(args) -> int:
    """The command's exit status: 0, or 2 (bad input) / 130 (interrupted) after one line on stderr."""
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
