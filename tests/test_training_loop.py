import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latentloop.config import apply_overrides, load_preset
from latentloop.data.format import DatasetMetadata, PuzzleSplit, read_split, write_split
from latentloop.data.sampler import GroupSampler
from latentloop.errors import CheckpointError, ConfigError, DataError
from latentloop.models import config as model_config
from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint
from latentloop.training.loop import _check_settings, train

TINY = ["hidden_size=32", "num_heads=2", "layers=1", "T=2", "n=1", "N_sup=2", "puzzle_emb_ndim=32",
        "puzzle_emb_len=1", "mlp_t=false", "pos_encodings=rope", "global_batch_size=32", "lr=3e-3",
        "lr_warmup_steps=5", "weight_decay=0.0", "ema=true", "ema_rate=0.9", "eval_batch_size=64",
        "forward_dtype=float32", "lr_min_ratio=1.0"]   # fp32 on any CPU, a constant rate: as the tests were written


def tiny_config(data, out, *extra):
    return apply_overrides(load_preset("cpu-sudoku6"), TINY + [f"data_path={data}", f"out_dir={out}", *extra])


def test_short_run_loss_falls_and_saves_everything(toy_dataset, tmp_path):
    cfg = tiny_config(toy_dataset, tmp_path / "run", "epochs=8", "eval_interval=4")
    result = train(cfg, progress=False, log=lambda *_: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/lm_loss"] for r in records if "train/lm_loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    assert result.final_eval is not None and result.final_eval.num_examples == 64
    assert len(result.final_eval.per_step_exact_accuracy) == 2
    ckpt = resolve_checkpoint(tmp_path / "run")
    assert {"model.safetensors", "raw.safetensors", "train_state.pt", "config.json"} <= {p.name for p in ckpt.iterdir()}
    # The evaluation weights are the EMA, the raw weights differ.
    ema, raw = load_file(ckpt / "model.safetensors"), load_file(ckpt / "raw.safetensors")
    key = "inner.lm_head.weight"
    assert not torch.equal(ema[key], raw[key])
    model, loaded_cfg = load_checkpoint(tmp_path / "run")
    assert torch.equal(model.state_dict()[key], ema[key])
    assert loaded_cfg.model.vocab_size == 6 and loaded_cfg.model.seq_len == 8


def test_same_seed_same_run(toy_dataset, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = tiny_config(toy_dataset, tmp_path / name, "epochs=2", "eval_interval=2")
        train(cfg, progress=False, log=lambda *_: None)
        runs.append(load_file(resolve_checkpoint(tmp_path / name) / "raw.safetensors"))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resume_continues_to_the_same_weights(toy_dataset, tmp_path):
    full = tiny_config(toy_dataset, tmp_path / "full", "epochs=4", "eval_interval=2")
    train(full, progress=False, log=lambda *_: None)
    half = tiny_config(toy_dataset, tmp_path / "half", "epochs=2", "eval_interval=2")
    train(half, progress=False, log=lambda *_: None)
    # Same total schedule: rerun with epochs=4 from the checkpoint taken at epoch 2.
    resumed = tiny_config(toy_dataset, tmp_path / "half", "epochs=4", "eval_interval=2")
    train(resumed, progress=False, resume=True, log=lambda *_: None)
    a = load_file(resolve_checkpoint(tmp_path / "full") / "raw.safetensors")
    b = load_file(resolve_checkpoint(tmp_path / "half") / "raw.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_inputs_raise_clear_errors(toy_dataset, tmp_path):
    with pytest.raises(DataError, match="not found"):
        train(tiny_config(tmp_path / "missing", tmp_path / "r"), progress=False, log=lambda *_: None)
    with pytest.raises(ConfigError, match="multiple of eval_interval"):
        train(tiny_config(toy_dataset, tmp_path / "r", "epochs=3", "eval_interval=2"), progress=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="cannot be resumed|holds no checkpoint|does not exist"):
        train(tiny_config(toy_dataset, tmp_path / "fresh", "epochs=2", "eval_interval=2"), progress=False,
              resume=True, log=lambda *_: None)


def test_corrupt_or_mismatched_checkpoint(toy_dataset, tmp_path):
    train(tiny_config(toy_dataset, tmp_path / "run", "epochs=2", "eval_interval=2"), progress=False,
          log=lambda *_: None)
    ckpt = resolve_checkpoint(tmp_path / "run")
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_checkpoint(ckpt)
    weights.write_bytes(data)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["config"]["model"]["hidden_size"] = 64
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(ckpt)


def write_uneven_dataset(root):
    """32 groups of one 4-example puzzle and 32 of three 1-example puzzles: the official step estimate (groups x mean
    examples per puzzle, 1.75) is below what an epoch holds (2.5 examples per group), so whole iterations run past
    total_steps."""
    rng = np.random.default_rng(0)
    examples, groups = [4] * 32 + [1] * 96, [1] * 32 + [3] * 32
    for name, count in (("train", sum(examples)), ("test", 16)):
        inputs = rng.integers(2, 6, size=(count, 8), dtype=np.uint8)
        labels = ((inputs - 2 + 1) % 4 + 2).astype(np.uint8)
        split = (PuzzleSplit.from_counts(inputs, labels, [0] * len(examples), examples, groups) if name == "train" else
                 PuzzleSplit.from_counts(inputs, labels, [0] * count, [1] * count, [1] * count))
        write_split(root / name, split, DatasetMetadata.for_split(split, vocab_size=6, num_puzzle_identifiers=1))
    return root


def test_the_official_schedule_runs_whole_iterations_and_only_moves_the_ema_past_total_steps(tmp_path):
    data = write_uneven_dataset(tmp_path / "uneven")
    settings = ("epochs=2", "eval_interval=1", "global_batch_size=16", "log_interval=1")
    official = tiny_config(data, tmp_path / "official", *settings, "run_schedule=iterations", "checkpoint_interval=1",
                           "keep_last=0")
    lines = []
    result = train(official, progress=False, log=lines.append)
    total_steps = int(2 * 64 * 1.75 / 16)
    sampler = GroupSampler(*read_split(data / "train"), 16, seed=0)
    lengths = [sampler.iteration_length(i) for i in range(2)]
    extra = sum(lengths) - total_steps
    assert result.steps == sum(lengths) and extra > 0
    assert any(f"the last {extra} only count and update the EMA" in line for line in lines)
    records = [json.loads(line) for line in (tmp_path / "official" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval/exact_accuracy" in r] == [lengths[0], sum(lengths)]
    assert max(r["step"] for r in records if "train/lm_loss" in r) == total_steps
    # The same run on latentloop's schedule stops at total_steps with the same raw weights; the official EMA then
    # took `extra` more steps toward them: ema <- rate^extra * ema + (1 - rate^extra) * raw.
    ours = tiny_config(data, tmp_path / "ours", *settings)
    assert train(ours, progress=False, log=lambda *_: None).steps == total_steps
    raw = load_file(resolve_checkpoint(tmp_path / "ours") / "raw.safetensors")
    ema = load_file(resolve_checkpoint(tmp_path / "ours") / "model.safetensors")
    official_raw = load_file(resolve_checkpoint(tmp_path / "official") / "raw.safetensors")
    official_ema = load_file(resolve_checkpoint(tmp_path / "official") / "model.safetensors")
    assert all(torch.equal(official_raw[k], raw[k]) for k in raw)
    moved = 0.9 ** extra
    key = "inner.lm_head.weight"
    assert not torch.allclose(official_ema[key], ema[key])
    assert all(torch.allclose(official_ema[k], moved * ema[k] + (1 - moved) * raw[k], atol=1e-6) for k in raw)

    # Resumed from a checkpoint past total_steps, the run ends on the same weights.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "official", resumed)
    kept = f"step_{total_steps + 1:07d}"
    for folder in (resumed / "checkpoints").glob("step_*"):
        if folder.name > kept:
            shutil.rmtree(folder)
    (resumed / "checkpoints" / "latest").write_text(kept)
    again = tiny_config(data, resumed, *settings, "run_schedule=iterations", "checkpoint_interval=1", "keep_last=0")
    assert train(again, progress=False, resume=True, log=lambda *_: None).steps == sum(lengths)
    final = load_file(resolve_checkpoint(resumed) / "model.safetensors")
    assert all(torch.equal(final[k], official_ema[k]) for k in official_ema)


def test_the_official_schedule_can_end_short_of_total_steps(toy_dataset, tmp_path):
    lines = []
    cfg = tiny_config(toy_dataset, tmp_path / "run", "epochs=4", "eval_interval=1", "global_batch_size=24",
                      "run_schedule=iterations")
    assert train(cfg, progress=False, log=lines.append).steps == 4 * (256 // 24)
    assert any("the run ends after 40 of the 42 steps" in line for line in lines)


def test_keep_best_may_name_an_arc_score_and_arc_votes_is_checked(toy_dataset, tmp_path):
    for metric in ("ARC/pass@2", "eval/ARC/pooled_pass@2", "exact_accuracy"):
        _check_settings(tiny_config(toy_dataset, tmp_path, f"keep_best={metric}").train)
    with pytest.raises(ConfigError, match="not an evaluation metric"):
        _check_settings(tiny_config(toy_dataset, tmp_path, "keep_best=ARC/pass@3").train)
    with pytest.raises(ConfigError, match="run_schedule must be one of steps, iterations"):
        _check_settings(tiny_config(toy_dataset, tmp_path, "run_schedule=epochs").train)


def test_forward_dtype_auto_is_resolved_once_recorded_and_kept_on_resume(toy_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(model_config, "cpu_flags", lambda: {"avx2", "avx512_bf16"})   # detection mocked
    run, lines = tmp_path / "run", []
    result = train(tiny_config(toy_dataset, run, "epochs=2", "eval_interval=2", "forward_dtype=auto"),
                   progress=False, log=lines.append)
    said = "forward_dtype auto -> bfloat16 (CPU has avx512_bf16)"
    assert said in lines and result.precision == said
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first == {"step": 0, "forward_dtype": "bfloat16", "precision": said}
    assert json.loads((run / "config.json").read_text())["model"]["forward_dtype"] == "bfloat16"
    cfg = load_checkpoint(run)[1]
    assert cfg.model.forward_dtype == "bfloat16" and cfg.model.no_grad_dtype == ""
    # Resumed on a machine without native bf16, the run goes on in the dtype it was trained in.
    monkeypatch.setattr(model_config, "cpu_flags", lambda: {"avx2"})
    lines.clear()
    train(tiny_config(toy_dataset, run, "epochs=4", "eval_interval=2", "forward_dtype=auto"), progress=False,
          resume=True, log=lines.append)
    assert "forward_dtype auto -> bfloat16 (as in the checkpoint resumed)" in lines
    assert load_checkpoint(run)[1].model.forward_dtype == "bfloat16"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in records if "precision" in r] == [first]
