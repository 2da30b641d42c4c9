"""ARC builder: the split rule (and the pretraining and fine-tuning builds of test-time training), distinct variants
that invert exactly, translation on train only, determinism, on-the-fly == materialised, a short training run on
generated ARC-like tasks, the official numbering against the official builder's rules on real tasks, and official
checkpoints refused on rows numbered otherwise."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data import arc, arc_synthetic
from latentloop.data.arc_grid import CANVAS, COLOUR_OFFSET, EOS, PAD, crop, grid_hash, parse_name
from latentloop.data.arc_sources import source_tasks
from latentloop.data.arc_task import ArcTask, parse_task
from latentloop.data.format import read_identifiers, read_split
from latentloop.data.sampler import GroupSampler, test_batches
from latentloop.errors import DataError
from latentloop.evaluation.arc import ArcEvaluator
from latentloop.models import ModelConfig, build_model
from latentloop.models.official_weights import export_official
from latentloop.training.checkpoint import load_checkpoint
from latentloop.training.loop import train
from conftest import SHARED_DATA

NUM_AUG = 6


def _tasks(num_train: int = 8, num_eval: int = 3, seed: int = 0) -> list[ArcTask]:
    return arc_synthetic.synthetic_tasks(num_train, num_eval, seed)


def _build(out: Path, tasks: list[ArcTask] | None = None, **options) -> arc.BuildSummary:
    options.setdefault("num_aug", NUM_AUG)
    return arc.build(out, tasks if tasks is not None else _tasks(), ["evaluation"], log=lambda _: None, **options)


def _dataset_files(root: Path) -> dict[str, bytes]:
    """Every file a build writes, except the record of where its sources were."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != arc.BUILD_FILE}


def _top_left(canvas: np.ndarray) -> tuple[int, int]:
    """Where a grid sits in its canvas: the first row and column holding any non-PAD token."""
    grid = canvas.reshape(CANVAS, CANVAS)
    rows, cols = np.nonzero(grid != PAD)
    return int(rows.min()), int(cols.min())


def _decode(canvas: np.ndarray) -> np.ndarray:
    """The grid of a canvas wherever it sits, read with the official crop after moving it to the top-left."""
    r, c = _top_left(canvas)
    return crop(np.pad(canvas.reshape(CANVAS, CANVAS)[r:, c:], ((0, r), (0, c))))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, arc.BuildSummary]:
    out = tmp_path_factory.mktemp("arc") / "synthetic"
    return out, _build(out)


def test_synthetic_tasks_look_like_arc_and_are_seeded():
    tasks = _tasks(10, 4)
    again = _tasks(12, 2)                                      # task i depends on (seed, i) only
    for a, b in zip(tasks, again):
        assert a.task_id == b.task_id and all(np.array_equal(x, y) for (x, _), (y, _) in zip(a.train, b.train))
    assert [t.subset for t in tasks] == ["synthetic/training"] * 10 + ["synthetic/evaluation"] * 4
    for task in tasks:
        assert 3 <= len(task.train) <= 5 and 1 <= len(task.test) <= 2
        for inp, out in task.train + task.test:
            assert 3 <= min(inp.shape) and max(inp.shape) <= 10 and out is not None
            assert not np.array_equal(inp, out)
    assert _tasks(10, 4, seed=1)[0].task_id != tasks[0].task_id


