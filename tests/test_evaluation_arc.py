"""ARC voting: augmented copies vote for their de-augmented answers, pass@K under the TRM and HRM conventions,
merging across ranks, and the Kaggle submission, on small tasks built here."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from latentloop.data.arc_grid import Variant, encode_grid
from latentloop.data.format import BLANK_IDENTIFIER_NAME
from latentloop.errors import DataError
from latentloop.evaluation.arc import (PASS_KS, ArcEvaluator, metric_names, read_task_tests,
                                       validate_submission)

NUM_VARIANTS = 6


def make_tasks(num_tasks: int = 3, tests_per_task: int = 1, seed: int = 0) -> dict[str, dict]:
    """Random tasks (the answers need not follow a rule here): a demo pair and some labelled test pairs."""
    rng = np.random.default_rng(seed)

    def grid() -> list[list[int]]:
        return rng.integers(0, 10, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)))).tolist()

    return {f"task{t}": {"train": [{"input": grid(), "output": grid()}],
                         "test": [{"input": grid(), "output": grid()} for _ in range(tests_per_task)]}
            for t in range(num_tasks)}


def variants(seed: int = 1) -> list[Variant]:
    """The identity (its name is the bare task id) and random augmentations."""
    rng = np.random.default_rng(seed)
    return [Variant()] + [Variant.random(rng) for _ in range(NUM_VARIANTS - 1)]


def evaluation_rows(tasks: dict[str, dict], answer=None, halt=None, seed: int = 1):
    """identifiers.json names and the rows an evaluation would stream: every test input under every variant, with
    the prediction ``answer(task, test_index, variant, true_output)`` (default: the right answer) pushed through the
    variant, as the model would have to produce it."""
    names = [BLANK_IDENTIFIER_NAME]
    ids, inputs, preds, halts = [], [], [], []
    for task, puzzle in tasks.items():
        for v, variant in enumerate(variants(seed)):
            names.append(variant.name(task))
            for i, pair in enumerate(puzzle["test"]):
                output = np.asarray(pair.get("output", [[0]]), dtype=np.uint8)
                predicted = output if answer is None else answer(task, i, v, output)
                ids.append(len(names) - 1)
                inputs.append(encode_grid(variant.apply(np.asarray(pair["input"], dtype=np.uint8))))
                preds.append(encode_grid(variant.apply(predicted)))
                halts.append(0.5 if halt is None else halt(task, i, v))
    return names, np.asarray(ids), np.stack(inputs), np.stack(preds), np.asarray(halts, dtype=np.float64)


def evaluator_for(tasks: dict[str, dict], names: list[str]) -> ArcEvaluator:
    return ArcEvaluator(names, {t: read_task_tests(p, t) for t, p in tasks.items()})


def scored(tasks, **rows_kwargs):
    names, *rows = evaluation_rows(tasks, **rows_kwargs)
    evaluator = evaluator_for(tasks, names)
    evaluator.update(*rows)
    return evaluator, evaluator.scores()


def shifted(grid: np.ndarray) -> np.ndarray:
    """A wrong answer of the same shape."""
    return ((grid.astype(np.int64) + 1) % 10).astype(np.uint8)


def test_oracle_answers_through_every_augmentation_score_100_percent():
    tasks = make_tasks(num_tasks=4, tests_per_task=2)
    evaluator, scores = scored(tasks)
    assert scores.rows == 4 * 2 * NUM_VARIANTS and scores.unmatched_rows == 0 and scores.padded_rows == 0
    assert all(v == 1.0 for v in scores.pass_at.values()) and all(v == 1.0 for v in scores.task_pass_at.values())
    assert (scores.tasks, scores.test_inputs, scores.per_input_right[2]) == (4, 8, 8)
    # every variant agreed: one candidate with all the votes, and it is the submission's first attempt
    (only,) = evaluator.ranked("task0", evaluator.test_puzzles["task0"][0])
    assert only.votes == NUM_VARIANTS
    assert evaluator.submission()["task0"][0]["attempt_1"] == tasks["task0"]["test"][0]["output"]


def test_hrm_identifier_names_are_undone_the_same_way():
    tasks = make_tasks(num_tasks=2, tests_per_task=2)
    names, *rows = evaluation_rows(tasks, answer=lambda task, i, v, out: out if i == 0 else shifted(out))
    hrm_names = [n.replace("|||", "_") for n in names]    # task0|||t3|||0123456789 -> task0_t3_0123456789
    assert hrm_names[2].startswith("task0_t") and hrm_names[2] != names[2]
    trm, hrm = evaluator_for(tasks, names), evaluator_for(tasks, hrm_names)
    trm.update(*rows)
    hrm.update(*rows)
    assert hrm.scores() == trm.scores() and hrm.scores().pass_at[2] == 0.5


def test_wrong_answers_score_zero():
    _, scores = scored(make_tasks(), answer=lambda task, i, v, out: shifted(out))
    assert all(v == 0.0 for v in scores.pass_at.values()) and all(v == 0.0 for v in scores.task_pass_at.values())


def test_votes_decide_and_mean_halt_confidence_breaks_ties():
    tasks = make_tasks(num_tasks=1)
    # variants 0-2 answer right, 3-5 wrong: a tie on votes, decided by the mean confidence of each side's voters
    def answer(task, i, v, out):
        return out if v < 3 else shifted(out)

    _, right_more_confident = scored(tasks, answer=answer, halt=lambda t, i, v: 0.9 if v < 3 else 0.2)
    assert right_more_confident.pass_at[1] == 1.0
    _, wrong_more_confident = scored(tasks, answer=answer, halt=lambda t, i, v: 0.2 if v < 3 else 0.9)
    assert wrong_more_confident.pass_at[1] == 0.0 and wrong_more_confident.pass_at[2] == 1.0
    # one more vote outweighs any confidence
    _, outvoted = scored(tasks, answer=lambda t, i, v, out: out if v < 2 else shifted(out),
                         halt=lambda t, i, v: 1.0 if v < 2 else 0.0)
    assert outvoted.pass_at[1] == 0.0


def test_partial_tasks_count_half_for_trm_and_nothing_for_hrm():
    tasks = make_tasks(num_tasks=1, tests_per_task=2)
    _, scores = scored(tasks, answer=lambda task, i, v, out: out if i == 0 else shifted(out))
    assert scores.pass_at[2] == 0.5 and scores.task_pass_at[2] == 0.0 and scores.per_input_right[2] == 1


def test_padded_rows_are_skipped_but_the_original_task_votes():
    tasks = make_tasks(num_tasks=2)
    names, ids, inputs, preds, halts = evaluation_rows(tasks)
    assert names[ids[0]] == "task0"              # identifier 1: the un-augmented original, it must vote
    padding = 5
    evaluator = evaluator_for(tasks, names)
    evaluator.update(np.concatenate([ids, np.zeros(padding, dtype=ids.dtype)]),
                     np.concatenate([inputs, np.zeros((padding, 900), dtype=inputs.dtype)]),
                     np.concatenate([preds, np.full((padding, 900), 5, dtype=preds.dtype)]),
                     np.concatenate([halts, np.ones(padding)]))
    scores = evaluator.scores()
    assert scores.padded_rows == padding and scores.rows == len(ids) and scores.pass_at[1] == 1.0


def test_merging_partial_evaluators_equals_one_evaluator_over_all_rows():
    tasks = make_tasks(num_tasks=3, tests_per_task=2)
    rng = np.random.default_rng(3)
    names, *rows = evaluation_rows(tasks, answer=lambda t, i, v, out: out if v % 3 else shifted(out),
                                   halt=lambda t, i, v: float(rng.random()))
    whole = evaluator_for(tasks, names)
    whole.update(*rows)
    order = np.random.default_rng(4).permutation(len(rows[0]))
    parts = [evaluator_for(tasks, names) for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(order, 3)):
        part.update(*(r[chunk] for r in rows))
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.scores() == whole.scores()
    assert merged.submission() == whole.submission() and merged.candidates() == whole.candidates()


def test_per_eval_scores_are_named_without_a_pool():
    _, scores = scored(make_tasks(num_tasks=1, tests_per_task=2),
                       answer=lambda task, i, v, out: out if i == 0 else shifted(out))
    assert scores.metrics() == {**{f"ARC/pass@{k}": 0.5 for k in PASS_KS},
                                **{f"ARC/task_pass@{k}": 0.0 for k in PASS_KS}}
    assert set(scores.metrics()) | {f"ARC/pooled_{kind}pass@{k}" for kind in ("", "task_") for k in PASS_KS} == \
        set(metric_names())


def two_evaluations(tasks):
    """The rows of two evaluations (two checkpoints) that answer differently: the first gets task0 right under 2 of
    6 variants, the second under 3, each with its own halting confidences."""
    rng = np.random.default_rng(5)
    first = evaluation_rows(tasks, answer=lambda t, i, v, out: out if v < 2 else shifted(out),
                            halt=lambda t, i, v: float(rng.random()))
    second = evaluation_rows(tasks, answer=lambda t, i, v, out: out if v % 2 else shifted(shifted(out)),
                             halt=lambda t, i, v: float(rng.random()))
    return first[0], first[1:], second[1:]


def test_pooling_two_evaluations_equals_one_vote_over_all_their_predictions():
    tasks = make_tasks(num_tasks=3, tests_per_task=2)
    names, first_rows, second_rows = two_evaluations(tasks)
    first, second, once = (evaluator_for(tasks, names) for _ in range(3))
    first.update(*first_rows)
    second.update(*second_rows)
    once.update(*(np.concatenate([a, b]) for a, b in zip(first_rows, second_rows)))
    pool = first.pool_like()
    assert pool.pool(first) is pool and pool.pool(second).evaluations == 2
    scores, expected = pool.scores(), once.scores()
    assert scores.pass_at == expected.pass_at and scores.task_pass_at == expected.task_pass_at
    assert scores.rows == expected.rows == 2 * len(first_rows[0])
    assert pool.submission() == once.submission() and pool.candidates() == once.candidates()
    assert scores.pass_at != first.scores().pass_at      # pooling changed the vote (else the test proves nothing)
    # the pool's numbers carry its mode in their names; the evaluations themselves keep theirs
    assert scores.metrics() == {**{f"ARC/pooled_pass@{k}": v for k, v in expected.pass_at.items()},
                                **{f"ARC/pooled_task_pass@{k}": v for k, v in expected.task_pass_at.items()},
                                "ARC/pooled_evaluations": 2.0}
    assert set(first.scores().metrics()) == {f"ARC/{kind}pass@{k}" for kind in ("", "task_") for k in PASS_KS}
    assert "pooled over 2 evaluations" in scores.report()
    with pytest.raises(ValueError, match="pool_like"):
        first.pool(second)


def test_a_pool_survives_a_checkpoint_exactly(tmp_path):
    tasks = make_tasks(num_tasks=3, tests_per_task=2)
    names, first_rows, second_rows = two_evaluations(tasks)
    first, second = evaluator_for(tasks, names), evaluator_for(tasks, names)
    first.update(*first_rows)
    second.update(*second_rows)
    pool = first.pool_like().pool(first)
    torch.save({"arc_votes": pool.state_dict()}, tmp_path / "state.pt")
    resumed = first.pool_like()
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True)["arc_votes"])
    pool.pool(second)
    resumed.pool(second)
    assert resumed.scores() == pool.scores() and resumed.candidates() == pool.candidates()
    assert resumed.votes.tally == pool.votes.tally and resumed.evaluations == 2


def test_only_evaluations_of_the_same_dataset_pool():
    tasks = make_tasks(num_tasks=2)
    names, *rows = evaluation_rows(tasks)
    other = evaluator_for(tasks, names[:-1])
    with pytest.raises(DataError, match="different datasets"):
        evaluator_for(tasks, names).pool_like().pool(other)


def test_submission_is_always_valid_with_unlabelled_inputs_and_missing_predictions():
    tasks = make_tasks(num_tasks=4, tests_per_task=2)
    del tasks["task1"]["test"][1]["output"]                  # a competition input: submitted, not scored
    names, ids, inputs, preds, halts = evaluation_rows(tasks)
    keep = np.array([names[i].split("|||")[0] not in ("task2", "task3") for i in ids])
    keep &= ~((np.arange(len(ids)) % 2 == 1) & (ids <= NUM_VARIANTS))   # task0's second test input gets no rows
    evaluator = evaluator_for(tasks, names)
    evaluator.update(ids[keep], inputs[keep], preds[keep], halts[keep])
    submission = evaluator.submission()
    validate_submission(submission, evaluator.test_puzzles)
    assert [len(submission[t]) for t in tasks] == [2, 2, 2, 2]
    # no prediction at all: both attempts copy the test input
    assert submission["task3"][0] == {"attempt_1": tasks["task3"]["test"][0]["input"],
                                      "attempt_2": tasks["task3"]["test"][0]["input"]}
    # one candidate: repeated
    assert submission["task1"][1]["attempt_1"] == submission["task1"][1]["attempt_2"]
    scores = evaluator.scores()
    assert scores.unlabelled == 1 and scores.without_votes == 5 and scores.test_inputs == 7
    assert scores.pass_at[2] == pytest.approx((0.5 + 1 + 0 + 0) / 4) and scores.task_pass_at[2] == 0.25
    assert "1 unlabelled test input" in scores.report() and "5 test input(s) got no prediction" in scores.report()


def test_empty_crops_vote_but_are_never_submitted():
    tasks = make_tasks(num_tasks=1)
    names, ids, inputs, preds, halts = evaluation_rows(tasks)
    preds[:-1] = 0                                  # all but one row predict nothing readable (PAD at the corner)
    evaluator = evaluator_for(tasks, names)
    evaluator.update(ids, inputs, preds, halts)
    first, second = evaluator.ranked("task0", evaluator.test_puzzles["task0"][0])
    assert first.grid.size == 0 and first.votes == NUM_VARIANTS - 1
    assert evaluator.submission()["task0"][0]["attempt_1"] == tasks["task0"]["test"][0]["output"]
    assert evaluator.scores().pass_at[1] == 0.0 and evaluator.scores().pass_at[2] == 1.0


def _valid_submission() -> tuple[dict, dict]:
    tasks = make_tasks(num_tasks=2, tests_per_task=2)
    names, *rows = evaluation_rows(tasks)
    evaluator = evaluator_for(tasks, names)
    evaluator.update(*rows)
    return evaluator.submission(), evaluator.test_puzzles


@pytest.mark.parametrize("break_it, problem", [
    (lambda s: s.pop("task1"), "missing tasks"),
    (lambda s: s.update(extra=[]), "unknown tasks"),
    (lambda s: s["task0"].pop(), "1 entries for 2 test inputs"),
    (lambda s: s["task0"][0].pop("attempt_2"), "needs exactly attempt_1 and attempt_2"),
    (lambda s: s["task0"][0].update(attempt_3=[[1]]), "needs exactly attempt_1 and attempt_2"),
    (lambda s: s["task0"][0].update(attempt_1=[[1, 2], [3]]), "ragged"),
    (lambda s: s["task0"][0].update(attempt_1=[[10]]), "integers 0-9"),
    (lambda s: s["task0"][0].update(attempt_1=[[1.0]]), "integers 0-9"),
    (lambda s: s["task0"][0].update(attempt_1=[[True]]), "integers 0-9"),
    (lambda s: s["task0"][0].update(attempt_1=[[1] * 31]), "larger than 30x30"),
    (lambda s: s["task0"][0].update(attempt_1=[]), "non-empty"),
    (lambda s: s.update(task0={"attempt_1": [[1]]}), "entries for 2 test inputs"),
])
def test_validate_submission_rejects_malformed_ones(break_it, problem):
    submission, test_puzzles = _valid_submission()
    validate_submission(submission, test_puzzles)
    validate_submission(submission, make_tasks(num_tasks=2, tests_per_task=2))   # raw test_puzzles.json tasks
    broken = copy.deepcopy(submission)
    break_it(broken)
    with pytest.raises(DataError, match=problem):
        validate_submission(broken, test_puzzles)


def test_an_identifier_beyond_identifiers_json_is_named():
    tasks = make_tasks(num_tasks=1)
    names, ids, inputs, preds, halts = evaluation_rows(tasks)
    evaluator = evaluator_for(tasks, names[:3])
    with pytest.raises(DataError, match="identifier 3 is not in identifiers.json"):
        evaluator.update(ids, inputs, preds, halts)


GATHER_SCRIPT = """
import json, sys
import numpy as np
import torch.distributed as dist
from latentloop.evaluation.arc import ArcEvaluator, read_task_tests

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
saved = np.load(sys.argv[1])
tasks = json.loads(open(sys.argv[2]).read())
names = json.loads(open(sys.argv[3]).read())
evaluator = ArcEvaluator(names, {t: read_task_tests(p, t) for t, p in tasks.items()})
share = np.array_split(np.arange(len(saved["ids"])), world)[rank]
evaluator.update(*(saved[k][share] for k in ("ids", "inputs", "preds", "halts")))
merged = evaluator.gathered()
json.dump({"rows": merged.votes.rows, "local": evaluator.votes.rows, "metrics": merged.scores().metrics(),
           "submission": merged.submission()}, open(f"{sys.argv[4]}.{rank}", "w"))
dist.barrier()  # gloo aborts a process that tears down its connections while a peer still uses them
dist.destroy_process_group()
"""


def test_two_gloo_ranks_gather_their_votes(tmp_path):
    tasks = make_tasks(num_tasks=3, tests_per_task=2)
    names, ids, inputs, preds, halts = evaluation_rows(
        tasks, answer=lambda t, i, v, out: out if v % 2 else shifted(out), halt=lambda t, i, v: 0.1 * v)
    np.savez(tmp_path / "rows.npz", ids=ids, inputs=inputs, preds=preds, halts=halts)
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    (tmp_path / "names.json").write_text(json.dumps(names))
    (tmp_path / "gather.py").write_text(GATHER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(tmp_path / "gather.py"), *(str(tmp_path / f) for f in ("rows.npz", "tasks.json",
                                                                                       "names.json", "out"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    whole = evaluator_for(tasks, names)
    whole.update(ids, inputs, preds, halts)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"out.{rank}").read_text())
        assert got["rows"] == len(ids) and got["local"] < len(ids)
        assert got["metrics"] == pytest.approx(whole.scores().metrics())
        assert got["submission"] == whole.submission()
