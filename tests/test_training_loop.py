import json

import pytest
import torch
from safetensors.torch import load_file

from latentloop.config import apply_overrides, load_preset
from latentloop.errors import CheckpointError, ConfigError, DataError
from latentloop.training.checkpoint import load_checkpoint, resolve_checkpoint
from latentloop.training.loop import train

TINY = ["hidden_size=32", "num_heads=2", "layers=1", "T=2", "n=1", "N_sup=2", "puzzle_emb_ndim=32",
        "puzzle_emb_len=1", "mlp_t=false", "pos_encodings=rope", "global_batch_size=32", "lr=3e-3",
        "lr_warmup_steps=5", "weight_decay=0.0", "ema=true", "ema_rate=0.9", "eval_batch_size=64"]


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
