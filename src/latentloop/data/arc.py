"""ARC builder (the official HRM/TRM `dataset/build_arc_dataset.py`): augmented tasks in the official layout,
materialised or encoded on the fly.

Split rule: a task of the test set (e.g. the ``evaluation`` subset) puts its demonstration pairs in TRAIN and its test
pairs in TEST; every other task puts demonstration and test pairs in TRAIN. ``strict`` keeps test-set tasks out of
TRAIN entirely (their puzzle embeddings then stay untrained): the pretraining set of test-time training (arXiv
2511.02886). ``test_demos_only`` is its fine-tuning set: only the test-set tasks are built, so TRAIN holds their
demonstration pairs alone, while TEST, the variants and their identifier names are those of the other builds from the
same sources and seed (only the identifier numbers differ). Each task is one group: the original plus up to
``num_aug`` distinct variants (dihedral transform + colour permutation; as in the official builder a variant whose
sorted examples equal another's is rejected, up to 5x as many tries), each variant its own puzzle identifier, the same
variant (same identifier) applied to the task's examples in both splits. In TRAIN every example but one random
example per puzzle sits at a random canvas offset shared by input and output; TEST examples sit at the top-left.

Determinism: tasks are sorted by name and each task draws from its own generator seeded by (seed, hash of its name),
so a build does not depend on file-system order or the machine, and adding a task leaves the others' variants alone.

Official numbering (``official_order``): the official TRM ``dataset/build_arc_dataset.py`` instead numbers puzzles in
order of appearance, drawing everything from one ``np.random.seed(42)`` stream: per subset (in the order given) it
shuffles the subset's tasks, then draws each task's variants (transform, then colour permutation, per try); after
all tasks, per TRAIN puzzle in identifier order, the example that stays at the top-left and then the (row, column)
offset of every other example. A training task's pairs are concatenated in its file's key order (the Kaggle
training and evaluation files list ``test`` first), and a missing test output is the dummy grid ``[[0]]``. Tasks
sharing an id share identifiers. Built this way, an official ARC checkpoint's puzzle-embedding rows belong to the
same puzzles (:func:`check_official_numbering` refuses other numberings); the one difference kept is that
unlabelled test-set pairs have PAD labels instead of the dummy's.

Beside ``train/`` and ``test/`` the builder writes ``identifiers.json`` (identifier -> ``Variant.name``),
``test_puzzles.json`` (the original test-set tasks, official format; unlabelled test pairs have no ``"output"``)
and ``arc_build.json`` (the settings and counts of the build); both ``dataset.json`` files say which numbering
the identifiers follow (``"identifier_order"``: ``"official"`` or ``"latentloop"``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentloop.data import arc_sources
from latentloop.data.arc_grid import CANVAS, IDENTITY, NUM_COLOURS, VOCAB_SIZE, Variant, grid_hash
from latentloop.data.arc_onthefly import SWAPS_SIDES, ArcStore, ArcTokens, write_store
from latentloop.data.arc_task import ArcTask, Pair
from latentloop.data.format import (
    BLANK_IDENTIFIER_NAME,
    METADATA_FILE,
    DatasetMetadata,
    PuzzleSplit,
    read_json,
    write_identifiers,
)
from latentloop.errors import DataError
from latentloop.paths import check_output_dir, ensure_output_dir

RETRIES_FACTOR = 5                       # official: up to 5 x num_aug random variants are tried per task
OFFICIAL_SEED = 42                       # official build_arc_dataset.py DataProcessConfig.seed
DUMMY_OUTPUT = np.zeros((1, 1), dtype=np.uint8)   # official: a test pair without solution gets the output [[0]]
ORDER_KEY = "identifier_order"           # in dataset.json: "official" or "latentloop"
LAYOUTS = ("materialised", "on-the-fly")
TEST_PUZZLES_FILE = "test_puzzles.json"
BUILD_FILE = "arc_build.json"
CHUNK = 16384                            # examples encoded per write when materialising


def task_rng(seed: int, name: str) -> np.random.Generator:
    """A task's own generator: the same for the same (seed, name) on every machine and in every task order."""
    digest = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


