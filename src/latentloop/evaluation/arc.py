"""ARC scoring as the papers report it: every augmented copy of a test input votes for its de-augmented answer.

Each evaluation row is a test input under one augmentation (its identifier names the variant, data/arc_grid.py). The
evaluator crops the predicted canvas, undoes the augmentation, and counts the vote under (original task, hash of the
de-augmented test input). Identical answers pool their votes; candidates rank by vote count, then by the mean halting
confidence sigmoid(q_halt) of their voters. pass@K is reported under both official conventions:

* TRM (``evaluators/arc.py``): per task, the share of its test inputs whose right answer is among the top K;
  averaged over tasks.
* HRM (``arc_eval.ipynb``): a task counts only when every one of its test inputs has the right answer among the top K.

Test inputs without an ``output`` (competition inputs) get attempts in the submission but are not scored. Votes are
plain counts and sums, so evaluators over disjoint rows merge exactly (``merge``, ``gathered`` across ranks).

Two ways to vote across evaluations (train option ``arc_votes``; ``latentloop eval`` with several checkpoints):

* ``per_eval``: each evaluation votes alone, so a number belongs to one checkpoint. Logged as ``ARC/pass@K``.
* ``pooled``: the official TRM evaluator (``evaluators/arc.py``, ``aggregated_voting=True``, its default) is made once
  per run and never clears its votes, so an evaluation votes over the predictions of every evaluation so far. Logged
  as ``ARC/pooled_pass@K`` (and ``ARC/pooled_task_pass@K``) with ``ARC/pooled_evaluations``, next to the per-eval
  numbers: the official logs' ``ARC/pass@K`` is our ``ARC/pooled_pass@K``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentloop.data.arc import TEST_PUZZLES_FILE
from latentloop.data.arc_grid import CANVAS, NUM_COLOURS, Variant, crop, grid_hash, parse_name
from latentloop.data.arc_task import ArcTask, parse_task, read_task_file
from latentloop.data.format import DatasetMetadata, read_identifiers, read_json
from latentloop.errors import DataError
from latentloop.evaluation.voting import Tally
from latentloop.paths import ensure_output_dir

PASS_KS = (1, 2, 5, 10, 100, 1000)
ARC_VOTES = ("per_eval", "pooled")   # train.arc_votes: each evaluation votes alone, or every evaluation so far
POOLED = "pooled_"                   # metric-name infix of pooled numbers: ARC/pooled_pass@K
ATTEMPTS = 2                      # Kaggle scores two attempts per test input
SHOWN_CANDIDATES = 10             # candidates per test input written for inspection
SUBMISSION_FILE = "submission.json"
CANDIDATES_FILE = "candidates.json"
SCORES_FILE = "scores.json"

Grid = list[list[int]]


def metric_names(pass_ks: Sequence[int] = PASS_KS) -> tuple[str, ...]:
    """Every pass@K name an ARC evaluation logs, per evaluation and pooled (what keep_best may name)."""
    return tuple(f"ARC/{infix}{kind}pass@{k}" for infix in ("", POOLED) for kind in ("", "task_") for k in pass_ks)


@dataclass
class Candidate:
    """One distinct answer to a test input, with the votes behind it."""

    grid: np.ndarray
    key: str                      # grid_hash(grid)
    votes: int
    mean_halt: float


@dataclass
class ArcTestInput:
    """One test pair of a task, in task order (the submission lists attempts in this order)."""

    input: np.ndarray
    output: np.ndarray | None     # None: an unlabelled (competition) test input

    @cached_property
    def key(self) -> str:
        """The hash the votes for this input are filed under."""
        return grid_hash(self.input)


def read_test_puzzles(path: str | Path) -> dict[str, list[ArcTestInput]]:
    """The scored test inputs, in order, per task: from a ``test_puzzles.json`` (the TRM builder's file) or from a
    folder of ARC task files (``{task}.json`` with ``train``/``test``, e.g. the raw evaluation set an HRM-built
    dataset came from). Tasks are read by the rules of every ARC reader (data/arc_task.py): a problem raises one
    DataError naming the file, task and pair."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DataError(f"{path}: no ARC task files (*.json) in this folder")
        tasks = [read_task_file(file) for file in files]
    else:
        raw = read_json(path)
        if not isinstance(raw, dict):
            raise DataError(f"{path}: expected a JSON object mapping task ids to tasks")
        tasks = [parse_task(puzzle, str(task), where=f"{path} task {task}") for task, puzzle in raw.items()]
    return {task.task_id: task_tests(task) for task in tasks}


def read_task_tests(puzzle: Any, where: str) -> list[ArcTestInput]:
    """The test pairs of one ARC task object (an ``output`` is optional: an unlabelled competition input)."""
    return task_tests(parse_task(puzzle, where, where=where))


def task_tests(task: ArcTask) -> list[ArcTestInput]:
    """A task's test pairs as the inputs votes are filed under."""
    return [ArcTestInput(inp, out) for inp, out in task.test]


class ArcVotes:
    """Votes per (task, de-augmented test input): {answer hash: [count, sum of halting confidences]} plus the answer
    grids. Only sums are kept, so merging evaluators over disjoint rows equals one evaluator over all of them."""

    def __init__(self) -> None:
        self.grids: dict[str, np.ndarray] = {}
        self.tally = Tally()   # (task, de-augmented test input hash) -> answers
        self.rows = 0

    def add(self, task: str, variant: Variant, input_canvas: np.ndarray, predicted_canvas: np.ndarray,
            halt: float) -> None:
        """One row's vote: crop both canvases and undo ``variant`` so every augmented copy votes in one place."""
        test_input = variant.invert(crop(input_canvas))
        answer = variant.invert(crop(predicted_canvas))
        answer_key = grid_hash(answer)
        self.grids.setdefault(answer_key, answer)
        self.tally.add((task, grid_hash(test_input)), answer_key, halt)
        self.rows += 1

    def merge(self, other: ArcVotes) -> ArcVotes:
        """Add another evaluator's votes to these (e.g. another rank's rows); returns self."""
        self.grids.update(other.grids)
        self.tally.merge(other.tally)
        self.rows += other.rows
        return self

    def state_dict(self) -> dict[str, Any]:
        """The votes as plain lists, numbers and uint8 tensors (what a checkpoint's train_state.pt may hold), exactly:
        counts are integers and the confidence sums Python floats."""
        return {"grids": {key: torch.from_numpy(grid.copy()) for key, grid in self.grids.items()},
                "tally": [[task, input_key, [[answer, int(count), float(halt)]
                                             for answer, (count, halt) in answers.items()]]
                          for (task, input_key), answers in self.tally.items()],
                "rows": self.rows}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ArcVotes:
        votes = cls()
        votes.grids = {key: grid.numpy() for key, grid in state["grids"].items()}
        votes.tally = Tally({(task, input_key): {answer: [count, halt] for answer, count, halt in answers}
                             for task, input_key, answers in state["tally"]})
        votes.rows = int(state["rows"])
        return votes

    def ranked(self, task: str, input_key: str) -> list[Candidate]:
        """Distinct answers by votes, then mean confidence; the answer hash breaks exact ties so the order does not
        depend on the order rows arrived in (or on how ranks were merged)."""
        return [Candidate(self.grids[h], h, votes, mean) for h, votes, mean in self.tally.ranked((task, input_key))]


@dataclass
class ArcScores:
    pass_at: dict[int, float]          # TRM: per-task share of test inputs right in the top K, averaged over tasks
    task_pass_at: dict[int, float]     # HRM: share of tasks with every test input right in the top K
    tasks: int                         # tasks scored (with at least one labelled test input)
    test_inputs: int                   # labelled test inputs scored
    unlabelled: int                    # test inputs without an output: in the submission, not scored
    without_votes: int                 # test inputs that no row voted for (their attempts are the fallback)
    rows: int                          # evaluation rows that voted
    padded_rows: int                   # rows with the blank identifier, skipped
    unmatched_rows: int                # rows whose (task, test input) is not in the test puzzles
    per_input_right: dict[int, int] = field(default_factory=dict)   # labelled test inputs right in the top K
    pooled: bool = False               # votes of a pool (arc_votes="pooled"), not of one evaluation
    evaluations: int = 1               # evaluations (checkpoints) whose votes these are

    def metrics(self) -> dict[str, float]:
        """Flat metrics for metrics.jsonl, under the TRM key ``ARC/pass@K`` and ``ARC/task_pass@K`` for HRM's; a
        pool's are ``ARC/pooled_pass@K`` and ``ARC/pooled_task_pass@K``, with ``ARC/pooled_evaluations``."""
        infix = POOLED if self.pooled else ""
        return {**{f"ARC/{infix}pass@{k}": v for k, v in self.pass_at.items()},
                **{f"ARC/{infix}task_pass@{k}": v for k, v in self.task_pass_at.items()},
                **({"ARC/pooled_evaluations": float(self.evaluations)} if self.pooled else {})}

    def report(self) -> str:
        ks = list(self.pass_at)
        header = "  pass@K                          " + "".join(f"{k:>8}" for k in ks)
        trm = "  TRM (share of test inputs)      " + "".join(f"{self.pass_at[k]:>8.1%}" for k in ks)
        hrm = "  HRM (tasks with every input)    " + "".join(f"{self.task_pass_at[k]:>8.1%}" for k in ks)
        pool = (f", pooled over {self.evaluations:,} evaluation{'s' if self.evaluations != 1 else ''}"
                if self.pooled else "")
        lines = [f"ARC voting: {self.rows:,} augmented predictions for {self.tasks:,} tasks "
                 f"({self.test_inputs:,} labelled test inputs){pool}", header, trm, hrm]
        if 2 in self.pass_at:
            lines.append(f"  The papers' number is pass@2: {self.pass_at[2]:.1%} by TRM's count (partial credit per "
                         f"task), {self.task_pass_at[2]:.1%} of tasks fully solved by HRM's; "
                         f"{self.per_input_right.get(2, 0):,} of {self.test_inputs:,} test inputs have the right "
                         f"answer among the two attempts.")
        notes = []
        if self.unlabelled:
            notes.append(f"{self.unlabelled:,} unlabelled test input(s) are in the submission but not scored")
        if self.without_votes:
            notes.append(f"{self.without_votes:,} test input(s) got no prediction (scored wrong; the submission "
                         f"repeats the test input as both attempts)")
        if self.unmatched_rows:
            notes.append(f"{self.unmatched_rows:,} row(s) voted for a task or test input that the test puzzles do "
                         f"not list")
        if self.padded_rows:
            notes.append(f"{self.padded_rows:,} padding row(s) (blank identifier) skipped")
        if notes:
            lines.append("  " + "; ".join(notes) + ".")
        return "\n".join(lines)


class ArcEvaluator:
    """Streams evaluation batches into votes (``update``), then scores them against the test puzzles, writes the
    Kaggle submission and the ranked candidates. One evaluator per evaluation; a pool (``pool_like``, then ``pool``
    every evaluation's evaluator into it) is the official run-long evaluator of ``aggregated_voting=True``."""

    def __init__(self, names: Sequence[str], test_puzzles: Mapping[str, list[ArcTestInput]],
                 blank_identifier_id: int = 0, pass_ks: Sequence[int] = PASS_KS) -> None:
        self.names = names
        self.test_puzzles = test_puzzles
        self.blank_identifier_id = blank_identifier_id
        self.pass_ks = tuple(pass_ks)
        self.votes = ArcVotes()
        self.padded_rows = 0
        self.pooled = False       # a pool of whole evaluations (its metrics are named ARC/pooled_*)
        self.evaluations = 1      # evaluations whose votes these are
        self._variants: dict[int, tuple[str, Variant]] = {}

    @classmethod
    def for_dataset(cls, data_path: str | Path, meta: DatasetMetadata,
                    tasks: str | Path | None = None) -> ArcEvaluator:
        """The evaluator for an ARC dataset folder: identifiers.json and test_puzzles.json (or ``tasks``)."""
        data_path = Path(data_path)
        source = Path(tasks) if tasks else data_path / TEST_PUZZLES_FILE
        if not source.exists():
            raise DataError(f"{source} not found: ARC scoring needs the test puzzles (the TRM builder writes "
                            f"{TEST_PUZZLES_FILE}; for other datasets pass the folder of ARC task files)")
        return cls(read_identifiers(data_path), read_test_puzzles(source), meta.blank_identifier_id)

    def _variant(self, identifier: int) -> tuple[str, Variant]:
        found = self._variants.get(identifier)
        if found is None:
            if not 0 <= identifier < len(self.names):
                raise DataError(f"puzzle identifier {identifier} is not in identifiers.json ({len(self.names):,} "
                                f"names): the dataset and its identifiers disagree")
            found = self._variants[identifier] = parse_name(self.names[identifier])
        return found

    def update(self, identifiers: np.ndarray, inputs: np.ndarray, predictions: np.ndarray,
               halt_probability: np.ndarray) -> None:
        """One batch: puzzle identifiers [B], input and predicted tokens [B, 900], sigmoid(q_halt) [B]. Rows with the
        blank identifier are padding; every other identifier, the un-augmented original included, votes."""
        identifiers = np.asarray(identifiers).reshape(-1)
        halt = np.asarray(halt_probability, dtype=np.float64).reshape(-1)
        for row, identifier in enumerate(identifiers.tolist()):
            if identifier == self.blank_identifier_id:
                self.padded_rows += 1
                continue
            task, variant = self._variant(identifier)
            self.votes.add(task, variant, inputs[row], predictions[row], halt[row])

    def merge(self, other: ArcEvaluator) -> ArcEvaluator:
        """Pool another evaluator's votes into this one (another rank's rows, or deliberately another evaluation)."""
        self.votes.merge(other.votes)
        self.padded_rows += other.padded_rows
        return self

    def pool_like(self) -> ArcEvaluator:
        """An empty pool for evaluations on the same test puzzles (no evaluation in it yet)."""
        pool = ArcEvaluator(self.names, self.test_puzzles, self.blank_identifier_id, self.pass_ks)
        pool.pooled, pool.evaluations = True, 0
        return pool

    def pool(self, other: ArcEvaluator) -> ArcEvaluator:
        """Add a whole evaluation's votes (all its ranks', see ``gathered``) to this pool; returns self. Pooling
        evaluations equals one vote over all their predictions, as the official evaluator that never clears them."""
        if not self.pooled:
            raise ValueError("pool() adds to a pool made by pool_like(); merge() joins the ranks of one evaluation")
        if list(other.names) != list(self.names) or other.test_puzzles.keys() != self.test_puzzles.keys():
            raise DataError("cannot pool ARC votes of evaluations on different datasets (their identifiers.json or "
                            "test puzzles differ)")
        self.merge(other)
        self.evaluations += other.evaluations
        return self

    def state_dict(self) -> dict[str, Any]:
        """A pool's votes for a checkpoint (train_state.pt), so that a resumed run pools as an uninterrupted one."""
        return {"votes": self.votes.state_dict(), "padded_rows": self.padded_rows, "evaluations": self.evaluations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.votes = ArcVotes.from_state_dict(state["votes"])
        self.padded_rows = int(state["padded_rows"])
        self.evaluations = int(state["evaluations"])

    def metrics(self) -> dict[str, float]:
        """ARC/pass@K over every rank's votes (an evaluation observer's result; every rank calls it)."""
        return self.gathered().scores().metrics()

    def report(self) -> str:
        return ("  (exact accuracy above counts each augmented copy of a test input on its own; the ARC score votes "
                "over the copies)\n" + self.scores().report())

    def gathered(self) -> ArcEvaluator:
        """Every rank's votes merged, on every rank (torch.distributed all_gather_object); a no-op in one process.
        Every rank must call it together."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self.votes, self.padded_rows))
        merged = ArcEvaluator(self.names, self.test_puzzles, self.blank_identifier_id, self.pass_ks)
        merged.pooled, merged.evaluations = self.pooled, self.evaluations
        for votes, padded in parts:
            merged.votes.merge(votes)
            merged.padded_rows += padded
        return merged

    def ranked(self, task: str, test: ArcTestInput) -> list[Candidate]:
        return self.votes.ranked(task, test.key)

    def scores(self) -> ArcScores:
        right = {k: 0 for k in self.pass_ks}
        share = {k: 0.0 for k in self.pass_ks}
        whole = {k: 0 for k in self.pass_ks}
        tasks = inputs = unlabelled = without_votes = 0
        listed: set[tuple[str, str]] = set()
        for task, tests in self.test_puzzles.items():
            labelled = [t for t in tests if t.output is not None]
            unlabelled += len(tests) - len(labelled)
            for test in tests:
                listed.add((task, test.key))
                without_votes += not self.votes.tally.get((task, test.key))
            if not labelled:
                continue
            tasks += 1
            inputs += len(labelled)
            # the rank at which each labelled input's right answer appears (inf: not among the candidates)
            ranks = [_rank_of(self.ranked(task, t), grid_hash(t.output)) for t in labelled]
            for k in self.pass_ks:
                hits = sum(r <= k for r in ranks)
                right[k] += hits
                share[k] += hits / len(labelled)
                whole[k] += hits == len(labelled)
        unmatched = sum(sum(int(c) for c, _ in answers.values())
                        for key, answers in self.votes.tally.items() if key not in listed)
        return ArcScores(pass_at={k: share[k] / tasks if tasks else 0.0 for k in self.pass_ks},
                         task_pass_at={k: whole[k] / tasks if tasks else 0.0 for k in self.pass_ks},
                         tasks=tasks, test_inputs=inputs, unlabelled=unlabelled, without_votes=without_votes,
                         rows=self.votes.rows, padded_rows=self.padded_rows, unmatched_rows=unmatched,
                         per_input_right=right, pooled=self.pooled, evaluations=self.evaluations)

    def submission(self) -> dict[str, list[dict[str, Grid]]]:
        """Kaggle ``submission.json``: two attempts for every test input of every task, in order. The attempts are
        the two best-ranked non-empty answers (an empty crop is no grid); one answer is repeated; with none at all,
        both attempts copy the test input, a well-formed guess that is occasionally right."""
        result: dict[str, list[dict[str, Grid]]] = {}
        for task, tests in self.test_puzzles.items():
            entries = []
            for test in tests:
                grids = attempts(self.ranked(task, test), test.input)
                entries.append({f"attempt_{i}": grid.tolist() for i, grid in enumerate(grids, 1)})
            result[task] = entries
        return result

    def candidates(self, limit: int = SHOWN_CANDIDATES) -> dict[str, list[dict[str, Any]]]:
        """The ranked answers of every test input (at most ``limit`` each), for reading what the vote looked like."""
        result: dict[str, list[dict[str, Any]]] = {}
        for task, tests in self.test_puzzles.items():
            entries = []
            for index, test in enumerate(tests):
                ranked = self.ranked(task, test)
                label = grid_hash(test.output) if test.output is not None else None
                entries.append({
                    "test_input": index, "labelled": label is not None, "votes": sum(c.votes for c in ranked),
                    "distinct_answers": len(ranked),
                    "candidates": [{"votes": c.votes, "mean_halt": round(c.mean_halt, 6),
                                    "correct": None if label is None else c.key == label,
                                    "grid": c.grid.tolist()} for c in ranked[:limit]]})
            result[task] = entries
        return result

    def write(self, out_dir: str | Path, scores: ArcScores | None = None) -> list[Path]:
        """Write submission.json (checked with validate_submission), candidates.json and scores.json."""
        out_dir = ensure_output_dir(out_dir)
        submission = self.submission()
        validate_submission(submission, self.test_puzzles)
        scores = scores or self.scores()
        paths = [out_dir / SUBMISSION_FILE, out_dir / CANDIDATES_FILE, out_dir / SCORES_FILE]
        for path, content in zip(paths, (submission, self.candidates(), {
                **scores.metrics(), "tasks": scores.tasks, "test_inputs": scores.test_inputs,
                "unlabelled": scores.unlabelled, "without_votes": scores.without_votes, "rows": scores.rows,
                "padded_rows": scores.padded_rows, "unmatched_rows": scores.unmatched_rows})):
            path.write_text(json.dumps(content))
        return paths


def attempts(ranked: list[Candidate], test_input: np.ndarray) -> list[np.ndarray]:
    """The ATTEMPTS grids to submit: the best-ranked non-empty answers, the first repeated when there are fewer,
    a copy of the test input when there are none."""
    grids = [c.grid for c in ranked if c.grid.size][:ATTEMPTS] or [test_input]
    return grids + [grids[0]] * (ATTEMPTS - len(grids))


def _rank_of(ranked: list[Candidate], answer_key: str) -> float:
    """The 1-based rank of the right answer among the candidates, inf when no row proposed it."""
    return next((i for i, c in enumerate(ranked, 1) if c.key == answer_key), float("inf"))


def validate_submission(submission: Any, test_puzzles: Mapping[str, Any]) -> None:
    """Raise a DataError naming the first problems unless ``submission`` is a well-formed Kaggle ARC submission for
    ``test_puzzles`` (as read_test_puzzles returns it, or the raw tasks of a test_puzzles.json): every task, one entry
    per test input, each with attempt_1 and attempt_2 as rectangular grids of integers 0-9, at most 30x30."""
    problems: list[str] = []
    if not isinstance(submission, dict):
        raise DataError(f"a submission is a JSON object of task ids, got {type(submission).__name__}")
    missing = [task for task in test_puzzles if task not in submission]
    extra = [task for task in submission if task not in test_puzzles]
    if missing:
        problems.append(f"missing tasks {missing[:3]}")
    if extra:
        problems.append(f"unknown tasks {extra[:3]}")
    for task, tests in test_puzzles.items():
        if task not in submission:
            continue
        entries = submission[task]
        tests = tests.get("test", []) if isinstance(tests, dict) else tests
        if not isinstance(entries, list) or len(entries) != len(tests):
            count = len(entries) if isinstance(entries, list) else type(entries).__name__
            problems.append(f"task {task}: {count} entries for {len(tests)} test inputs")
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != {f"attempt_{a}" for a in range(1, ATTEMPTS + 1)}:
                keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
                problems.append(f"task {task} test {i}: needs exactly attempt_1 and attempt_2, got {keys}")
                continue
            for name, grid in entry.items():
                problem = _grid_problem(grid)
                if problem:
                    problems.append(f"task {task} test {i} {name}: {problem}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError("invalid submission: " + "; ".join(problems[:3]) + more)


def _grid_problem(grid: Any) -> str | None:
    """Why ``grid`` is not a Kaggle ARC grid, or None."""
    if not isinstance(grid, list) or not grid or not all(isinstance(row, list) and row for row in grid):
        return "not a non-empty list of non-empty rows"
    if len({len(row) for row in grid}) != 1:
        return "ragged rows"
    if len(grid) > CANVAS or len(grid[0]) > CANVAS:
        return f"{len(grid)}x{len(grid[0])} is larger than {CANVAS}x{CANVAS}"
    if not all(type(cell) is int and 0 <= cell < NUM_COLOURS for row in grid for cell in row):
        return "cells must be integers 0-9"
    return None