def test_split_rule_counts_and_identifiers(built):
    out, summary = built
    tasks = sorted(_tasks(), key=lambda t: t.task_id)
    train, train_meta = read_split(out / "train")
    test, test_meta = read_split(out / "test")
    names = read_identifiers(out)
    assert (train_meta.vocab_size, train_meta.seq_len, train_meta.ignore_label_id) == (12, 900, 0)
    assert train_meta.num_puzzle_identifiers == test_meta.num_puzzle_identifiers == len(names)
    assert len(names) == 1 + train.num_puzzles                 # blank + one row per variant of every task
    assert train.num_groups == len(tasks) and test.num_groups == 3
    variants = np.diff(train.group_indices)
    evaluation = [t for t in tasks if t.subset.endswith("evaluation")]
    expected_train = sum((len(t.train) + (0 if t.subset.endswith("evaluation") else len(t.test))) * v
                         for t, v in zip(tasks, variants))
    assert train.num_examples == expected_train
    assert test.num_examples == sum(len(t.test) * (NUM_AUG + 1) for t in evaluation)
    # the same variant (the same identifier) carries a task's demonstrations in train and its tests in test
    test_names = {names[i] for i in test.puzzle_identifiers}
    assert test_names <= {names[i] for i in train.puzzle_identifiers}
    assert {parse_name(n)[0] for n in test_names} == {t.task_id for t in evaluation}
    puzzles = json.loads((out / arc.TEST_PUZZLES_FILE).read_text())
    assert set(puzzles) == {t.task_id for t in evaluation}
    first = evaluation[0]
    assert puzzles[first.task_id]["test"][0]["output"] == first.test[0][1].tolist()
    assert json.loads((out / arc.BUILD_FILE).read_text())["num_aug"] == NUM_AUG


def test_every_stored_example_inverts_to_an_original_pair(built):
    out, _ = built
    names = read_identifiers(out)
    tasks = {t.task_id: t for t in _tasks()}
    for split_name in ("train", "test"):
        split, _ = read_split(out / split_name)
        inputs, labels = np.asarray(split.inputs), np.asarray(split.labels)
        for p in range(split.num_puzzles):
            task_id, variant = parse_name(names[int(split.puzzle_identifiers[p])])
            task = tasks[task_id]
            originals = {(i.tobytes(), i.shape, o.tobytes(), o.shape) for i, o in task.train + task.test}
            for e in range(split.puzzle_indices[p], split.puzzle_indices[p + 1]):
                assert _top_left(inputs[e]) == _top_left(labels[e])   # input and output share the offset
                inp, lab = variant.invert(_decode(inputs[e])), variant.invert(_decode(labels[e]))
                assert (inp.tobytes(), inp.shape, lab.tobytes(), lab.shape) in originals


def test_a_smaller_canvas_is_the_same_encoding_with_shorter_sequences(tmp_path):
    out = tmp_path / "small"
    _build(out, canvas=10, layout="on-the-fly")
    test, meta = read_split(out / "test")
    assert meta.seq_len == 100 and np.asarray(test.inputs).shape[1] == 100
    names = read_identifiers(out)
    tasks = {t.task_id: t for t in _tasks()}
    train_split, _ = read_split(out / "train")
    for p in range(0, train_split.num_puzzles, 7):
        task_id, variant = parse_name(names[int(train_split.puzzle_identifiers[p])])
        originals = {(i.tobytes(), o.tobytes()) for i, o in tasks[task_id].train + tasks[task_id].test}
        for e in range(train_split.puzzle_indices[p], train_split.puzzle_indices[p + 1]):
            canvas = np.asarray(train_split.inputs[[e]])[0].reshape(10, 10)
            rows, cols = np.nonzero(canvas != PAD)
            moved = np.pad(canvas[rows.min():, cols.min():], ((0, rows.min()), (0, cols.min())))
            label = np.asarray(train_split.labels[[e]])[0].reshape(10, 10)
            label = np.pad(label[rows.min():, cols.min():], ((0, rows.min()), (0, cols.min())))
            pair = (variant.invert(crop(moved.reshape(-1))).tobytes(),
                    variant.invert(crop(label.reshape(-1))).tobytes())
            assert pair in originals
    # the voting evaluator reads the small canvas too: the labels as predictions score 100%
    evaluator = ArcEvaluator.for_dataset(out, meta)
    ids = np.repeat(test.puzzle_identifiers, np.diff(test.puzzle_indices))
    evaluator.update(ids, np.asarray(test.inputs), np.asarray(test.labels), np.full(len(ids), 0.5))
    assert evaluator.scores().pass_at[2] == 1.0
    with pytest.raises(DataError, match="larger than the 5x5 canvas"):
        _build(tmp_path / "tiny", canvas=5)