class VariantKeys:
    """Duplicate detection for a task's variants, as the official builder does it (two variants are the same when
    their sorted lists of (input, output) grids are equal), computed fast: the grids are transformed once per
    dihedral transform, so a variant costs one colour lookup over all cells and a sort of its pairs."""

    def __init__(self, pairs: list[Pair]) -> None:
        self.pairs = pairs
        self.cells: dict[int, tuple[np.ndarray, list[tuple[bytes, int, int]]]] = {}

    def _transformed(self, transform: int) -> tuple[np.ndarray, list[tuple[bytes, int, int]]]:
        """All grids under ``transform``, flattened into one array, with each grid's shape and cell range."""
        if transform not in self.cells:
            grids = [g for pair in self.pairs for g in pair if g is not None]
            moved = [Variant(transform).apply(g) for g in grids]
            bounds, start = [], 0
            for g in moved:
                bounds.append((bytes(g.shape), start, start + g.size))
                start += g.size
            self.cells[transform] = (np.concatenate([g.reshape(-1) for g in moved]), bounds)
        return self.cells[transform]

    def key(self, variant: Variant) -> tuple[bytes, ...]:
        """A key equal for two variants exactly when they give the same examples (in any order)."""
        cells, bounds = self._transformed(variant.transform)
        data = np.asarray(variant.colours, dtype=np.uint8)[cells].tobytes()
        grids = iter(shape + data[start:end] for shape, start, end in bounds)
        return tuple(sorted(next(grids) + b"|" + (next(grids) if out is not None else b"-")
                            for _, out in self.pairs))


def distinct_variants(pairs: list[Pair], num_aug: int, draw: Callable[[], Variant]) -> list[Variant]:
    """The identity and up to ``num_aug`` distinct variants of a task's ``pairs``, from at most
    ``RETRIES_FACTOR * num_aug`` draws; drawing stops once enough are found (as the official builder does)."""
    keys = VariantKeys(pairs)
    variants = [IDENTITY]
    seen = {keys.key(IDENTITY)}
    for _ in range(RETRIES_FACTOR * num_aug):
        if len(variants) > num_aug:
            break
        variant = draw()
        key = keys.key(variant)
        if key not in seen:
            seen.add(key)
            variants.append(variant)
    return variants


@dataclass
class TaskPlan:
    """A task's variants (identity first) and the canvas offsets of its TRAIN examples under each variant."""

    task: ArcTask
    train_pairs: list[Pair]
    test_pairs: list[Pair]
    variants: list[Variant]
    train_offsets: np.ndarray            # uint8 [len(variants), len(train_pairs), 2]


def plan_task(task: ArcTask, strict: bool, num_aug: int, seed: int, canvas: int = CANVAS) -> TaskPlan:
    """Route the task's pairs to the splits, draw its distinct variants, then its TRAIN translations."""
    if task.is_test:
        train_pairs = [] if strict else list(task.train)
        test_pairs = list(task.test)
    else:                                # unlabelled test pairs of a training task cannot be trained on
        train_pairs = list(task.train) + [(i, o) for i, o in task.test if o is not None]
        test_pairs = []
    rng = task_rng(seed, task.name)
    variants = distinct_variants(list(task.train) + list(task.test), num_aug, lambda: Variant.random(rng))
    offsets = np.zeros((len(variants), len(train_pairs), 2), dtype=np.uint8)
    if train_pairs:
        # the room each example leaves in the canvas (input and output share one offset), per orientation
        room = np.array([[canvas - max(i.shape[0], o.shape[0]), canvas - max(i.shape[1], o.shape[1])]
                         for i, o in train_pairs])
        for v, variant in enumerate(variants):
            fixed = int(rng.integers(len(train_pairs)))   # this example stays at the top-left
            high = room[:, ::-1] if variant.transform in SWAPS_SIDES else room
            offsets[v] = rng.integers(0, high + 1)
            offsets[v, fixed] = 0
    return TaskPlan(task, train_pairs, test_pairs, variants, offsets)


