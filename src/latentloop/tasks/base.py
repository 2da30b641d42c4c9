"""The `Task` interface: everything that differs between puzzle types lives behind it, and only there.

A task owns its dataset options (one dataclass, the single place their defaults live, shared by `latentloop data`,
presets and the API), its builder, how a user's puzzle is read, how puzzles and answers become tokens and back,
how an answer is checked, printed and drawn, the metrics its evaluation adds, and its validity-preserving
augmentations (`latentloop.tasks.augmentation`). The model, training loop and commands see only token rows and ask
the task (found through `latentloop.tasks.get_task`) for the rest.

A task instance carries its *encoding parameters* (e.g. the Sudoku size, the maze side, the ARC canvas, the sort
length): the builder writes them into ``dataset.json`` as ``"task"`` and ``"task_params"``, and the training loop
copies them into the checkpoint's config, so every command rebuilds the same task from the data or the checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from latentloop.errors import DataError
from latentloop.tasks.augmentation import IDENTITY, Augmentation

Log = Callable[[str], None]
MAX_DRAWS_PER_AUGMENTATION = 100   # draws per distinct transform before `augmentations` gives up


@dataclass
class TaskOptions:
    """How to build a task's dataset; each task subclasses this with its own fields (help in field metadata)."""

    task: str = ""                        # "" = the dataset must already exist
    task_module: str = ""                 # a .py file or module that defines the task (see latentloop.tasks)
    seed: int = field(default=0, metadata={"help": "seeds every random choice of the build"})


class MetricObserver(Protocol):
    """Streaming evaluation metrics: fed every batch (`evaluate(on_batch=...)`), reduced across ranks once."""

    def update(self, ids: np.ndarray, inputs: np.ndarray, predictions: np.ndarray, halt: np.ndarray) -> None: ...

    def metrics(self) -> dict[str, float]:
        """The metrics over every rank's examples; under torch.distributed every rank calls it."""
        ...