def test_translation_only_on_train_and_one_example_per_puzzle_stays(built):
    out, _ = built
    test, _ = read_split(out / "test")
    assert all(_top_left(row) == (0, 0) for row in np.asarray(test.inputs))
    train, _ = read_split(out / "train")
    inputs = np.asarray(train.inputs)
    moved = 0
    for p in range(train.num_puzzles):
        corners = [_top_left(inputs[e]) for e in range(train.puzzle_indices[p], train.puzzle_indices[p + 1])]
        assert (0, 0) in corners
        moved += sum(c != (0, 0) for c in corners)
    assert moved > train.num_examples // 2


def test_variants_are_distinct_and_duplicates_rejected(tmp_path):
    # A 1x1 grid of colour 1 has 9 distinct variants (the colour it maps to); square all-black grids have none.
    single = parse_task({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]},
                        "one", "x/evaluation", "one")
    black = parse_task({"train": [{"input": [[0, 0], [0, 0]], "output": [[0]]}],
                        "test": [{"input": [[0]], "output": [[0]]}]}, "black", "x/training", "black")
    summary = _build(tmp_path / "d", [single, black], num_aug=20)
    names = read_identifiers(tmp_path / "d")
    assert sorted(parse_name(n)[0] for n in names[1:]).count("one") == 9
    assert [n for n in names if parse_name(n)[0] == "black"] == ["black"]
    assert {name for name, _ in summary.short_tasks} == {"one", "black"}
    train, _ = read_split(tmp_path / "d" / "train")
    ones = [p for p, i in enumerate(train.puzzle_identifiers) if parse_name(names[i])[0] == "one"]
    tops = {int(train.inputs[int(train.puzzle_indices[p])][0]) for p in ones}
    assert len(tops) == 9                                      # each variant of "one" shows a different colour


def test_strict_keeps_test_tasks_out_of_training(tmp_path):
    _build(tmp_path / "strict", strict=True)
    names = read_identifiers(tmp_path / "strict")
    train, _ = read_split(tmp_path / "strict" / "train")
    test, _ = read_split(tmp_path / "strict" / "test")
    evaluation = {t.task_id for t in _tasks() if t.subset.endswith("evaluation")}
    assert not {parse_name(names[i])[0] for i in train.puzzle_identifiers} & evaluation
    assert {parse_name(names[i])[0] for i in test.puzzle_identifiers} == evaluation
    assert not set(train.puzzle_identifiers.tolist()) & set(test.puzzle_identifiers.tolist())


def _names_of(root: Path, split_name: str) -> list[str]:
    """The identifier name of every puzzle of a split, in order."""
    names = read_identifiers(root)
    split, _ = read_split(root / split_name)
    return [names[i] for i in split.puzzle_identifiers]