def official_plans(tasks: list[ArcTask], num_aug: int, seed: int = OFFICIAL_SEED, canvas: int = CANVAS
                   ) -> list[TaskPlan]:
    """The plans of every task in the official builder's order, drawn from its single stream (module docstring):
    subsets in order of first appearance, each shuffled, then each task's variants; then the TRAIN translations."""
    rng = np.random.RandomState(seed)
    drawn = []                                   # (task, train pairs, test pairs, variants) in identifier order
    for subset in dict.fromkeys(t.subset for t in tasks):
        group = [t for t in tasks if t.subset == subset]
        rng.shuffle(group)
        for task in group:
            filled = [(i, DUMMY_OUTPUT if o is None else o) for i, o in task.train + task.test]
            if task.is_test:
                train_pairs, test_pairs = list(task.train), list(task.test)
            else:
                train_pairs = filled[len(task.train):] + filled[:len(task.train)] if task.test_first else filled
                test_pairs = []
            drawn.append((task, train_pairs, test_pairs, distinct_variants(filled, num_aug,
                                                                           lambda: _official_variant(rng))))
    plans = []
    for task, train_pairs, test_pairs, variants in drawn:
        offsets = np.zeros((len(variants), len(train_pairs), 2), dtype=np.uint8)
        for v, variant in enumerate(variants):
            fixed = rng.randint(0, len(train_pairs))            # this example stays at the top-left
            for p, (inp, out) in enumerate(train_pairs):
                if p != fixed:
                    rows, cols = max(inp.shape[0], out.shape[0]), max(inp.shape[1], out.shape[1])
                    if variant.transform in SWAPS_SIDES:
                        rows, cols = cols, rows
                    offsets[v, p] = rng.randint(0, canvas - rows + 1), rng.randint(0, canvas - cols + 1)
        plans.append(TaskPlan(task, train_pairs, test_pairs, variants, offsets))
    return plans


def official_names(tasks: list[ArcTask]) -> None:
    """Official numbering keeps every task's bare id (its name -> identifier map gives tasks sharing an id the same
    rows); only a test-set id must be unique, since test_puzzles.json is keyed by it."""
    tests: dict[str, ArcTask] = {}
    for task in tasks:
        task.name = task.task_id
        if task.is_test:
            if task.task_id in tests:
                raise DataError(f"task {task.task_id} is in the test set twice ({tests[task.task_id].where} and "
                                f"{task.where}); give each test task once")
            tests[task.task_id] = task


def _official_variant(rng: np.random.RandomState) -> Variant:
    """One try of the official ``aug``: a transform, then a permutation of colours 1-9, from the shared stream."""
    transform = int(rng.randint(0, 8))
    return Variant(transform, (0, *(int(c) for c in rng.permutation(np.arange(1, NUM_COLOURS, dtype=np.uint8)))))


