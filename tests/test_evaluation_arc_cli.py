"""ARC end to end on a tiny dataset written here in the official layout: training logs ARC/pass@K when it
evaluates, `latentloop eval` prints the voted scores and writes a valid submission, `latentloop solve` answers one
task file by voting (or fits fresh embedding rows for an unseen task) and draws it, and bad task files end in one
line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from latentloop.api import report_training
from latentloop.cli import main
from latentloop.data.arc_grid import Variant, encode_grid
from latentloop.data.format import BLANK_IDENTIFIER_NAME, DatasetMetadata, build_split, write_identifiers, write_split
from latentloop.evaluation.arc import PASS_KS, ArcVotes, read_test_puzzles, validate_submission
from latentloop.evaluation.evaluate import EvalResult
from latentloop.tasks.arc import ArcTask, adapt_embedding, blank_variants, known_variants
from latentloop.models.losses import IGNORE_LABEL, softmax_cross_entropy
from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint
from latentloop.training.loop import TrainResult
from test_training_loop import TINY

VARIANTS = 4


def _task(rng: np.random.Generator, tests: int) -> dict:
    """A task whose rule is "mirror left-right", so the demos and the tests agree."""
    def pair() -> dict:
        grid = rng.integers(0, 10, size=(int(rng.integers(2, 5)), int(rng.integers(2, 5))))
        return {"input": grid.tolist(), "output": grid[:, ::-1].tolist()}

    return {"train": [pair(), pair()], "test": [pair() for _ in range(tests)]}


def write_arc_dataset(root: Path, seed: int = 0) -> dict[str, dict]:
    """Two training tasks (all pairs in train) and two evaluation tasks (demos in train, test pairs in test), each
    under VARIANTS augmentations with their own identifier; the second evaluation task has an unlabelled test input,
    as a competition set does. Returns the evaluation tasks as test_puzzles.json holds them."""
    rng = np.random.default_rng(seed)
    tasks = {"train_a": _task(rng, 1), "train_b": _task(rng, 1), "eval_a": _task(rng, 1), "eval_b": _task(rng, 2)}
    del tasks["eval_b"]["test"][1]["output"]
    names = [BLANK_IDENTIFIER_NAME]
    train_groups, test_groups = [], []

    def rows(pairs: list[dict], variant: Variant) -> list:
        def canvas(grid) -> np.ndarray:
            return encode_grid(variant.apply(np.asarray(grid, dtype=np.uint8)))
        return [(canvas(p["input"]), canvas(p.get("output", [[0]]))) for p in pairs]

    for task, puzzle in tasks.items():
        variants = [Variant()] + [Variant.random(rng) for _ in range(VARIANTS - 1)]
        train_puzzles, test_puzzles = [], []
        for variant in variants:
            names.append(variant.name(task))
            in_train = puzzle["train"] + (puzzle["test"] if task.startswith("train") else [])
            train_puzzles.append((len(names) - 1, rows(in_train, variant)))
            if task.startswith("eval"):
                test_puzzles.append((len(names) - 1, rows(puzzle["test"], variant)))
        train_groups.append(train_puzzles)
        if test_puzzles:
            test_groups.append(test_puzzles)
    for name, groups in (("train", train_groups), ("test", test_groups)):
        split = build_split(groups, seq_len=900)
        meta = DatasetMetadata.for_split(split, vocab_size=12, num_puzzle_identifiers=len(names))
        write_split(root / name, split, meta)
    write_identifiers(root, names)
    evaluation = {t: p for t, p in tasks.items() if t.startswith("eval")}
    (root / "test_puzzles.json").write_text(json.dumps(evaluation))
    (root / "tasks").mkdir()
    for task, puzzle in tasks.items():
        (root / "tasks" / f"{task}.json").write_text(json.dumps(puzzle))
    return evaluation


@pytest.fixture(scope="module")
def arc_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("arc")
    data, run = root / "data", root / "run"
    write_arc_dataset(data)
    code = main(["train", "cpu-sudoku6", *TINY, f"data_path={data}", f"out_dir={run}", "data.task=", "epochs=1",
                 "eval_interval=1", "global_batch_size=8", "ema=false", "T=1", "--no-progress"])
    assert code == 0
    return data, run


def test_training_logs_arc_pass_at_k_when_it_evaluates(arc_run):
    _, run = arc_run
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval/" in line]
    assert len(evals) == 1
    for record in evals:
        for k in (1, 2, 5, 10, 100, 1000):
            assert 0.0 <= record[f"eval/ARC/pass@{k}"] <= 1.0 and 0.0 <= record[f"eval/ARC/task_pass@{k}"] <= 1.0


def test_eval_prints_the_voted_table_and_writes_a_valid_submission(arc_run, tmp_path, capsys):
    data, run = arc_run
    out = tmp_path / "arc"
    assert main(["eval", str(run), "--arc-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ARC voting: 12 augmented predictions for 2 tasks (2 labelled test inputs)" in text
    assert "TRM (share of test inputs)" in text and "HRM (tasks with every input)" in text
    assert "pass@2" in text and "1 unlabelled test input(s) are in the submission but not scored" in text
    submission = json.loads((out / "submission.json").read_text())
    validate_submission(submission, read_test_puzzles(data / "test_puzzles.json"))
    assert [len(submission[t]) for t in ("eval_a", "eval_b")] == [1, 2]
    candidates = json.loads((out / "candidates.json").read_text())
    assert sum(c["votes"] for c in candidates["eval_b"][1]["candidates"]) == VARIANTS
    assert candidates["eval_b"][1]["labelled"] is False
    # per-puzzle halting feeds the votes too
    assert main(["eval", str(run), "--halt-early", "--arc-out", str(tmp_path / "h")]) == 0
    assert "ARC voting: 12 augmented predictions" in capsys.readouterr().out
    validate_submission(json.loads((tmp_path / "h" / "submission.json").read_text()),
                        read_test_puzzles(data / "test_puzzles.json"))
    # the same scores from a folder of task files (the way to score a dataset without test_puzzles.json)
    assert main(["eval", str(run), "--arc-tasks", str(data / "tasks"), "--arc-out", str(tmp_path / "b"),
                 "--max-examples", "4"]) == 0
    text = capsys.readouterr().out
    assert "ARC voting: 4 augmented predictions for 4 tasks" in text and "got no prediction" in text


def test_eval_defaults_to_a_folder_beside_the_checkpoint(arc_run, capsys):
    _, run = arc_run
    assert main(["eval", str(run)]) == 0
    written = [p for p in (run / "checkpoints").glob("arc_step_*/submission.json")]
    assert len(written) == 1 and str(written[0]) in capsys.readouterr().out


def _pooled_run(data: Path, run: Path, epochs: int, *flags: str) -> int:
    """A tiny ARC run with arc_votes=pooled: 1.25 steps per epoch, so epochs=2 is 2 steps, one evaluation each."""
    return main(["train", "cpu-sudoku6", *TINY, f"data_path={data}", f"out_dir={run}", "data.task=", f"epochs={epochs}",
                 "eval_interval=1", "global_batch_size=8", "ema=false", "T=1", "arc_votes=pooled", "--no-progress",
                 *flags])


def _pool_of(run: Path) -> tuple[ArcVotes, int]:
    state = torch.load(resolve_checkpoint(run) / "train_state.pt", weights_only=True)["arc_votes"]
    return ArcVotes.from_state_dict(state["votes"]), state["evaluations"]


def test_pooled_votes_are_logged_by_name_and_a_resumed_run_pools_exactly(tmp_path, capsys):
    data, full, half = tmp_path / "data", tmp_path / "full", tmp_path / "half"
    write_arc_dataset(data)
    assert _pooled_run(data, full, 2) == 0
    records = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    first, second = [r for r in records if "eval/ARC/pass@2" in r]
    assert (first["eval/ARC/pooled_evaluations"], second["eval/ARC/pooled_evaluations"]) == (1.0, 2.0)
    for k in PASS_KS:   # the first pool holds the first evaluation only
        assert first[f"eval/ARC/pooled_pass@{k}"] == first[f"eval/ARC/pass@{k}"]
    votes, evaluations = _pool_of(full)
    assert evaluations == 2 and votes.rows == 2 * 12
    # stopped after the first evaluation and resumed: the pool comes back from the checkpoint
    assert _pooled_run(data, half, 1) == 0
    assert _pooled_run(data, half, 2, "--resume") == 0
    resumed_votes, resumed_evaluations = _pool_of(half)
    assert resumed_evaluations == 2 and resumed_votes.tally == votes.tally and resumed_votes.rows == votes.rows
    last = [json.loads(line) for line in (half / "metrics.jsonl").read_text().splitlines()][-1]
    assert {k: v for k, v in last.items() if "ARC/" in k} == {k: v for k, v in second.items() if "ARC/" in k}

    # `eval` pools checkpoints explicitly: one vote over both checkpoints' predictions
    checkpoints = sorted(str(c) for c in (full / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 2
    capsys.readouterr()
    out = tmp_path / "pooled"
    assert main(["eval", *checkpoints, "--arc-votes", "pooled", "--arc-out", str(out)]) == 0
    assert "pooled over 2 evaluations" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["ARC/pooled_evaluations"] == 2 and scores["rows"] == 2 * 12 and "ARC/pass@2" not in scores
    candidates = json.loads((out / "candidates.json").read_text())
    assert sum(c["votes"] for c in candidates["eval_b"][1]["candidates"]) == 2 * VARIANTS
    assert all((Path(c).parent / f"arc_{Path(c).name}" / "submission.json").is_file() for c in checkpoints)


def test_solve_a_known_task_votes_over_its_augmentations_and_draws_them(arc_run, tmp_path, capsys):
    data, run = arc_run
    task_file = data / "tasks" / "eval_a.json"
    png = tmp_path / "eval_a.png"
    assert main(["solve", str(task_file), "--checkpoint", str(run), "--png", str(png),
                 "--out", str(tmp_path / "attempts.json")]) == 0
    text = capsys.readouterr().out
    assert f"task eval_a: {VARIANTS} trained augmentation(s) vote" in text
    assert "attempt 1 (" in text and "attempt 2 (" in text
    assert ("right: an attempt matches" in text) or ("wrong: neither attempt matches" in text)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    attempts = json.loads((tmp_path / "attempts.json").read_text())
    validate_submission(attempts, {"eval_a": read_test_puzzles(data / "test_puzzles.json")["eval_a"]})


def test_solve_an_unseen_task_says_so_and_uses_the_blank_embedding(arc_run, tmp_path, capsys):
    _, run = arc_run
    task_file = tmp_path / "new_task.json"
    task_file.write_text(json.dumps({"train": [{"input": [[1, 2]], "output": [[2, 1]]}],
                                     "test": [{"input": [[3, 4]]}]}))
    assert main(["solve", str(task_file), "--checkpoint", str(run), "--png", str(tmp_path / "n.png")]) == 0
    text = capsys.readouterr().out
    assert "task new_task is not in" in text and "32 copies (8 symmetries x 4 colourings)" in text
    assert "no known output in the file" in text and (tmp_path / "n.png").exists()


def test_known_variants_read_both_official_name_formats():
    names = [BLANK_IDENTIFIER_NAME, "abc", "abc|||t1|||0123456789", "abcd|||t1|||0123456789", "abc_t2_0987654321",
             "ab"]
    assert [i for i, _ in known_variants("abc", names)] == [1, 2, 4]
    assert len({v for _, v in blank_variants(4)}) == 32


@pytest.mark.parametrize("content, problem", [
    ("{not json", "unreadable JSON"),
    ('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1, 2], [3]]}]}', "ragged grid"),
    ('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [' + ",".join(["[1]"] * 31) + "]}]}",
     "larger than the 30x30"),
    ('{"train": [{"input": [[10]], "output": [[1]]}], "test": [{"input": [[1]]}]}', "not a colour 0-9"),
    ('{"train": [{"input": [[1]], "output": [[1]]}]}', "expected an object with 'train' and 'test' lists"),
    ('{"train": [], "test": [{"input": [[1]]}]}', "no demonstration ('train') pairs"),
    ('{"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}', "train pair 0: missing 'output' grid"),
    ("[1, 2]", "not an ARC task"),
])
def test_bad_task_files_end_in_one_line(arc_run, tmp_path, content, problem, capsys):
    _, run = arc_run
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code = main(["solve", str(bad), "--checkpoint", str(run), "--png", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and "bad.json" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_solve_without_identifiers_fails_clearly(arc_run, tmp_path, capsys):
    data, run = arc_run
    code = main(["solve", str(data / "tasks" / "eval_a.json"), "--checkpoint", str(run), "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "identifiers.json not found" in err and len(err.strip().splitlines()) == 1


def _demo_loss(model, task, identifiers) -> float:
    """The model's mean loss on the task's demo pairs under each (identifier, variant), after all supervision
    steps."""
    inputs = np.stack([encode_grid(v.apply(x)) for _, v in identifiers for x, _ in task.train]).astype(np.int64)
    labels = np.stack([encode_grid(v.apply(y)) for _, v in identifiers for _, y in task.train]).astype(np.int64)
    ids = np.repeat([i for i, _ in identifiers], len(task.train))
    labels = torch.as_tensor(np.where(labels == 0, IGNORE_LABEL, labels))
    with torch.no_grad():
        state = model.inner.initial_state(len(inputs), "cpu")
        for _ in range(model.N_sup):
            state, out = model.inner(state, torch.as_tensor(inputs), torch.as_tensor(ids))
        return float(softmax_cross_entropy(out.logits, labels).sum() / (labels != IGNORE_LABEL).sum())


def test_adapting_fits_fresh_rows_for_an_unseen_task_with_the_network_frozen(arc_run):
    data, run = arc_run
    model, cfg = load_checkpoint(run)
    task = ArcTask().read_task(str(data / "tasks" / "eval_a.json"), task_id="unseen")
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rows = model.inner.puzzle_emb.num_embeddings
    fresh = [v for _, v in blank_variants(1)][:2]
    before = _demo_loss(model, task, [(0, v) for v in fresh])
    identifiers = adapt_embedding(model, task, fresh, steps=1, lr=1e-2)
    assert [i for i, _ in identifiers] == [rows, rows + 1]
    table = model.inner.puzzle_emb.weights
    assert table.shape[0] == rows + 2 and bool((table[rows:] != 0).all())
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items() if not k.endswith("puzzle_emb.weights"))
    assert torch.equal(table[:rows], weights["inner.encoder.puzzle_emb.weights"])
    assert all(p.requires_grad for p in model.parameters()) and not model.training
    assert _demo_loss(model, task, identifiers) < before


def test_solve_adapts_an_unseen_task_on_request(arc_run, tmp_path, capsys):
    data, run = arc_run
    task_file = tmp_path / "fresh.json"
    task_file.write_text((data / "tasks" / "eval_a.json").read_text())
    assert main(["solve", str(task_file), "--checkpoint", str(run), "--adapt-steps", "1", "--colourings", "1",
                 "--png", str(tmp_path / "f.png")]) == 0
    text = capsys.readouterr().out
    assert "fitting 8 fresh embedding rows (8 symmetries x 1 colouring) on its 2 demo pair(s)" in text
    assert "attempt 2 (" in text


def test_bad_adapt_settings_end_in_one_line(arc_run, capsys):
    data, run = arc_run
    code = main(["solve", str(data / "tasks" / "eval_a.json"), "--checkpoint", str(run), "--colourings", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--colourings 1 or more" in err and len(err.strip().splitlines()) == 1


def test_the_training_summary_names_the_arc_score(arc_run):
    _, run = arc_run
    final = EvalResult(exact_accuracy=0.0, accuracy=0.5, q_halt_accuracy=1.0, lm_loss=1.0, steps=2.0, num_examples=12,
                       metrics={"ARC/pass@2": 0.25, "ARC/task_pass@2": 0.0})
    text = report_training(TrainResult(run_dir=run, steps=1, seconds=1.0, num_params=1, final_eval=final, history=[]))
    assert "ARC pass@2, voting over the augmented copies: 25.0% (TRM" in text and "0.0% (HRM" in text
    assert "pooled" not in text
    final.metrics.update({"ARC/pooled_pass@2": 0.5, "ARC/pooled_task_pass@2": 0.25, "ARC/pooled_evaluations": 3.0})
    text = report_training(TrainResult(run_dir=run, steps=1, seconds=1.0, num_params=1, final_eval=final, history=[]))
    assert "ARC pass@2 pooled over all 3 evaluations' votes" in text and "50.0% (TRM), 25.0% (HRM)" in text


def test_arc_data_without_test_puzzles_says_how_to_score_it(arc_run, tmp_path, capsys, toy_dataset):
    data, run = arc_run
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    (bare / "test_puzzles.json").unlink()                   # as an HRM-built dataset
    assert main(["eval", str(run), "--data", str(bare), "--max-examples", "1"]) == 0
    assert "no ARC score: " in capsys.readouterr().out
    other = tmp_path / "toy-run"                            # a checkpoint of another task
    assert main(["train", "cpu-sudoku6", *TINY, f"data_path={toy_dataset}", f"out_dir={other}", "data.task=",
                 "epochs=1", "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["eval", str(other), "--arc-tasks", str(data / "tasks")])
    err = capsys.readouterr().err
    assert code == 2 and "--arc-tasks scores ARC data" in err and len(err.strip().splitlines()) == 1