def _examples_of(root: Path, tasks: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """The train split's inputs and labels of the puzzles of `tasks`, in order."""
    names = read_identifiers(root)
    split, _ = read_split(root / "train")
    rows = [row for p, i in enumerate(split.puzzle_identifiers) if parse_name(names[i])[0] in tasks
            for row in range(int(split.puzzle_indices[p]), int(split.puzzle_indices[p + 1]))]
    return np.asarray(split.inputs)[rows], np.asarray(split.labels)[rows]


def test_test_time_training_builds_pretrain_and_fine_tune_on_the_same_tasks(tmp_path):
    """--strict (pretraining) and --test-demos-only (fine-tuning) split the default build's train split between them
    and keep its test split, variants and identifier names, so init_from finds the test tasks' rows by name."""
    _build(tmp_path / "all")
    _build(tmp_path / "pre", strict=True)
    summary = _build(tmp_path / "ft", test_demos_only=True)
    evaluation = {t.task_id for t in _tasks() if t.subset.endswith("evaluation")}
    pre, ft = (_names_of(tmp_path / build, "train") for build in ("pre", "ft"))
    assert not {parse_name(name)[0] for name in pre} & evaluation
    assert {parse_name(name)[0] for name in ft} == evaluation and summary.num_tasks == len(evaluation)
    assert ft == [name for name in _names_of(tmp_path / "all", "train") if parse_name(name)[0] in evaluation]
    for got, want in zip(_examples_of(tmp_path / "ft", evaluation), _examples_of(tmp_path / "all", evaluation)):
        assert np.array_equal(got, want)                   # the same demonstrations at the same offsets
    assert read_identifiers(tmp_path / "ft")[1:] == [n for n in read_identifiers(tmp_path / "pre")
                                                     if parse_name(n)[0] in evaluation]
    tests = [read_split(tmp_path / build / "test")[0] for build in ("all", "pre", "ft")]
    for split in tests[1:]:
        assert np.array_equal(np.asarray(split.inputs), np.asarray(tests[0].inputs))
        assert np.array_equal(np.asarray(split.labels), np.asarray(tests[0].labels))
        assert np.array_equal(split.puzzle_indices, tests[0].puzzle_indices)
    assert _names_of(tmp_path / "ft", "test") == _names_of(tmp_path / "pre", "test") == \
        _names_of(tmp_path / "all", "test")
    assert len({(tmp_path / b / arc.TEST_PUZZLES_FILE).read_text() for b in ("all", "pre", "ft")}) == 1
    assert json.loads((tmp_path / "ft" / arc.BUILD_FILE).read_text())["test_demos_only"] is True


def _write_folder(root: Path, tasks: list[ArcTask], order: list[int]) -> None:
    for index in order:
        task = tasks[index]
        folder = root / task.subset.split("/")[-1]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{task.task_id}.json").write_text(json.dumps(task.to_json()))


def test_same_seed_same_build_whatever_the_file_order(tmp_path):
    tasks = _tasks()
    order = list(range(len(tasks)))
    _write_folder(tmp_path / "a" / "synthetic", tasks, order)
    random.Random(1).shuffle(order)
    _write_folder(tmp_path / "b" / "synthetic", tasks, order)
    shutil.copytree(tmp_path / "b" / "synthetic", tmp_path / "c" / "synthetic")
    builds = []
    for name in ("a", "c"):
        out = tmp_path / f"out-{name}"
        arc.build_from_sources(out, [str(tmp_path / name / "synthetic")], ["evaluation"], num_aug=NUM_AUG,
                               log=lambda _: None)
        builds.append(_dataset_files(out))
    assert builds[0] == builds[1]
    # a different seed gives other variants; an added task leaves the others' variants alone
    _build(tmp_path / "seed1", tasks, seed=1)
    assert _dataset_files(tmp_path / "seed1") != builds[0]
    extra = parse_task({"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]],
                        "output": [[4, 3]]}]}, "00000000", "synthetic/training", "extra")
    _build(tmp_path / "more", _tasks() + [extra])
    names = read_identifiers(tmp_path / "more")
    assert [n for n in names if not n.startswith("00000000")] == json.loads(builds[0]["identifiers.json"])


def test_on_the_fly_matches_materialised_byte_for_byte(built, tmp_path):
    out, _ = built
    _build(tmp_path / "lazy", layout="on-the-fly")
    assert not (tmp_path / "lazy" / "train" / "all__inputs.npy").exists()
    lazy_bytes = sum(p.stat().st_size for p in (tmp_path / "lazy").rglob("*.npy"))
    assert lazy_bytes * 5 < sum(p.stat().st_size for p in out.rglob("*.npy"))
    for split_name in ("train", "test"):
        full, full_meta = read_split(out / split_name)
        lazy, lazy_meta = read_split(tmp_path / "lazy" / split_name)
        assert full_meta == lazy_meta
        for name in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
            np.testing.assert_array_equal(getattr(full, name), getattr(lazy, name))
        assert np.asarray(lazy.inputs).tobytes() == np.asarray(full.inputs).tobytes()
        assert np.asarray(lazy.labels).tobytes() == np.asarray(full.labels).tobytes()
        assert lazy.inputs.max() == full.inputs.max() and lazy.labels.max() == full.labels.max()
        a, b = list(test_batches(full, full_meta, 7)), list(test_batches(lazy, lazy_meta, 7))
        assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in ("inputs", "labels"))
    sampled = [next(GroupSampler(*read_split(root / "train"), 16, seed=3)) for root in (out, tmp_path / "lazy")]
    assert all(np.array_equal(sampled[0][k], sampled[1][k]) for k in sampled[0])
    view = lazy.inputs[2:5]                                    # slices are views, indexed like arrays
    np.testing.assert_array_equal(view[np.array([0, 2])], np.asarray(full.inputs)[[2, 4]])