@dataclass
class SplitParts:
    """The arrays of one split, assembled group by group (one group per task, one puzzle per variant)."""

    canvas: int = CANVAS
    grids: list[np.ndarray] = field(default_factory=list)
    example_grids: list[np.ndarray] = field(default_factory=list)
    example_offsets: list[np.ndarray] = field(default_factory=list)
    identifiers: list[np.ndarray] = field(default_factory=list)
    transforms: list[int] = field(default_factory=list)
    colours: list[tuple[int, ...]] = field(default_factory=list)
    examples_per_puzzle: list[int] = field(default_factory=list)
    puzzles_per_group: list[int] = field(default_factory=list)

    def add(self, plan: TaskPlan, pairs: list[Pair], offsets: np.ndarray, identifiers: np.ndarray) -> None:
        """Every variant of the task as a puzzle holding ``pairs``, with its identifier; the original grids are
        stored once."""
        rows = []
        for inp, out in pairs:
            self.grids.append(inp)
            rows.append((len(self.grids) - 1, -1 if out is None else len(self.grids)))
            if out is not None:
                self.grids.append(out)
        count = len(plan.variants)
        self.example_grids.append(np.tile(np.asarray(rows, dtype=np.int32).reshape(-1, 2), (count, 1)))
        self.example_offsets.append(offsets.reshape(-1, 2))
        self.identifiers.append(identifiers)
        self.transforms.extend(v.transform for v in plan.variants)
        self.colours.extend(v.colours for v in plan.variants)
        self.examples_per_puzzle.extend([len(pairs)] * count)
        self.puzzles_per_group.append(count)

    def split(self) -> PuzzleSplit:
        """The split, with inputs and labels that encode from the store on access."""
        grids = np.zeros((len(self.grids), self.canvas, self.canvas), dtype=np.uint8)
        for g, grid in enumerate(self.grids):
            grids[g, :grid.shape[0], :grid.shape[1]] = grid
        puzzle_indices = _offsets(self.examples_per_puzzle)
        store = ArcStore(
            grids=grids,
            grid_shapes=np.asarray([g.shape for g in self.grids], dtype=np.uint8).reshape(-1, 2),
            example_grids=_concat(self.example_grids, (0, 2), np.int32),
            example_offsets=_concat(self.example_offsets, (0, 2), np.uint8),
            puzzle_transforms=np.asarray(self.transforms, dtype=np.uint8),
            puzzle_colours=np.asarray(self.colours, dtype=np.uint8).reshape(-1, NUM_COLOURS),
            puzzle_indices=puzzle_indices.astype(np.int64),
        )
        split = PuzzleSplit(inputs=ArcTokens(store, 0), labels=ArcTokens(store, 1),  # type: ignore[arg-type]
                            puzzle_identifiers=_concat(self.identifiers, (0,), np.int32),
                            puzzle_indices=puzzle_indices, group_indices=_offsets(self.puzzles_per_group))
        split.validate()
        return split


def _offsets(counts: list[int]) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:], dtype=np.int32)
    return offsets


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty_shape, dtype=dtype)


def store_of(split: PuzzleSplit) -> ArcStore:
    """The on-the-fly store behind a split built here or read from an on-the-fly folder."""
    if not isinstance(split.inputs, ArcTokens):
        raise DataError("this ARC split is materialised; it has no on-the-fly store")
    return split.inputs.store


def write_arc_split(split_dir: Path, split: PuzzleSplit, metadata: DatasetMetadata, layout: str,
                    order: str = "latentloop") -> int:
    """Write one split in the official layout (inputs and labels encoded in chunks, so RAM stays small) or in the
    on-the-fly layout, its dataset.json naming the identifier ``order``; return the bytes written."""
    ensure_output_dir(split_dir)
    for stale in split_dir.glob("all__*.npy"):             # a previous build in the other layout
        stale.unlink()
    store = store_of(split)
    if layout == "materialised":
        for column, name in enumerate(("inputs", "labels")):
            _write_rows(split_dir / f"all__{name}.npy", store, column)
    else:
        write_store(split_dir, store)
    for name in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
        np.save(split_dir / f"all__{name}.npy", np.asarray(getattr(split, name), dtype=np.int32))
    with open(split_dir / METADATA_FILE, "w", encoding="utf-8") as f:
        json.dump({**metadata.to_json(), ORDER_KEY: order}, f, indent=2)
    return sum(p.stat().st_size for p in split_dir.iterdir() if p.is_file())


