"""The claims harness's bookkeeping: run planning, caching keys, summaries, tables and plots (no training)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "claims"))

import harness  # noqa: E402
import run as claims  # noqa: E402
from harness import Experiment, Setup, Variant  # noqa: E402


def _setup(tmp_path: Path, scale: float = 1.0) -> Setup:
    return Setup(preset="cpu-sudoku6", base_steps=10, batch_size=64, num_test=50, data_prefix="data/x",
                 out_dir=tmp_path, scale=scale, extra=("hidden_size=64",))


def _fake_result(setup: Setup, variant: Variant, seed: int, exact: float, test_time: list[float] | None = None,
                 lengths: dict[str, float] | None = None):
    overrides = harness.job_overrides(setup, variant, seed)
    run_dir = setup.out_dir / "runs" / f"{harness.run_key(setup.preset, overrides)}-s{seed}"
    run_dir.mkdir(parents=True)
    record = {"params": 1000, "steps": 10, "seconds": 60.0, "exact_accuracy": exact, "accuracy": 0.9}
    if test_time is not None:
        record["test_time_steps"] = test_time
    if lengths is not None:
        record["lengths"] = lengths
    (run_dir / "result.json").write_text(json.dumps(record))


def test_overrides_size_the_data_to_the_steps_and_end_with_the_users(tmp_path):
    setup = _setup(tmp_path, scale=2)
    overrides = harness.job_overrides(setup, Variant("v", ("T=3",), steps_factor=4), seed=7)
    assert "data.num_train=5120" in overrides           # 10 steps x scale 2 x factor 4 x batch 64
    assert "data_path=data/x-5120-50" in overrides
    assert "train.seed=7" in overrides and "threads=1" in overrides
    assert overrides[-2:] == ("T=3", "hidden_size=64")  # the variant's, then the user's, win


def test_plan_dedupes_shared_variants_seed_major_and_keeps_the_longest_evaluation(tmp_path):
    shared = Variant("TRM")
    experiments = [Experiment("a", "A", "", (shared, Variant("b", ("n=3",)))),
                   Experiment("c", "C", "", (Variant("TRM again", (), eval_steps=16),))]
    setup = _setup(tmp_path)
    jobs = harness.plan([(e, setup) for e in experiments], seeds=[0, 1])
    assert [(j.label, j.seed) for j in jobs] == [("TRM", 0), ("b", 0), ("TRM", 1), ("b", 1)]
    assert all(j.eval_steps == 16 for j in jobs if j.label == "TRM")
    assert len({j.run_dir for j in jobs}) == 4


def test_summaries_tables_and_plots_from_cached_results(tmp_path):
    setup = _setup(tmp_path)
    a, b = Variant("A"), Variant("B", ("n=3",), eval_steps=2)
    for seed, value in enumerate([0.5, 0.7]):
        _fake_result(setup, a, seed, value)
    _fake_result(setup, b, 0, 0.2, test_time=[0.1, 0.2])
    rows = harness.summarise(Experiment("e", "E", "", (a, b)), setup, seeds=[0, 1])
    assert [r.label for r in rows] == ["A", "B"]
    assert rows[0].mean == pytest.approx(0.6) and rows[0].sd == pytest.approx(0.1414, abs=1e-4)
    assert rows[1].sd == 0.0 and rows[1].test_time == [[0.1, 0.2]]
    table = harness.markdown_table(rows)
    assert "| A | (shared setup) | 1,000 | 10 | 1.0 | 2 | 60.0 ± 14.1 | 50.0, 70.0 | 90.0 |" in table
    assert "| B | 10.0 | 20.0 |" in harness.test_time_table(rows)
    text = harness.report(Experiment("e", "E", "claim", (a, b), plot="steps"), setup, seeds=[0, 1])
    assert "claim" in text and (tmp_path / "e.png").stat().st_size > 0
    assert json.loads((tmp_path / "e.json").read_text())[0]["mean"] == pytest.approx(0.6)


def test_per_length_accuracy_is_read_from_task_metrics_and_tabulated(tmp_path):
    assert harness._per_length({"exact_accuracy": 0.5, "sort/exact@L=3": 1.0, "sort/exact@L=12": 0.25}) == {
        "3": 1.0, "12": 0.25}
    setup = _setup(tmp_path)
    a, b = Variant("A"), Variant("B", ("n=3",))
    _fake_result(setup, a, 0, 0.5, lengths={"4": 1.0, "9": 0.0})
    _fake_result(setup, a, 1, 0.5, lengths={"4": 0.5, "9": 0.5})
    _fake_result(setup, b, 0, 0.1, lengths={"4": 0.2, "9": 0.0, "10": 0.0})
    text = harness.report(Experiment("s", "S", "claim", (a, b), plot="lengths"), setup, seeds=[0, 1])
    assert "| variant | L=4 | L=9 |" in text                       # only the lengths every run has
    assert "| A | 75.0 ± 35.4 | 25.0 ± 35.4 |" in text and "| B | 20.0 | 0.0 |" in text
    assert (tmp_path / "s.png").stat().st_size > 0


def test_every_claim_is_defined_once_with_distinct_variants():
    keys = [e.key for e in claims.EXPERIMENTS]
    assert keys == ["recursion", "test-time", "loops", "gradient", "tiny", "sort"]
    assert [e.key for e in claims.METHODS] == ["methods", "methods-sort"]
    for experiment in claims.EXPERIMENTS + claims.METHODS:
        labels = [v.label for v in experiment.variants]
        assert len(labels) == len(set(labels))
    # `all` is the papers' claims; the method measurements run by name only.
    assert [e.key for e, _ in claims.chosen_experiments(claims.parse_args(["all"]))] == keys


METHOD_OVERRIDES = {
    "TRM (default)": (),
    "depth_curriculum=cgar": ("depth_curriculum=cgar",),
    "sup_step_weights=0.7": ("sup_step_weights=0.7",),
    "mlp=conv_swiglu": ("mlp=conv_swiglu",),
    "grad_cycles=2 (full backprop, T=2)": ("grad_cycles=2",),
    "optimizer=muon": ("optimizer=muon",),
    "CGAR (curriculum + weights)": ("depth_curriculum=cgar", "sup_step_weights=0.7"),
}


def test_methods_plans_every_option_at_every_seed_on_the_claims_setup_and_shares_their_trm_runs():
    chosen = claims.chosen_experiments(claims.parse_args(["methods"]))
    jobs = harness.plan(chosen, seeds=[0, 1, 2])
    assert sorted((j.label, j.seed) for j in jobs) == sorted((label, seed) for label in METHOD_OVERRIDES
                                                             for seed in (0, 1, 2))
    for job in jobs:
        own = METHOD_OVERRIDES[job.label]
        assert job.overrides[-len(own) - len(claims.SHORT_RUN):] == (*own, *claims.SHORT_RUN)
        assert f"train.seed={job.seed}" in job.overrides
    # Same steps and data for every variant: one generated set, sized for 400 steps of 64.
    assert {o for j in jobs for o in j.overrides if o.startswith("data")} == {
        "data_path=data/claims-cpu-sudoku6-25600-500", "data.num_train=25600", "data.num_test=500"}
    recursion = claims.chosen_experiments(claims.parse_args(["recursion"]))
    trm_runs = {j.run_dir for j in harness.plan(recursion, seeds=[0, 1, 2]) if j.label == claims.TRM.label}
    assert {j.run_dir for j in jobs if j.label == "TRM (default)"} == trm_runs
    assert len(harness.plan(recursion + chosen, seeds=[0, 1, 2])) == (5 + 6) * 3   # the TRM rows are trained once


def test_methods_sort_runs_the_same_options_on_the_sort_setup_with_its_own_steps():
    (experiment, setup), = claims.chosen_experiments(claims.parse_args(["methods-sort"]))
    assert {v.label: v.overrides for v in experiment.variants} == METHOD_OVERRIDES
    assert (setup.preset, setup.base_steps, setup.num_test) == ("cpu-sort", 750, 2000)
    assert setup.extra == claims.SORT_RUN


@pytest.mark.parametrize("key", ["methods", "methods-sort"])
def test_every_method_run_is_a_valid_config_that_builds(key):
    import torch

    from latentloop.config import apply_overrides, load_preset
    from latentloop.models import build_model
    from latentloop.training.curriculum import depth_stages
    from latentloop.training.optim import OPTIMIZERS

    for job in harness.plan(claims.chosen_experiments(claims.parse_args([key])), seeds=[0]):
        cfg = apply_overrides(load_preset(job.preset), list(job.overrides))   # validates every field's range
        depth_stages(cfg.train.depth_curriculum, cfg.model)
        assert cfg.train.optimizer in OPTIMIZERS   # the training loop's check, which validate does not make
        with torch.device("meta"):   # checks the architecture (grad_cycles <= T, the MLP) without the memory
            build_model(cfg.model)


def test_singles_rounds_counts_chained_deductions():
    import numpy as np
    import task

    from latentloop.data import sudoku_grid

    shape = sudoku_grid.shape_for_size(4)
    solution = np.array([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]])
    one_blank = solution.copy()
    one_blank[0, 0] = 0
    # A generated minimal puzzle: (0, 2) = 3 is forced at once, (0, 0) only after more of the grid is known.
    minimal = sudoku_grid.parse_puzzle("...2..143....1..", shape)
    assert task.singles_rounds(solution, shape) == 0
    assert task.singles_rounds(one_blank, shape) == 1
    assert task.singles_rounds(minimal, shape) == 3
    assert task.singles_rounds(np.zeros((4, 4), dtype=int), shape) == -1