def test_a_switch_of_layout_leaves_no_stale_arrays(built, tmp_path):
    out = tmp_path / "switch"
    _build(out)
    _build(out, layout="on-the-fly")
    split, _ = read_split(out / "train")
    assert isinstance(split.inputs, arc.ArcTokens)


def test_generated_arc_trains_through_the_normal_loop(tmp_path):
    cfg = apply_overrides(load_preset("cpu-arc"), [
        f"data_path={tmp_path / 'data'}", f"out_dir={tmp_path / 'run'}", "hidden_size=32", "num_heads=2",
        "layers=1", "T=1", "n=1", "N_sup=2", "puzzle_emb_ndim=32", "global_batch_size=8", "epochs=1",
        "eval_interval=1", "eval_batch_size=8"])
    summary = arc.build_from_sources(cfg.train.data_path, ["synthetic:6:1"], ["evaluation"], num_aug=1,
                                     layout="on-the-fly", log=lambda _: None)
    result = train(cfg, progress=False, log=lambda *_: None)
    assert result.steps > 0 and result.final_eval is not None
    assert result.final_eval.num_examples == summary.test.num_examples
    assert cfg.model.num_puzzle_identifiers == len(read_identifiers(cfg.train.data_path))


def test_preset_builds_its_synthetic_data_on_first_use(tmp_path):
    from latentloop.api import prepare_run

    lines: list[str] = []
    cfg = prepare_run("cpu-arc", [f"data_path={tmp_path / 'd'}", "data.num_aug=1", "data.num_train=4",
                                  "data.num_test=2", "data.layout=on-the-fly"], log=lines.append)
    assert (tmp_path / "d" / "train" / "dataset.json").exists() and cfg.data.task == "arc"
    assert "synthetic:4:2" in lines[0]
    test, _ = read_split(tmp_path / "d" / "test")
    assert test.num_groups == 2
    # data.sources=FOLDER (one path needs no brackets) builds from task files instead
    _write_folder(tmp_path / "tasks", _tasks(3, 2), list(range(5)))
    cfg = prepare_run("cpu-arc", [f"data_path={tmp_path / 'f'}", f"data.sources={tmp_path / 'tasks'}",
                                  "data.num_aug=0"], log=lines.append)
    assert cfg.data.sources == [str(tmp_path / "tasks")]
    assert read_split(tmp_path / "f" / "test")[0].num_groups == 2


def test_source_specs_from_the_preset_and_arc_build_record(tmp_path):
    tasks = list(source_tasks("synthetic:3:1", seed=5))
    assert len(tasks) == 4 and tasks[0].task_id == _tasks(3, 1, seed=5)[0].task_id
    summary = arc.build_from_sources(tmp_path / "o", ["synthetic:3:1"], ["evaluation"], num_aug=0, seed=5,
                                     log=lambda _: None)
    assert summary.num_identifiers == 5 and "4 tasks" in str(summary)
    assert json.loads((tmp_path / "o" / arc.BUILD_FILE).read_text())["sources"] == ["synthetic:3:1"]
    train, _ = read_split(tmp_path / "o" / "train")
    assert int(np.asarray(train.inputs).max()) < COLOUR_OFFSET + 10


