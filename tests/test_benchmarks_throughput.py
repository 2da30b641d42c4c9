"""benchmarks/throughput.py --official: bad checkouts fail in one line before any work; with a real checkout of the
official TRM code (named by LATENTLOOP_OFFICIAL_TRM, absent in CI) its step matches ours and times beside it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import throughput  # noqa: E402
from latentloop.config import apply_overrides, load_preset  # noqa: E402
from latentloop.models import build_model  # noqa: E402
from latentloop.models.official_weights import official_to_ours  # noqa: E402

OFFICIAL = os.environ.get("LATENTLOOP_OFFICIAL_TRM", "")
TINY = ["hidden_size=32", "num_heads=2", "puzzle_emb_ndim=32", "layers=1", "H_layers=1", "T=2", "n=2", "N_sup=2",
        "loss=stablemax_cross_entropy"]


@pytest.fixture
def official_imports():
    """Undo what importing an official checkout leaves behind: its root on sys.path and the top-level `models`."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
        del sys.modules[name]


@pytest.fixture
def official_checkout(official_imports) -> str:
    if not OFFICIAL or not (Path(OFFICIAL) / throughput.OFFICIAL_MARKER).is_file():
        pytest.skip("set LATENTLOOP_OFFICIAL_TRM to a checkout of SamsungSAILMontreal/TinyRecursiveModels")
    pytest.importorskip("einops")
    pytest.importorskip("pydantic")
    return OFFICIAL


def _fails_in_one_line(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        throughput.main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    return captured.err


def test_a_folder_without_the_official_model_is_refused(tmp_path, capsys):
    err = _fails_in_one_line(["--configs", "cpu-sudoku6", "--official", str(tmp_path / "missing")], capsys)
    assert "not a checkout of the official TRM code" in err and throughput.OFFICIAL_MARKER in err


def test_a_checkout_that_cannot_be_imported_names_what_is_missing(tmp_path, capsys, official_imports):
    model_file = tmp_path / throughput.OFFICIAL_MARKER
    model_file.parent.mkdir(parents=True)
    model_file.write_text("import latentloop_no_such_package\n")
    err = _fails_in_one_line(["--configs", "cpu-sudoku6", "--official", str(tmp_path)], capsys)
    assert "cannot import the official code" in err and "'latentloop_no_such_package'" in err


@pytest.mark.parametrize("preset", ["trm-sudoku-att", "trm-sudoku-mlp", "hrm-sudoku-1k"])
def test_the_official_step_is_ours_on_the_same_weights(preset, official_checkout):
    assert throughput.import_official(official_checkout) is None
    cpu = torch.device("cpu")
    cfg = apply_overrides(throughput.bench_config(load_preset(preset)), [*TINY, "forward_dtype=float32"])
    batch = throughput.random_batch(cfg, 4, cpu, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    ours = build_model(cfg.model)
    theirs = throughput.OfficialTrainer(cfg, ours.state_dict(), 4, cpu)
    trainer = throughput.Trainer(cfg, ours, cpu)

    carry = ours.initial_carry(batch)
    _, loss = trainer.forward_backward(carry, batch)
    _, official_loss, _, _, _ = theirs.model(carry=theirs.initial_carry(batch), batch=batch, return_keys=[])
    assert torch.allclose(loss.detach().double(), official_loss.detach().double(), rtol=1e-6)

    ((1 / 4) * official_loss).backward()
    for optimizer in [trainer.optimizer, trainer.sparse_opt, *theirs.optimizers]:
        optimizer.step()
    stepped = official_to_ours(theirs.model.state_dict(), cfg.model)
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, stepped[key], msg=key)


def test_the_official_step_is_timed_as_the_reference(official_checkout, capsys):
    threads = torch.get_num_threads()
    try:
        throughput.main(["--configs", "cpu-sudoku6", "--set", "data.size=4", *TINY, "--steps", "1", "--warmup", "0",
                         "--rounds", "1", "--batch", "4", "--matmul-size", "64", "--device", "cpu",
                         "--official", official_checkout])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "dense optimizer: latentloop's AdamATan2 (the adam_atan2 package is CUDA-only)" in printed
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in printed.splitlines()
             if line.startswith("| cpu-sudoku6")]
    assert [(row[1], row[4]) for row in table] == [("official", "float32"), ("base", "float32")]
    assert table[0][9:11] == ["1.00", "1.00"] and float(table[1][9]) > 0
