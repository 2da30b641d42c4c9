"""The task registry: every command finds its task here, by the name stored with the data or the checkpoint.

Built-in tasks are listed in `BUILTIN` and imported on first use. A task of your own is found through
- the ``latentloop.tasks`` entry-point group of an installed package (``name = "my_pkg.my_task:MyTask"``), or
- a Python file or module named by ``task_module=path/to/my_task.py`` in a config, ``--task-module`` on the command
  line, or ``LATENTLOOP_TASK_MODULES`` (``os.pathsep``-separated) in the environment;
in both cases the module registers its class with the `register` decorator (see docs/custom-task.md).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from latentloop.errors import ConfigError, DataError
from latentloop.tasks.base import GridStyle, MetricObserver, Task, TaskOptions, ViewerStyle

__all__ = ["BUILTIN", "GridStyle", "MetricObserver", "Task", "TaskOptions", "ViewerStyle", "get_task", "infer_task",
           "load_task_module", "register", "task_class", "task_names", "task_of_config", "task_of_dataset"]

ENTRY_POINT_GROUP = "latentloop.tasks"
MODULES_ENV = "LATENTLOOP_TASK_MODULES"
BUILTIN = {
    "sudoku": "latentloop.tasks.sudoku",
    "maze": "latentloop.tasks.maze",
    "arc": "latentloop.tasks.arc",
    "sort": "latentloop.tasks.sort",
    "prefix-sum": "latentloop.tasks.prefix_sum",
    "graph-distance": "latentloop.tasks.graph_distance",
}
_registry: dict[str, type[Task]] = {}
_loaded_modules: dict[str, str] = {}     # resolved path or module name -> the name it was given as


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a Task subclass known by its `name`."""
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name:
        raise ConfigError(f"register() takes a latentloop.tasks.Task subclass with a name, got {cls!r}")
    if cls.Options.__dataclass_fields__["task"].default not in ("", cls.name):
        raise ConfigError(f"task {cls.name!r}: its Options must not set another task name")
    known = _registry.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError(f"two tasks are named {cls.name!r}: {known.__module__}.{known.__qualname__} and "
                          f"{cls.__module__}.{cls.__qualname__}")
    _registry[cls.name] = cls
    return cls


def load_task_module(spec: str) -> None:
    """Import a task module given as a .py file or a module name; a failure names the file and its error."""
    key = str(Path(spec).resolve()) if spec.endswith(".py") else spec
    if key in _loaded_modules:
        return
    try:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(f"task module {spec}: file not found")
            # the same name in every process (hash() is salted per process), so workers find the module
            name = f"latentloop_user_task_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module   # worker processes and pickling find the module by this name
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except ConfigError:
        raise
    except Exception as exc:  # a user's module can fail in any way; the user needs the file and the reason
        sys.modules.pop(locals().get("name", ""), None)
        raise ConfigError(f"task module {spec} failed to import: {exc.__class__.__name__}: {exc}") from None
    _loaded_modules[key] = spec


def _load_environment() -> None:
    for spec in filter(None, os.environ.get(MODULES_ENV, "").split(os.pathsep)):
        load_task_module(spec)


def _entry_point_names() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def task_names() -> list[str]:
    """Every known task: built-in, registered by loaded modules, and installed entry points."""
    _load_environment()
    return sorted(set(BUILTIN) | set(_registry) | set(_entry_point_names()))


def task_class(name: str) -> type[Task]:
    """The Task class called `name`; an unknown name lists the known ones."""
    if name not in _registry:
        _load_environment()
    if name not in _registry and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _registry:
        point = _entry_point_names().get(name)
        if point is not None:
            try:
                loaded = point.load()
            except Exception as exc:  # an installed plugin can fail in any way
                raise ConfigError(f"task {name!r} (entry point {point.value}) failed to import: "
                                  f"{exc.__class__.__name__}: {exc}") from None
            if isinstance(loaded, type) and issubclass(loaded, Task) and name not in _registry:
                register(loaded)
    if name not in _registry:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(task_names())} (a task of your own: "
                        f"task_module=FILE.py or --task-module FILE.py)")
    return _registry[name]


def get_task(name: str, params: dict[str, Any] | None = None) -> Task:
    """The task `name` with its encoding parameters; bad parameters are one DataError line."""
    cls = task_class(name)
    try:
        return cls(**(params or {}))
    except TypeError as exc:
        raise DataError(f"task {name!r}: bad parameters {params!r} ({exc})") from None


def infer_task(meta: Any, data_path: Path | None = None, *, where: str = "") -> Task:
    """The task of data written before the task was stored (official datasets): the one place that looks at
    shapes. Asks for ``task=NAME`` when no built-in task, or more than one, claims the data."""
    found = []
    for name in BUILTIN:
        task = task_class(name).infer(meta, data_path)
        if task is not None:
            found.append(task)
    label = where or str(data_path or "this data")
    if len(found) != 1:
        which = " or ".join(t.name for t in found) if found else "none of the built-in tasks"
        raise DataError(f"{label} does not say which task it holds (vocab_size {meta.vocab_size}, seq_len "
                        f"{meta.seq_len} fits {which}); pass --task NAME (known: {', '.join(task_names())})")
    print(f"latentloop: {label} does not name its task; treating it as {found[0]!r}", file=sys.stderr)
    return found[0]


def task_of_dataset(data_path: str | Path, override: str = "") -> Task:
    """The task a dataset (or split folder) holds: the one its dataset.json names, else `override`, else inferred
    once."""
    from latentloop.data.format import find_metadata

    found = find_metadata(data_path)
    if found is None:
        raise DataError(f"{data_path}: no dataset here (expected train/dataset.json and test/dataset.json)")
    meta, metadata_file = found
    if meta.task:
        return get_task(meta.task, meta.task_params)
    split_dir = metadata_file.parent
    root = split_dir.parent if split_dir.name in ("train", "test") else split_dir
    if override:
        cls = task_class(override)
        task = cls.infer(meta, root)
        if task is None:
            raise DataError(f"{data_path} does not hold {override!r} data (vocab_size {meta.vocab_size}, seq_len "
                            f"{meta.seq_len})")
        return task
    return infer_task(meta, root)


def task_of_config(cfg: Any, data: str | Path | None = None, override: str = "") -> Task:
    """The task a checkpoint's model solves: recorded in its config by training, else from its dataset (`data`,
    or the one it was trained on), else inferred from the model's sizes (checkpoints of older versions)."""
    if cfg.data.task_module:
        load_task_module(cfg.data.task_module)
    if cfg.task.get("name"):
        return get_task(cfg.task["name"], cfg.task.get("params") or {})
    override = override or cfg.data.task
    data_path = Path(data or cfg.train.data_path or ".")
    if data or (data_path / "train" / "dataset.json").exists() or (data_path / "test" / "dataset.json").exists():
        return task_of_dataset(data_path, override)
    meta = SimpleNamespace(vocab_size=cfg.model.vocab_size, seq_len=cfg.model.seq_len)
    if override:
        task = task_class(override).infer(meta, None)
        if task is None:
            raise DataError(f"checkpoint {cfg.name!r} (vocab_size {meta.vocab_size}, seq_len {meta.seq_len}) is not "
                            f"a {override!r} model")
        return task
    return infer_task(meta, None, where=f"checkpoint {cfg.name!r}")