def test_a_corrupt_on_the_fly_split_fails_in_one_line(tmp_path):

    out = tmp_path / "lazy"
    _build(out, layout="on-the-fly")
    grids = np.load(out / "train" / "all__example_grids.npy")
    np.save(out / "train" / "all__example_grids.npy", grids + 10_000)
    with pytest.raises(DataError, match="example_grids point outside"):
        read_split(out / "train")
    (out / "test" / "all__puzzle_colours.npy").unlink()
    with pytest.raises(DataError, match="all__puzzle_colours.npy: file not found"):
        read_split(out / "test")


# --- the official numbering (official TRM dataset/build_arc_dataset.py) ---------------------------------------------

KAGGLE = SHARED_DATA / "arc" / "trm-kaggle-combined"
needs_kaggle = pytest.mark.skipif(not (KAGGLE / "arc-agi_training_challenges.json").is_file(),
                                  reason=f"the official Kaggle ARC files are not at {KAGGLE}")
# The official builder's dihedral transforms, by id (dataset/common.py dihedral_transform).
OFFICIAL_DIHEDRAL = [lambda a: a, lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 3),
                     np.fliplr, np.flipud, lambda a: a.T, lambda a: np.fliplr(np.rot90(a, 1))]


def _official_rules(prefix: Path, subsets: list[str], test_set: str, num_aug: int, seed: int = 42
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """identifiers.json and the TRAIN inputs and labels by the official builder's rules, written out the plain way:
    one global stream; per subset the file's tasks shuffled, per task up to 5 x num_aug tries of (transform, colour
    permutation), a try kept when its sorted pair hashes are new; names numbered by first appearance; then per
    TRAIN puzzle the example kept at the top-left and the offsets of the others, drawn row first."""
    rng = np.random.RandomState(seed)

    def digest(pairs):
        return tuple(sorted(grid_hash(i) + "|" + grid_hash(o) for i, o in pairs))

    groups = []                                   # per task: [(name, train examples)] for the original + variants
    for subset in subsets:
        tasks = json.loads(Path(f"{prefix}_{subset}_challenges.json").read_text())
        solutions = Path(f"{prefix}_{subset}_solutions.json")
        answers = json.loads(solutions.read_text()) if solutions.is_file() else {}
        items = list(tasks.items())
        rng.shuffle(items)
        for name, task in items:
            pairs = {"train": [], "test": []}
            for kind, examples in task.items():  # the file's key order
                for j, example in enumerate(examples):
                    output = answers[name][j] if kind == "test" and answers else example.get("output", [[0]])
                    dest = "test" if kind == "test" and subset == test_set else "train"
                    pairs[dest].append((np.array(example["input"], np.uint8), np.array(output, np.uint8)))
            group, seen = [(name, pairs["train"])], {digest(pairs["train"] + pairs["test"])}
            for _ in range(5 * num_aug):
                transform = rng.randint(0, 8)
                colours = np.concatenate([[0], rng.permutation(np.arange(1, 10, dtype=np.uint8))]).astype(np.uint8)
                moved = [(OFFICIAL_DIHEDRAL[transform](colours[i]), OFFICIAL_DIHEDRAL[transform](colours[o]))
                         for i, o in pairs["train"] + pairs["test"]]
                if digest(moved) not in seen:
                    seen.add(digest(moved))
                    group.append((f"{name}|||t{transform}|||{''.join(map(str, colours))}", moved[:len(pairs["train"])]))
                if len(group) > num_aug:
                    break
            groups.append(group)
    names = {"<blank>": 0}
    for group in groups:
        for name, _ in group:
            names.setdefault(name, len(names))
    inputs, labels = [], []
    for group in groups:
        for _, examples in group:
            fixed = rng.randint(0, len(examples))
            for j, (i, o) in enumerate(examples):
                r = c = 0
                if j != fixed:
                    r = rng.randint(0, CANVAS - max(i.shape[0], o.shape[0]) + 1)
                    c = rng.randint(0, CANVAS - max(i.shape[1], o.shape[1]) + 1)
                for grid, rows in ((i, inputs), (o, labels)):
                    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
                    canvas[r:r + grid.shape[0], c:c + grid.shape[1]] = grid + COLOUR_OFFSET
                    canvas[r + grid.shape[0]:r + grid.shape[0] + 1, c:c + grid.shape[1]] = EOS
                    canvas[r:r + grid.shape[0], c + grid.shape[1]:c + grid.shape[1] + 1] = EOS
                    rows.append(canvas.reshape(-1))
    return list(names), np.stack(inputs), np.stack(labels)


@pytest.fixture(scope="module")
def kaggle_sample(tmp_path_factory) -> Path:
    """A handful of real tasks in the official Kaggle layout: training and evaluation with solutions (their files list
    "test" before "train"), concept without (so its test outputs are the official dummy); and two made-up tasks with
    fewer distinct variants than asked, so the tries run out."""
    root = tmp_path_factory.mktemp("kaggle")
    symmetric = {"one": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]},
                 "two": {"train": [{"input": [[2, 2], [2, 2]], "output": [[0]]}], "test": [{"input": [[2]]}]}}
    (root / "arc-agi_symmetric_challenges.json").write_text(json.dumps(symmetric))
    for subset, count, with_solutions in (("training", 6, True), ("evaluation", 4, True), ("concept", 3, False)):
        tasks = json.loads((KAGGLE / f"arc-agi_{subset}_challenges.json").read_text())
        keep = list(tasks)[:count]
        (root / f"arc-agi_{subset}_challenges.json").write_text(json.dumps({k: tasks[k] for k in keep}))
        if with_solutions:
            answers = json.loads((KAGGLE / f"arc-agi_{subset}_solutions.json").read_text())
            (root / f"arc-agi_{subset}_solutions.json").write_text(json.dumps({k: answers[k] for k in keep}))
    return root


