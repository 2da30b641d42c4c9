"""Nothing lost: a run killed with SIGKILL or stopped with Ctrl-C and resumed ends bit-identical to an uninterrupted
one; a kill during a save never breaks `latest`; NaN, out-of-memory and SIGTERM stop with a message and a checkpoint.

The interrupted runs are real `latentloop train` subprocesses with one thread each (as the reference), so on CPU the
comparison is exact: every weight, optimizer moment and logged metric is equal bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import latentloop.training.loop as loop
from latentloop.cli import main
from latentloop.config import RunConfig
from latentloop.errors import CheckpointError
from latentloop.training.checkpoint import load_checkpoint, load_train_state, resolve_checkpoint, save_checkpoint
from test_training_loop import TINY

TOTAL_STEPS = 64  # 256 toy examples, batch 32, 8 epochs


def cli_args(data: Path, run: Path, *overrides: str) -> list[str]:
    """Evaluations at steps 32 and 64, a checkpoint every 5 steps, a metrics record every 4."""
    return ["train", "cpu-sudoku6", *TINY, f"data_path={data}", f"out_dir={run}", "data.task=", "threads=1",
            "epochs=8", "eval_interval=4", "checkpoint_interval=5", "log_interval=4", *overrides, "--no-progress"]


def start(data: Path, run: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "latentloop.cli", *cli_args(data, run, *overrides)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_then_resume(data: Path, run: Path, *overrides: str) -> str:
    """Start a run, SIGKILL it at a random logged step (and a random moment after it), resume it to its end; the
    resumed run's output. The seed of the random choices is in every failure message."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    proc = start(data, run, *overrides)
    wait_for_step(proc, run, rng.randrange(8, TOTAL_STEPS - 8))  # the first checkpoint (step 5) exists by then
    time.sleep(rng.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"seed {seed}"
    resumed = subprocess.run([sys.executable, "-m", "latentloop.cli", *cli_args(data, run, *overrides), "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, f"seed {seed}: {resumed.stderr[-2000:]}"
    assert "resumed" in resumed.stdout, f"seed {seed}"
    return resumed.stdout


def last_logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def wait_for_step(proc: subprocess.Popen, run: Path, step: int) -> None:
    """Poll metrics.jsonl until the run has logged `step` (never leaving the process behind on failure)."""
    deadline = time.time() + 120
    while last_logged_step(run) < step:
        assert proc.poll() is None, f"training ended before step {step}: {proc.communicate()[1][-2000:]}"
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"training did not reach step {step} in 120 s")
        time.sleep(0.005)


def state_of(run: Path) -> tuple[dict, dict, dict, list]:
    """Raw weights, evaluated (EMA) weights, optimizer state and metrics without wall-clock times."""
    ckpt = resolve_checkpoint(run)
    records = [{k: v for k, v in json.loads(line).items() if k != "time"}
               for line in (run / "metrics.jsonl").read_text().splitlines()]
    return (load_file(ckpt / "raw.safetensors"), load_file(ckpt / "model.safetensors"),
            load_train_state(ckpt)["optimizer"]["state"], records)


def assert_identical(run: Path, reference: Path) -> None:
    raw, ema, moments, records = state_of(run)
    ref_raw, ref_ema, ref_moments, ref_records = state_of(reference)
    assert resolve_checkpoint(run).name == resolve_checkpoint(reference).name == f"step_{TOTAL_STEPS:07d}"
    for got, want in ((raw, ref_raw), (ema, ref_ema)):
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    for index, state in ref_moments.items():
        assert all(torch.equal(moments[index][k], v) for k, v in state.items() if torch.is_tensor(v))
    assert records == ref_records  # same training metrics and the same final evaluation


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    from conftest import write_toy_dataset

    root = tmp_path_factory.mktemp("resume")
    data = write_toy_dataset(root / "toy")
    proc = start(data, root / "uninterrupted")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return data, root / "uninterrupted"


def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(reference, tmp_path):
    data, uninterrupted = reference
    run = tmp_path / "run"
    kill_then_resume(data, run)
    assert_identical(run, uninterrupted)


def test_ctrl_c_saves_a_checkpoint_exits_cleanly_and_resumes_exactly(reference, tmp_path):
    data, uninterrupted = reference
    run = tmp_path / "run"
    proc = start(data, run)
    wait_for_step(proc, run, random.randrange(4, TOTAL_STEPS - 16))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().endswith("latentloop: interrupted")
    stopped = [line for line in out.splitlines() if line.startswith("stopped by SIGINT at step ")]
    assert len(stopped) == 1 and "--resume" in stopped[0]
    step = int(stopped[0].split("at step ")[1].split(":")[0])
    assert resolve_checkpoint(run).name == f"step_{step:07d}"
    assert load_train_state(resolve_checkpoint(run))["step"] == step
    resumed = subprocess.run([sys.executable, "-m", "latentloop.cli", *cli_args(data, run), "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_identical(run, uninterrupted)


SAVER = """
import os, random, signal, sys, time
import torch
torch.set_num_threads(1)  # no thread pools, so forking is safe
from pathlib import Path
from latentloop.config import RunConfig
from latentloop.training.checkpoint import load_train_state, resolve_checkpoint, save_checkpoint
from safetensors.torch import load_file

run, rng = Path(sys.argv[1]), random.Random(int(sys.argv[2]))
weights = {"w": torch.arange(1_000_000, dtype=torch.float32)}
blob = torch.ones(2_000_000)
def save(step):
    save_checkpoint(run, step, RunConfig(), weights, raw_weights=weights, train_state={"step": step, "blob": blob},
                    metrics={"exact_accuracy": step % 7 / 7}, keep=2, keep_best="exact_accuracy")

save(0)
mid_save = 0
for trial in range(12):
    first = int(open(run / "checkpoints" / "latest").read()[5:]) + 1
    pid = os.fork()
    if pid == 0:
        for step in range(first, first + 10_000):
            save(step)
        os._exit(0)
    time.sleep(rng.uniform(0.01, 0.3))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    mid_save += any(p.name.startswith(".") for p in (run / "checkpoints").iterdir())
    ckpt = resolve_checkpoint(run)
    assert load_train_state(ckpt)["step"] == int(ckpt.name[5:]), ckpt
    assert torch.equal(load_file(ckpt / "model.safetensors")["w"], weights["w"]) and len(os.listdir(ckpt)) == 4
    best = run / "checkpoints" / (run / "checkpoints" / "best").read_text()
    assert load_train_state(best)["step"] == int(best.name[5:]), best
print(mid_save)
"""


def test_a_kill_during_a_save_never_breaks_latest(tmp_path):
    """12 SIGKILLs at random moments of a process that does nothing but save; after each, `latest` and `best` load."""
    result = subprocess.run([sys.executable, "-c", SAVER, str(tmp_path / "run"), str(random.randrange(1 << 30))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) >= 1  # at least one kill landed in the middle of a save
    save_checkpoint(tmp_path / "run", 10**6, RunConfig(), {"w": torch.zeros(1)})
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    weights = {"w": torch.zeros(3)}
    save_checkpoint(tmp_path, 1, RunConfig(), weights, train_state={"step": 1})
    monkeypatch.setattr("latentloop.training.checkpoint.torch.save",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("unexpected pos 576 vs 534")))
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*step_0000002.*step_0000001 is intact"):
        save_checkpoint(tmp_path, 2, RunConfig(), weights, train_state={"step": 2})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_0000001"]
    assert resolve_checkpoint(tmp_path).name == "step_0000001"


@pytest.mark.parametrize("metric, values, kept, best", [
    ("exact_accuracy", [0.1, 0.5, 0.3, 0.2, 0.4], [2, 4, 5], 2),
    ("lm_loss", [0.9, 0.5, 0.7, 0.1, 0.6], [4, 5], 4),
    ("", [0.1, 0.5, 0.3, 0.2, 0.4], [4, 5], None),
])
def test_keep_last_k_and_the_best(tmp_path, metric, values, kept, best):
    for step, value in enumerate(values, 1):
        save_checkpoint(tmp_path, step, RunConfig(), {"w": torch.zeros(1)},
                        metrics={"exact_accuracy": value, "lm_loss": value}, keep=2, keep_best=metric)
    save_checkpoint(tmp_path, 6, RunConfig(), {"w": torch.zeros(1)}, keep=0)  # no metrics: an interval checkpoint
    root = tmp_path / "checkpoints"
    assert sorted(int(p.name[5:]) for p in root.glob("step_*")) == sorted(kept + [6])
    assert (root / "latest").read_text() == "step_0000006"
    assert (root / "best").read_text() == f"step_{best:07d}" if best else not (root / "best").exists()


def poison_step(monkeypatch, at: int, action) -> None:
    """Make the training loop's loss pass through `action(loss)` at its `at`-th call (one call per step)."""
    real, calls = loop.act_loss, []

    def act_loss(*args, **kwargs):
        calls.append(1)
        loss, metrics = real(*args, **kwargs)
        return (action(loss) if len(calls) == at else loss), metrics

    monkeypatch.setattr(loop, "act_loss", act_loss)


def short_run(data: Path, run: Path) -> list[str]:
    return ["train", "cpu-sudoku6", *TINY, f"data_path={data}", f"out_dir={run}", "data.task=", "epochs=2",
            "eval_interval=2", "checkpoint_interval=3", "--no-progress"]


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(toy_dataset, tmp_path, monkeypatch,
                                                                           capsys):
    poison_step(monkeypatch, 8, lambda loss: loss * float("nan"))
    assert main(short_run(toy_dataset, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentloop: error: loss became nan at step 8; stopped before the update") and "\n" not in err
    assert resolve_checkpoint(tmp_path / "run").name == "step_0000006"
    model, _ = load_checkpoint(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_out_of_memory_suggests_gradient_accumulation(toy_dataset, tmp_path, monkeypatch, capsys):
    def oom(loss):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)")

    poison_step(monkeypatch, 1, oom)
    assert main(short_run(toy_dataset, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert "out of memory at step 1 with micro-batches of 32 rows" in err and "grad_accum_steps=2" in err
    assert "\n" not in err


def test_sigterm_saves_and_stops_like_ctrl_c(toy_dataset, tmp_path, monkeypatch, capsys):
    # The handlers in place before the run (SIGINT is ignored, not the default, in a shell's background job).
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    poison_step(monkeypatch, 4, lambda loss: os.kill(os.getpid(), signal.SIGTERM) or loss)
    assert main(short_run(toy_dataset, tmp_path / "run")) == 130
    out = capsys.readouterr().out
    assert "stopped by SIGTERM at step 4: saved" in out
    assert resolve_checkpoint(tmp_path / "run").name == "step_0000004"
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the handlers are put back