def _write_rows(path: Path, store: ArcStore, column: int) -> None:
    """A uint8 [N, S*S] .npy file written chunk by chunk."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (store.num_examples, store.seq_len)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, store.num_examples, CHUNK):
            rows = np.arange(start, min(start + CHUNK, store.num_examples))
            f.write(store.encode(rows, column).tobytes())


@dataclass
class BuildSummary:
    """What a build produced, for the command line and for tests."""

    out: Path
    layout: str
    num_tasks: int
    test_tasks: int
    test_sets: list[str]
    num_aug: int
    num_identifiers: int
    train: PuzzleSplit
    test: PuzzleSplit
    unlabelled_test_pairs: int
    skipped_unlabelled: int
    dummy_outputs: int
    short_tasks: list[tuple[str, int]]
    warnings: list[str]
    bytes_written: int
    seconds: float

    def __str__(self) -> str:
        lines = [f"ARC: {self.num_tasks:,} tasks, {self.test_tasks:,} of them in the test set "
                 f"{', '.join(self.test_sets)}; up to {self.num_aug:,} variants per task"]
        for name, split in (("train", self.train), ("test", self.test)):
            lines.append(f"{name}: {split.num_groups:,} groups, {split.num_puzzles:,} puzzles, "
                         f"{split.num_examples:,} examples")
        if self.unlabelled_test_pairs:
            lines.append(f"{self.unlabelled_test_pairs:,} test pairs have no solution: their labels are all PAD and "
                         f"{TEST_PUZZLES_FILE} gives them no \"output\"")
        if self.skipped_unlabelled:
            lines.append(f"{self.skipped_unlabelled:,} unlabelled test pairs of training tasks were left out")
        if self.dummy_outputs:
            lines.append(f"{self.dummy_outputs:,} unlabelled test pairs of training tasks are trained on the dummy "
                         "output [[0]], as the official builder does")
        if self.short_tasks:
            name, count = self.short_tasks[0]
            lines.append(f"{len(self.short_tasks):,} tasks have fewer distinct variants than asked "
                         f"(e.g. {name}: {count})")
        lines.append(f"{self.num_identifiers:,} puzzle identifiers (blank + one per variant); {self.layout} layout, "
                     f"{self.bytes_written / 1e6:,.1f} MB in {self.out} ({self.seconds:.1f} s)")
        return "\n".join(lines)


def overlap_warnings(tasks: list[ArcTask], renamed: bool = True) -> list[str]:
    """One line each when training tasks share an id (``renamed``: they are named ``<subset>/<id>``; otherwise
    they share its identifiers), or a whole test pair, with a test-set task."""
    test_ids = {t.task_id: t for t in tasks if t.is_test}
    test_pairs = {(grid_hash(i), grid_hash(o)): t.name for t in tasks if t.is_test for i, o in t.test
                  if o is not None}
    warnings = []
    same_id = [t for t in tasks if not t.is_test and t.task_id in test_ids]
    if same_id:
        warnings.append(f"{len(same_id)} training tasks share an id with a test-set task (e.g. {same_id[0].task_id} "
                        f"in {same_id[0].subset}); "
                        + ("they are named <subset>/<id>" if renamed else "they share its puzzle identifiers")
                        + ", and if they are the same puzzle the test answers are in training")
    leaks = [(t, test_pairs[key]) for t in tasks if not t.is_test
             for key in {(grid_hash(i), grid_hash(o)) for i, o in list(t.train) + list(t.test) if o is not None}
             if key in test_pairs]
    if leaks:
        count = len({t.name for t, _ in leaks})
        warnings.append(f"{count} training tasks contain a test pair (input and answer) of a test-set task (e.g. "
                        f"{leaks[0][0].name} holds one of {leaks[0][1]}); drop that source or evaluate elsewhere")
    return warnings


def build(out: str | Path, tasks: list[ArcTask], test_sets: list[str], *, num_aug: int = 1000, seed: int = 0,
          strict: bool = False, test_demos_only: bool = False, layout: str = "materialised",
          sources: list[str] | None = None, canvas: int = CANVAS, official_order: bool = False,
          log: Callable[[str], None] = print) -> BuildSummary:
    """Build an augmented ARC dataset from tasks read by :mod:`arc_sources` (``sources`` only goes into the
    build record); see the module docstring. ``canvas`` below 30 makes shorter sequences for small grids;
    ``official_order`` numbers the puzzles as the official builder does (with its seed 42 to match its builds)."""
    started = time.perf_counter()
    out = check_output_dir(out)
    if layout not in LAYOUTS:
        raise DataError(f"unknown ARC layout {layout!r}; choose {' or '.join(LAYOUTS)}")
    if num_aug < 0:
        raise DataError(f"num_aug must not be negative, got {num_aug}")
    if not 1 <= canvas <= CANVAS:
        raise DataError(f"the ARC canvas side is 1-{CANVAS}, got {canvas}")
    if official_order and strict:
        raise DataError("--strict has no counterpart in the official builder, so it cannot be combined with "
                        "--official-order")
    if test_demos_only and (strict or official_order):
        clash = ("--strict, which keeps those pairs out of training" if strict else
                 "--official-order, whose numbering draws from every task")
        raise DataError(f"--test-demos-only trains on the test-set tasks' demonstration pairs alone, so it cannot be "
                        f"combined with {clash}")
    for task in tasks:
        task.is_test = arc_sources.in_test_set(task.subset, test_sets)
    if not any(t.is_test for t in tasks):
        subsets = sorted({t.subset for t in tasks})
        raise DataError(f"no task is in the test set {', '.join(test_sets)}; subsets found: {', '.join(subsets[:8])}"
                        + (", ..." if len(subsets) > 8 else ""))
    if test_demos_only:
        left_out = sum(not t.is_test for t in tasks)
        tasks = [t for t in tasks if t.is_test]
        log(f"test demonstrations only: {left_out:,} tasks outside the test set left out; train holds the "
            f"demonstration pairs of the {len(tasks):,} test-set tasks")
    for task in tasks:
        if task.side > canvas:
            raise DataError(f"task {task.task_id} ({task.subset}) has a grid side of {task.side}, larger than the "
                            f"{canvas}x{canvas} canvas; raise the canvas or leave the task out")
    if official_order:
        official_names(tasks)
        log(f"official numbering (seed {seed}): subsets in this order: "
            f"{', '.join(dict.fromkeys(t.subset for t in tasks))}")
    else:
        arc_sources.assign_names(tasks)
        tasks = sorted(tasks, key=lambda t: t.name)
    warnings = overlap_warnings(tasks, renamed=not official_order)
    for line in warnings:
        log(f"warning: {line}")
    if official_order:
        plans = official_plans(tasks, num_aug, seed, canvas)
    else:
        plans = [plan_task(task, strict, num_aug, seed, canvas) for task in tasks]

    identifiers = {BLANK_IDENTIFIER_NAME: 0}     # name -> identifier, numbered by first appearance
    train, test = SplitParts(canvas), SplitParts(canvas)
    for plan in plans:
        ids = np.asarray([identifiers.setdefault(v.name(plan.task.name), len(identifiers)) for v in plan.variants],
                         dtype=np.int32)
        if plan.train_pairs:
            train.add(plan, plan.train_pairs, plan.train_offsets, ids)
        if plan.test_pairs:
            test.add(plan, plan.test_pairs, np.zeros((len(plan.variants), len(plan.test_pairs), 2), np.uint8), ids)
    names = list(identifiers)
    if not train.puzzles_per_group:
        raise DataError("no training examples: every task is in the test set and --strict keeps them out of training")
    splits = {"train": train.split(), "test": test.split()}
    test_puzzles = {p.task.name: p.task.to_json() for p in plans if p.task.is_test}
    order = "official" if official_order else "latentloop"
    record = {"sources": sources or [], "test_sets": list(test_sets), "strict": strict,
              "test_demos_only": test_demos_only, "num_aug": num_aug,
              "seed": seed, "layout": layout, "canvas": canvas, ORDER_KEY: order, "tasks": len(tasks),
              "test_tasks": len(test_puzzles), "num_puzzle_identifiers": len(names), "warnings": warnings}
    ensure_output_dir(out)
    written = write_identifiers(out, names).stat().st_size
    for file, text in ((TEST_PUZZLES_FILE, json.dumps(test_puzzles)), (BUILD_FILE, json.dumps(record, indent=2))):
        (out / file).write_text(text, encoding="utf-8")
        written += len(text)
    for name in ("test", "train"):      # train/dataset.json last: its presence means the build is complete
        meta = DatasetMetadata.for_split(splits[name], vocab_size=VOCAB_SIZE, num_puzzle_identifiers=len(names),
                                         task="arc", task_params={"canvas": canvas})
        written += write_arc_split(out / name, splits[name], meta, layout, order)
    return BuildSummary(
        out=out, layout=layout, num_tasks=len(tasks), test_tasks=len(test_puzzles), test_sets=list(test_sets),
        num_aug=num_aug, num_identifiers=len(names), train=splits["train"], test=splits["test"],
        unlabelled_test_pairs=sum(o is None for t in tasks if t.is_test for _, o in t.test),
        skipped_unlabelled=0 if official_order else sum(o is None for t in tasks if not t.is_test for _, o in t.test),
        dummy_outputs=sum(o is None for t in tasks if not t.is_test for _, o in t.test) if official_order else 0,
        short_tasks=[(p.task.name, len(p.variants) - 1) for p in plans if len(p.variants) <= num_aug],
        warnings=warnings, bytes_written=written, seconds=time.perf_counter() - started)


def build_from_sources(out: str | Path, sources: list[str], test_sets: list[str], *, num_aug: int = 1000,
                       seed: int = 0, strict: bool = False, test_demos_only: bool = False,
                       layout: str = "materialised", canvas: int = CANVAS, official_order: bool = False,
                       log: Callable[[str], None] = print) -> BuildSummary:
    """Read every source (see :func:`arc_sources.source_tasks`) and build."""
    if not sources:
        raise DataError("no ARC source given")
    check_output_dir(out)  # before reading (and generating) every task
    tasks = [task for spec in sources for task in arc_sources.source_tasks(spec, seed)]
    return build(out, tasks, test_sets, num_aug=num_aug, seed=seed, strict=strict, test_demos_only=test_demos_only,
                 layout=layout, sources=list(sources), canvas=canvas, official_order=official_order, log=log)


def check_official_numbering(data: str | Path | None, trained_on: str | None, source: str) -> None:
    """Refuse to load the puzzle-embedding rows of an official checkpoint ``source`` for the ARC dataset ``data``
    when the dataset numbers its puzzles otherwise: a latentloop-ordered build (sorted task names, variants seeded
    per task) gives every row to another puzzle even when the row count matches. Official builds and
    ``--official-order`` builds pass, as does the dataset the checkpoint's config names as its training data
    (``trained_on``: a checkpoint exported from a run on that very build)."""
    if not data:
        return
    data = Path(data)
    found = [data / split / METADATA_FILE for split in ("train", "test") if (data / split / METADATA_FILE).is_file()]
    raw = read_json(found[0]) if found else {}
    order = raw.get(ORDER_KEY) if isinstance(raw, dict) else None
    if order is None:                        # written before the key existed: by this builder, or not at all
        order = "latentloop" if (data / BUILD_FILE).is_file() else "official"
    if order == "official" or (trained_on and Path(trained_on).resolve() == data.resolve()):
        return
    raise DataError(f"{data} numbers its ARC puzzles in latentloop's order, not the official builder's, so the "
                    f"puzzle-embedding rows of the official checkpoint {source} would belong to other puzzles: "
                    f"rebuild it with `latentloop data arc --official-order` from the official build's sources in its "
                    f"order (e.g. --kaggle kaggle/combined/arc-agi --subsets training evaluation concept), or pass the "
                    f"official builder's output")