@needs_kaggle
def test_official_order_reproduces_the_official_builder_on_real_tasks(kaggle_sample, tmp_path):
    subsets = ["training", "evaluation", "symmetric", "concept"]
    files = [str(kaggle_sample / f"arc-agi_{s}_challenges.json") for s in subsets]
    summary = arc.build_from_sources(tmp_path / "o", files, ["evaluation"], num_aug=12, seed=arc.OFFICIAL_SEED,
                                     official_order=True, log=lambda _: None)
    names, inputs, labels = _official_rules(kaggle_sample / "arc-agi", subsets, "evaluation", num_aug=12)
    assert read_identifiers(tmp_path / "o") == names                     # identifiers and their variants
    train, _ = read_split(tmp_path / "o" / "train")
    assert np.array_equal(np.asarray(train.inputs), inputs) and np.array_equal(np.asarray(train.labels), labels)
    assert summary.dummy_outputs > 0 and summary.skipped_unlabelled == 0
    assert {name for name, _ in summary.short_tasks} == {"one", "two"}
    meta = json.loads((tmp_path / "o" / "train" / "dataset.json").read_text())
    assert meta[arc.ORDER_KEY] == "official"
    # the default numbering differs, which is what the checkpoint check guards against
    arc.build_from_sources(tmp_path / "l", files, ["evaluation"], num_aug=12, seed=arc.OFFICIAL_SEED,
                           log=lambda _: None)
    assert read_identifiers(tmp_path / "l") != names
    assert json.loads((tmp_path / "l" / "train" / "dataset.json").read_text())[arc.ORDER_KEY] == "latentloop"


