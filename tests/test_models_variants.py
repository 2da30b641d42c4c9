"""TRM's ablations are options of the one TRM class; every paper row in docs/variants.md builds and trains."""

import json
import re
from pathlib import Path

import pytest
import torch

from latentloop.config import apply_overrides, load_preset
from latentloop.errors import ConfigError
from latentloop.models import ModelConfig, build_model, count_parameters
from latentloop.models.info import preset_info
from latentloop.models.losses import act_loss
from latentloop.models.trm import TRM, LatentState
from latentloop.training.loop import train
from latentloop.training.optim import AdamATan2

DOC = Path(__file__).resolve().parents[1] / "docs" / "variants.md"


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=2, T=2, n=2, N_sup=3,
                puzzle_emb_ndim=32, puzzle_emb_len=2, forward_dtype="float32", halt_exploration_prob=0.0)
    base.update(kw)
    return ModelConfig(**base)


VARIANTS = {
    "trm": {}, "one_step_grad": dict(one_step_grad=True), "separate_nets": dict(separate_nets=True),
    "single_z": dict(z_mode="single"), "multiscale_z": dict(z_mode="multiscale", num_z=3, n=3),
    "act_continue": dict(act_continue=True), "4_layers_n3": dict(layers=4, n=3), "T1_n1": dict(T=1, n=1),
    "mlp_t": dict(mlp_t=True, pos_encodings="none"), "learned_pos": dict(pos_encodings="learned"),
    "hrm": dict(arch="hrm", H_layers=1, puzzle_emb_len=0, act_continue=True),
    "baseline": dict(arch="baseline", layers=3, puzzle_emb_len=0),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_runs_a_training_step(name):
    torch.manual_seed(0)
    model = build_model(tiny(**VARIANTS[name]))
    optimizer = AdamATan2(model.parameters(), lr=1e-2, weight_decay=0.0)
    before = {k: v.clone() for k, v in model.named_parameters()}
    batch = {"inputs": torch.randint(1, 6, (4, 8)), "labels": torch.randint(1, 6, (4, 8)),
             "puzzle_identifiers": torch.zeros(4, dtype=torch.long)}
    carry = model.initial_carry(batch)
    for _ in range(2):
        carry, outputs = model(carry, batch)
        loss, metrics = act_loss(outputs, carry.data["labels"], carry.halted, carry.steps)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.isfinite(loss)
    assert ("q_continue_loss" in metrics) == model.q_continue_target
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert "inner.lm_head.weight" in changed and any(".layers.0." in k for k in changed)


def calls_with_grad(model: TRM, module) -> list[bool]:
    calls: list[bool] = []
    handle = module.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    model(model.initial_state(2, "cpu"), torch.randint(1, 6, (2, 8)), torch.zeros(2, dtype=torch.long))
    handle.remove()
    return calls


def test_one_step_gradient_backprops_only_the_last_z_and_y_updates():
    cfg = tiny(T=3, n=4, one_step_grad=True)
    model = TRM(cfg)
    assert calls_with_grad(model, model.net) == [False] * (cfg.T * (cfg.n + 1) - 2) + [True, True]
    with torch.no_grad():   # and nothing at all under no_grad (evaluation)
        assert not any(calls_with_grad(model, model.net))


def test_separate_networks_update_z_and_y():
    cfg = tiny(T=3, n=2, separate_nets=True)
    model = TRM(cfg)
    assert len(calls_with_grad(model, model.net)) == cfg.T * cfg.n
    assert calls_with_grad(model, model.net_y) == [False] * (cfg.T - 1) + [True]
    assert count_parameters(model.net_y) == count_parameters(model.net)


def replay(model: TRM, inputs, ids):
    """The official trm_singlez / trm_hier6 recursions, written out by hand."""
    cfg = model.cfg
    x, rope = model.encoder(inputs, ids), model.encoder.cos_sin()
    state = model.initial_state(len(inputs), "cpu")
    if cfg.z_mode == "single":
        z = state.z
        for _ in range(cfg.T):
            for _ in range(cfg.n):
                z = model.net(z + x, torch.zeros(()), rope)
            z = model.net(z, torch.zeros(()), rope)
        return model.heads(z)
    y, zs = state.y, list(state.z.unbind(1))
    for _ in range(cfg.T):
        for i in range(cfg.n):
            zs[i] = model.net(zs[0] + zs[1] + zs[2], y + x, rope)
        y = model.net(y, zs[0] + zs[1] + zs[2], rope)
    return model.heads(y)


@pytest.mark.parametrize("mode", ["single", "multiscale"])
def test_single_and_multiscale_z_follow_the_official_recursions(mode):
    torch.manual_seed(0)
    model = TRM(tiny(z_mode=mode, num_z=3, n=3, T=2))
    inputs, ids = torch.randint(1, 6, (2, 8)), torch.zeros(2, dtype=torch.long)
    state, out = model(model.initial_state(2, "cpu"), inputs, ids)
    assert torch.allclose(out.logits, replay(model, inputs, ids).logits, atol=1e-5)
    if mode == "single":
        assert isinstance(state, LatentState) and "y_init" not in model.state_dict()
    else:
        assert state.z.shape == (2, 3, 10, 32) and model.z_init.shape == (3, 32)
        reset = model.reset(state, torch.tensor([True, False]))
        assert torch.equal(reset.z[0, 2, 5], model.z_init[2]) and torch.equal(reset.z[1], state.z[1])


def test_options_that_would_be_ignored_are_rejected():
    with pytest.raises(ConfigError, match="TRM option"):
        build_model(tiny(arch="hrm", z_mode="single"))
    with pytest.raises(ConfigError, match="n .* must lie in 1..num_z"):
        build_model(tiny(z_mode="multiscale", num_z=2, n=3))
    with pytest.raises(ConfigError, match="unknown z_mode"):
        build_model(tiny(z_mode="double"))
    with pytest.raises(ConfigError, match="even head size"):
        build_model(tiny(hidden_size=36, num_heads=4))


def test_hrm_trains_end_to_end_without_ema(toy_dataset, tmp_path):
    cfg = apply_overrides(load_preset("hrm-sudoku-1k"), [
        "hidden_size=32", "num_heads=2", "layers=1", "H_layers=1", "N_sup=2", "puzzle_emb_ndim=32",
        "forward_dtype=float32", "global_batch_size=64", "epochs=1", "eval_interval=1", "lr=3e-3",
        "lr_warmup_steps=2", "ema=false", f"data_path={toy_dataset}", f"out_dir={tmp_path / 'run'}"])
    result = train(cfg, progress=False, log=lambda *_: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("train/q_continue_loss" in r for r in records)
    assert result.final_eval is not None and result.final_eval.num_examples == 64


def doc_rows() -> list[tuple[str, int, int, int, str, list[str]]]:
    rows = []
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| ([^|]+) \| [^|]+ \| ([\d,]+) \| (\d+) \| (\d) \| `latentloop train (\S+)(.*)` \|$", line)
        if match:
            row, params, depth, nfp, preset, overrides = match.groups()
            rows.append((row, int(params.replace(",", "")), int(depth), int(nfp), preset, overrides.split()))
    return rows


def test_every_documented_paper_row_builds_with_the_stated_size():
    rows = doc_rows()
    assert len(rows) == 9 + 3 + 14 + 10
    for row, params, depth, nfp, preset, overrides in rows:
        cfg = apply_overrides(load_preset(preset), overrides)
        if "maze" in cfg.train.data_path or "arc" in cfg.train.data_path:   # sizes the loop reads from the data
            cfg.model.vocab_size, cfg.model.seq_len = (6 if "maze" in cfg.train.data_path else 12), 900
        with torch.device("meta"):
            model = build_model(cfg.model)
        assert (count_parameters(model), cfg.model.depth, cfg.model.forward_passes) == (params, depth, nfp), row


def test_info_separates_the_puzzle_table_and_reports_depth_and_passes():
    info = preset_info("trm-arc1", ["vocab_size=12", "seq_len=900", "num_puzzle_identifiers=876406"])
    assert (info.dense_parameters, info.puzzle_rows, info.puzzle_dim) == (6_829_058, 876_406, 512)
    assert info.puzzle_bytes == 876_406 * 512 * 4 and "876,406 rows x 512 fp32 (1.67 GiB)" in info.report()
    assert (info.depth, info.network_calls, info.forward_passes) == (30, 15, 1)
    hrm = preset_info("hrm-sudoku-1k")
    assert (hrm.dense_parameters, hrm.depth, hrm.forward_passes) == (27_275_266, 24, 2)