def sum_over_ranks(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts summed over every rank under torch.distributed (all ranks call it together); as given in one process.
    Metric observers gather their counts with it, so a rank's share of the test split adds up to the whole."""
    import torch

    tensor = torch.tensor(np.asarray(counts, dtype=np.float64))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        tensor = tensor.to("cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(tensor)
    return tensor.cpu().numpy()


@dataclass
class GridStyle:
    """How trace pictures draw one cell: its text and face colour from the token, for inputs and answers alike."""

    rows: int
    cols: int
    text: Callable[[int], str]
    color: Callable[[int], str]
    box: tuple[int, int] | None = None     # Sudoku box size, for the thick lines


@dataclass
class ViewerStyle:
    """How the HTML viewer draws a token row: cell text and colour per token id, and the grid's width."""

    labels: list[str]
    colors: list[str] | None = None
    cols: int = 0                      # 0: one row
    blank: int = -1                    # the token drawn as an empty input cell (-1: none)


class Task:
    """One kind of puzzle. Subclasses set `name`, `Options`, and implement the data, token and checking methods."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""                          # one line for `latentloop data --help`
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    verdicts: ClassVar[dict[bool, str]] = {True: "valid", False: "NOT valid"}

    def __init__(self, **params: Any) -> None:
        """`params` are the encoding parameters stored with the data (see `params`)."""
        if params:
            raise DataError(f"task {self.name!r} takes no parameters, got {sorted(params)}")

    def params(self) -> dict[str, Any]:
        """The encoding parameters that rebuild this task: written to dataset.json and the checkpoint config."""
        return {}

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    @property
    def seq_len(self) -> int:
        raise NotImplementedError

    # --- data ---------------------------------------------------------------------------------------------------

    @classmethod
    def add_data_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """`latentloop data NAME` flags: by default one per Options field, with its default and help."""
        parser.add_argument("--out", required=True, help="output folder")
        for f in dataclasses.fields(cls.Options):
            if f.name in ("task", "task_module"):
                continue
            flag = "--" + f.name.replace("_", "-")
            help_ = f"{f.metadata.get('help', '')} (default {f.default})".strip()
            if f.type in ("bool", bool):
                parser.add_argument(flag, action="store_true", default=f.default, help=help_)
            elif f.type in ("list[int]", "list[str]"):
                item = int if "int" in str(f.type) else str
                parser.add_argument(flag, type=item, nargs="+", default=f.default_factory(),  # type: ignore[misc]
                                    help=help_.replace(" (default", " (default:"))
            else:
                kind = {"int": int, "float": float, "str": str}.get(str(f.type), type(f.default))
                parser.add_argument(flag, type=kind, default=f.default, help=help_)

    @classmethod
    def options_from_args(cls, args: argparse.Namespace) -> TaskOptions:
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls.Options)
                  if f.name not in ("task", "task_module")}
        return cls.Options(task=cls.name, **values)

    @classmethod
    def build_from_args(cls, args: argparse.Namespace, log: Log) -> str:
        """What `latentloop data NAME ...` does; tasks with import modes (CSV, task files) override this."""
        return cls.build(Path(args.out), cls.options_from_args(args), log)

    @classmethod
    def build(cls, out: Path, options: TaskOptions, log: Log) -> str:
        """Write the dataset (train/ and test/, with the task in dataset.json) and return a plain-words summary."""
        raise NotImplementedError

    def write_dataset(self, out: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                      puzzles: tuple[Sequence[Any], Sequence[Any]] | None = None) -> str:
        """Write (inputs, labels) token rows as a dataset of this task: one puzzle per example, every example its
        own group, blank puzzle identifier, the task in dataset.json. The task's contract is checked first (token
        range and length; with `puzzles`, that decoding each label gives an answer `check` accepts), so a broken
        task fails in one line before anything is written."""
        from latentloop.data.format import (BLANK_IDENTIFIER_NAME, DatasetMetadata, PuzzleSplit, write_identifiers,
                                            write_split)
        from latentloop.paths import ensure_output_dir

        splits = {}
        for split_name, (inputs, labels), given in zip(("train", "test"), (train, test), puzzles or (None, None)):
            inputs, labels = np.asarray(inputs), np.asarray(labels)
            self.check_tokens(inputs, f"{split_name} inputs")
            self.check_tokens(labels, f"{split_name} labels")
            if given is not None:
                self.check_decoding(given, labels[:len(given)], split_name)
            n = len(inputs)
            splits[split_name] = PuzzleSplit.from_counts(
                inputs=inputs, labels=labels,   # write_split stores them in the official token dtype
                puzzle_identifiers=np.zeros(n, dtype=np.int32), examples_per_puzzle=np.ones(n, dtype=np.int64),
                puzzles_per_group=np.ones(n, dtype=np.int64))
        ensure_output_dir(out)
        for split_name in ("test", "train"):   # train/dataset.json last: its presence means the build is complete
            meta = DatasetMetadata.for_split(splits[split_name], vocab_size=self.vocab_size, num_puzzle_identifiers=1,
                                             task=self.name, task_params=self.params())
            write_split(Path(out) / split_name, splits[split_name], meta)
        write_identifiers(out, [BLANK_IDENTIFIER_NAME])
        return (f"wrote {len(train[0]):,} training and {len(test[0]):,} test {self.name} puzzles ({self!r}, "
                f"vocab_size {self.vocab_size}, seq_len {self.seq_len}) to {out}")

    def check_tokens(self, rows: np.ndarray, what: str) -> None:
        """The contract on token rows: integers in [0, vocab_size), shape [N, seq_len]."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.seq_len or not np.issubdtype(rows.dtype, np.integer):
            raise DataError(f"task {self.name!r}: {what} must be integer rows [N, {self.seq_len}], got "
                            f"{rows.dtype} {tuple(rows.shape)}")
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self.vocab_size):
            raise DataError(f"task {self.name!r}: {what} hold token {int(rows.min()) if rows.min() < 0 else int(rows.max())}"
                            f", outside the task's vocabulary 0..{self.vocab_size - 1}")

    def check_decoding(self, puzzles: Sequence[Any], labels: np.ndarray, what: str = "data") -> None:
        """The contract on answers: decoding a label gives an answer that `check` accepts for its puzzle."""
        try:
            answers = self.decode(np.asarray(labels))
            ok = [bool(self.check(p, a)) for p, a in zip(puzzles, answers)]
        except Exception as exc:  # a user's decode/check can fail in any way; say which task and where
            raise DataError(f"task {self.name!r}: decode/check of the {what} labels failed: "
                            f"{exc.__class__.__name__}: {exc}") from None
        if not all(ok):
            raise DataError(f"task {self.name!r}: the {what} label of puzzle {ok.index(False)} does not pass the "
                            f"task's own check")

    @classmethod
    def data_command(cls, out: Path, options: TaskOptions) -> str:
        """The `latentloop data` command that builds the same dataset (shown when a run cannot build it itself)."""
        flags = []
        for f in dataclasses.fields(options):
            value = getattr(options, f.name)
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            if f.name in ("task", "task_module") or value == default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag)
            elif isinstance(value, list):
                flags.append(f"{flag} {' '.join(map(str, value))}")
            else:
                flags.append(f"{flag} {value}")
        return " ".join(["latentloop data", cls.name, *flags, "--out", str(out)])

    @classmethod
    def infer(cls, meta: Any, data_path: Path | None) -> Task | None:
        """For datasets written before the task was stored (official ones): this task, if the data is of its kind.
        Only built-in tasks need this; `latentloop.tasks.infer_task` is its only caller."""
        return None

    # --- one puzzle ------------------------------------------------------------------------------------------------

    def parse(self, text: str, where: str = "puzzle") -> Any:
        """One puzzle from its text notation; DataError saying what was expected when it does not parse."""
        raise NotImplementedError

    def read(self, source: str) -> list[Any]:
        """A user's puzzles: a string, or a file with one puzzle, one puzzle per line, or a JSON list of strings."""
        path = Path(source)
        if not path.is_file():
            if path.suffix in (".txt", ".csv", ".json") or "/" in source:
                raise DataError(f"{source}: file not found")
            return [self.parse(source)]
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ({exc.__class__.__name__})") from None
        if path.suffix == ".json":
            try:
                items = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: unreadable JSON ({exc})") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise DataError(f"{path}: expected a JSON list of puzzle strings")
            return [self.parse(item, f"{path}[{i}]") for i, item in enumerate(items)]
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise DataError(f"{path}: no puzzle in the file")
        return [self.parse(line, f"{path}:{i}") for i, line in enumerate(lines, 1)]

    def encode(self, puzzles: Sequence[Any]) -> np.ndarray:
        """Puzzles -> input token rows [N, seq_len] (int64)."""
        raise NotImplementedError

    def decode(self, tokens: np.ndarray) -> list[Any]:
        """Answer token rows [N, seq_len] -> answers (whatever `check` and `format` take)."""
        raise NotImplementedError

    def check(self, puzzle: Any, answer: Any) -> bool:
        """Whether `answer` solves `puzzle` (task-aware: any valid answer counts, not only the labelled one)."""
        raise NotImplementedError

    def format(self, answer: Any) -> str:
        """The answer as text for a terminal (may span lines)."""
        return self.one_line(answer)

    def one_line(self, answer: Any) -> str:
        """The answer on one line, in the notation `parse` reads."""
        raise NotImplementedError

    def reference(self, puzzle: Any) -> np.ndarray | None:
        """The right answer as tokens when it is unique (drawn in traces), else None."""
        return None

    def givens(self, puzzle: Any) -> np.ndarray | None:
        """Which cells of the encoded puzzle are given (drawn in bold in traces), or None."""
        return None

    # --- augmentations ----------------------------------------------------------------------------------------------

    def augmentation_count(self) -> int:
        """How many distinct validity-preserving transforms the task has, the identity included (1: none)."""
        return 1

    def random_augmentation(self, rng: np.random.Generator, index: int) -> Augmentation:
        """One transform drawn from `rng` (duplicates are filtered by `augmentations`); tasks whose
        `augmentation_count` is above 1 implement it. `index` only names the transform."""
        raise NotImplementedError(f"task {self.name!r} declares augmentations but does not draw them")

    def augmentations(self, count: int, seed: int = 0) -> list[Augmentation]:
        """`count` distinct transforms (see `latentloop.tasks.augmentation`), the identity first, so that voting over
        one transform is plain evaluation. Draw i comes from (seed, i) alone, so the first k of `count` transforms
        are the k transforms asked for with the same seed: voting with more transforms extends the same set."""
        total = self.augmentation_count()
        if not 1 <= count <= total:
            raise DataError(f"task {self.name!r} has {total:,} distinct augmentation{'s' * (total != 1)} (the "
                            f"identity included); cannot use {count:,}")
        if seed < 0:
            raise DataError(f"an augmentation seed is a non-negative integer, got {seed}")
        chosen, keys = [IDENTITY], {IDENTITY.key()}
        for index in range(1, MAX_DRAWS_PER_AUGMENTATION * count):
            if len(chosen) == count:
                break
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
            augmentation = self.random_augmentation(rng, index)
            if augmentation.key() not in keys:
                keys.add(augmentation.key())
                chosen.append(augmentation)
        if len(chosen) < count:
            raise DataError(f"task {self.name!r}: only {len(chosen)} distinct augmentations in "
                            f"{MAX_DRAWS_PER_AUGMENTATION * count:,} draws (of {total:,} it declares)")
        return chosen

    # --- pictures and metrics ---------------------------------------------------------------------------------------

    def style(self) -> GridStyle:
        """How trace pictures draw a token row: by default one row of cells showing the token ids."""
        return GridStyle(rows=1, cols=self.seq_len, text=str, color=lambda t: "white")

    def viewer_style(self) -> ViewerStyle:
        """How the HTML viewer draws a token row: by default the token ids in one row."""
        return ViewerStyle(labels=[str(t) for t in range(self.vocab_size)])

    def metrics(self, data_path: Path | None, split: Any, meta: Any) -> MetricObserver | None:
        """Task metrics the evaluation adds to exact match (an observer fed every batch), or None."""
        return None

    def solve_command(self, args: argparse.Namespace, model: Any, cfg: Any) -> None:
        """`latentloop solve`: by default answer each puzzle once (latentloop.evaluation.solve.solve_command)."""
        from latentloop.evaluation.solve import solve_command

        solve_command(self, args, model, cfg)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({params})"