def test_official_order_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["data", "arc", "--source", "synthetic:3:2:6", "--canvas", "6", "--num-aug", "2", "--official-order",
                 "--out", str(out)]) == 0
    record = json.loads((out / arc.BUILD_FILE).read_text())
    assert record["seed"] == arc.OFFICIAL_SEED and record[arc.ORDER_KEY] == "official"
    assert main(["data", "arc", "--source", "synthetic:3:2", "--official-order", "--strict", "--out",
                 str(tmp_path / "s")]) == 2
    assert "--strict has no counterpart in the official builder" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--test-demos-only", "--strict"], "--test-demos-only trains on the test-set tasks' demonstration pairs alone, "
                                        "so it cannot be combined with --strict"),
    (["--test-demos-only", "--official-order"], "so it cannot be combined with --official-order"),
])
def test_test_demos_only_refuses_what_contradicts_it(tmp_path, flags, message, capsys):
    assert main(["data", "arc", "--source", "synthetic:3:2", *flags, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (tmp_path / "o").exists()


def test_test_demos_only_from_the_command_line_and_a_preset(tmp_path, capsys):
    from latentloop.api import prepare_run
    from latentloop.tasks.arc import ArcTask as ArcTaskPlugin

    out = tmp_path / "ft"
    assert main(["data", "arc", "--source", "synthetic:3:2", "--num-aug", "1", "--test-demos-only", "--out",
                 str(out)]) == 0
    assert "3 tasks outside the test set left out" in "".join(capsys.readouterr())
    assert {parse_name(n)[0] for n in _names_of(out, "train")} == {t.task_id for t in _tasks(3, 2)[3:]}
    cfg = prepare_run("cpu-arc-ttt", [f"data_path={tmp_path / 'p'}", "data.num_train=3", "data.num_test=2",
                                      "data.num_aug=1"], log=lambda _: None)
    assert cfg.data.test_demos_only and read_split(tmp_path / "p" / "train")[0].num_groups == 2
    assert "--test-demos-only" in ArcTaskPlugin.data_command(tmp_path / "p", cfg.data)
    assert main(["train", "cpu-arc-ttt", "data.test_demos_only=maybe", f"data_path={tmp_path / 'q'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "config key 'data.test_demos_only' expects bool, got 'maybe'" in err and "\n" not in err


def _official_export(tmp_path: Path, data: Path, trained_on: Path) -> Path:
    """A tiny TRM exported in the official layout, sized for the ARC dataset `data`, its config naming `trained_on`."""
    meta = json.loads((data / "train" / "dataset.json").read_text())
    cfg = RunConfig()
    cfg.model = ModelConfig(vocab_size=meta["vocab_size"], seq_len=meta["seq_len"], hidden_size=16, num_heads=2,
                            layers=1, T=1, n=1, N_sup=1, puzzle_emb_ndim=16,
                            num_puzzle_identifiers=meta["num_puzzle_identifiers"], forward_dtype="float32")
    cfg.train.data_path = str(trained_on)
    return export_official(build_model(cfg.model), cfg, tmp_path / f"export-{trained_on.name}")


def test_an_official_checkpoint_is_refused_on_rows_numbered_otherwise(tmp_path):
    spec = ["--source", "synthetic:3:2:6", "--canvas", "6", "--num-aug", "2"]
    assert main(["data", "arc", *spec, "--out", str(tmp_path / "ours")]) == 0
    assert main(["data", "arc", *spec, "--official-order", "--out", str(tmp_path / "official")]) == 0
    official = read_identifiers(tmp_path / "official")
    assert len(read_identifiers(tmp_path / "ours")) == len(official)      # same row count: loads silently otherwise
    checkpoint = _official_export(tmp_path, tmp_path / "ours", trained_on=tmp_path / "elsewhere")
    with pytest.raises(DataError, match="numbers its ARC puzzles in latentloop's order.*--official-order"):
        load_checkpoint(checkpoint, data=tmp_path / "ours")
    load_checkpoint(checkpoint, data=tmp_path / "official")
    # a build without the record is an official builder's output (or older): the arc_build.json tells them apart
    for split in ("train", "test"):
        edit = tmp_path / "official" / split / "dataset.json"
        edit.write_text(json.dumps({k: v for k, v in json.loads(edit.read_text()).items() if k != arc.ORDER_KEY}))
    (tmp_path / "official" / arc.BUILD_FILE).unlink()
    load_checkpoint(checkpoint, data=tmp_path / "official")
    # a checkpoint trained on that very build (exported from latentloop) is at home on it
    load_checkpoint(_official_export(tmp_path, tmp_path / "ours", trained_on=tmp_path / "ours"),
                    data=tmp_path / "ours")
