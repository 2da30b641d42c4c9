"""Training methods after TRM (docs/variants.md): CGAR's depth curriculum and supervision weighting, URM's ConvSwiGLU
and truncated backpropagation, Muon. Each is off by default and leaves the default run bit-identical; each does what
its paper says; a run with all of them resumes exactly."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from latentloop.cli import main
from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.errors import CheckpointError, ConfigError
from latentloop.layers.blocks import SwiGLU, swiglu_inner_size
from latentloop.models import ModelConfig, build_model, count_parameters
from latentloop.models.losses import act_loss, softmax_cross_entropy, supervision_weights
from latentloop.models.trm import TRM
from latentloop.training.checkpoint import load_train_state, read_config, resolve_checkpoint
from latentloop.training.curriculum import depth_at, depth_stages, recursion_depth
from latentloop.training.loop import train
from latentloop.training.memory import estimate_memory
from latentloop.training.optim import AdamATan2, make_muon, split_for_muon
from test_performance_options import tiny
from test_training_loop import TINY, tiny_config
from test_training_resume import assert_identical, kill_then_resume, start

DOC = Path(__file__).resolve().parents[1] / "docs" / "variants.md"
OFF = ["depth_curriculum=", "sup_step_weights=0", "mlp=swiglu", "conv_kernel=2", "grad_cycles=1",
       "optimizer=adam_atan2", "muon_lr=0.02"]


def quiet(*_: object) -> None:
    """A log function that drops everything."""


# --- off by default ------------------------------------------------------------------------------------------------

def test_defaults_equal_the_explicit_off_values_bit_for_bit(toy_dataset, tmp_path):
    runs = {}
    for name, extra in (("default", []), ("off", OFF)):
        train(tiny_config(toy_dataset, tmp_path / name, "epochs=2", "eval_interval=2", *extra), progress=False,
              log=quiet)
        ckpt = resolve_checkpoint(tmp_path / name)
        records = [{k: v for k, v in json.loads(line).items() if k != "time"}
                   for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs[name] = load_file(ckpt / "raw.safetensors"), load_train_state(ckpt), records
    (raw, state, records), (raw_off, state_off, records_off) = runs["default"], runs["off"]
    assert raw.keys() == raw_off.keys() and all(torch.equal(raw[k], raw_off[k]) for k in raw)
    assert records == records_off and "muon" not in state and "muon" not in state_off
    for index, moments in state["optimizer"]["state"].items():
        assert all(torch.equal(v, state_off["optimizer"]["state"][index][k]) if torch.is_tensor(v)
                   else v == state_off["optimizer"]["state"][index][k] for k, v in moments.items())


def test_the_options_are_recorded_and_configs_without_them_still_load(tmp_path):
    cfg = apply_overrides(load_preset("cpu-sudoku6"), ["mlp=conv_swiglu", "conv_kernel=3", "grad_cycles=2",
                                                       "optimizer=muon", "muon_lr=0.01", "depth_curriculum=cgar",
                                                       "sup_step_weights=0.7"])
    raw = json.loads(json.dumps(cfg.to_dict()))
    again = RunConfig.from_dict(raw)
    assert (again.model.mlp, again.model.conv_kernel, again.model.grad_cycles) == ("conv_swiglu", 3, 2)
    assert (again.train.optimizer, again.train.muon_lr, again.train.depth_curriculum,
            again.train.sup_step_weights) == ("muon", 0.01, "cgar", 0.7)
    for section, keys in (("model", ("mlp", "conv_kernel", "grad_cycles")),
                          ("train", ("optimizer", "muon_lr", "depth_curriculum", "sup_step_weights"))):
        for key in keys:
            del raw[section][key]
    (tmp_path / "config.json").write_text(json.dumps({"step": 1, "config": raw, "metrics": {}}))
    old = read_config(tmp_path)
    assert (old.model.mlp, old.model.grad_cycles, old.train.optimizer, old.train.depth_curriculum,
            old.train.sup_step_weights) == ("swiglu", 1, "adam_atan2", "", 0.0)


def test_every_command_of_the_doc_section_parses_and_builds():
    section = DOC.read_text().split("## Training methods after TRM", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"`latentloop train (\S+)([^`]*)`", section)
    assert len(commands) == 5
    for preset, overrides in commands:
        cfg = apply_overrides(load_preset(preset), overrides.split())
        if "arc" in preset:  # sizes the loop reads from the data
            cfg.model.vocab_size, cfg.model.seq_len = 12, 900
        depth_stages(cfg.train.depth_curriculum, cfg.model)
        with torch.device("meta"):
            build_model(cfg.model)


# --- CGAR: depth curriculum ----------------------------------------------------------------------------------------

def test_cgar_is_the_papers_schedule_at_its_depth_and_thirds_elsewhere():
    assert depth_stages("cgar", tiny(T=3, n=6)) == [(0.3, 1, 2), (0.6, 2, 4)]
    assert depth_stages("cgar", tiny(T=2, n=2)) == [(0.3, 1, 1), (0.6, 2, 2)]
    assert depth_stages("", tiny()) == []
    stages = depth_stages("0.3:1,2;0.6:2,4", tiny(T=3, n=6))
    assert stages == [(0.3, 1, 2), (0.6, 2, 4)]
    cfg = tiny(T=3, n=6)
    depths = [depth_at(stages, step, 10, cfg) for step in range(1, 11)]
    assert depths == [(1, 2)] * 3 + [(2, 4)] * 3 + [(3, 6)] * 4
    with pytest.raises(ConfigError, match="arch=baseline has no recursion"):
        depth_stages("cgar", tiny(arch="baseline"))


@pytest.mark.parametrize("text, message", [
    ("0.3:1", "depth_curriculum must be"), ("half:1,2", "depth_curriculum must be"),
    ("0.6:1,2;0.3:2,4", "must rise strictly"), ("1.0:1,2", "must rise strictly"),
    ("0.3:4,2", r"T in 1\.\.3 and n in 1\.\.6"), ("0.3:1,0", r"T in 1\.\.3"),
])
def test_bad_schedules_are_one_config_error(text, message):
    with pytest.raises(ConfigError, match=message):
        depth_stages(text, tiny(T=3, n=6))


def test_recursion_depth_puts_the_configured_depth_back_even_on_errors():
    cfg = tiny(T=3, n=6)
    with pytest.raises(RuntimeError), recursion_depth(cfg, 1, 2):
        assert (cfg.T, cfg.n) == (1, 2)
        raise RuntimeError
    assert (cfg.T, cfg.n) == (3, 6)


def test_depth_curriculum_trains_shallow_first_and_evaluates_and_saves_full_depth(toy_dataset, tmp_path,
                                                                                  monkeypatch):
    calls, lines, real = [], [], TRM.forward

    def forward(self, *args):
        if args[1].device.type != "meta":  # not the memory estimate
            calls.append((self.training, self.cfg.T, self.cfg.n))
        return real(self, *args)

    monkeypatch.setattr(TRM, "forward", forward)
    cfg = tiny_config(toy_dataset, tmp_path / "run", "epochs=2", "eval_interval=2", "n=2",
                      "depth_curriculum=0.5:1,1")
    train(cfg, progress=False, log=lines.append)
    trained = [(T, n) for training, T, n in calls if training]
    assert trained == [(1, 1)] * 8 + [(2, 2)] * 8  # 16 steps
    assert {(T, n) for training, T, n in calls if not training} == {(2, 2)}
    saved = read_config(resolve_checkpoint(tmp_path / "run"))
    assert (saved.model.T, saved.model.n, saved.train.depth_curriculum) == (2, 2, "0.5:1,1")
    assert "depth curriculum: T=1 n=1 until 50% of the steps, then T=2 n=2" in lines


# --- CGAR: supervision weighting -----------------------------------------------------------------------------------

def test_supervision_weights_decay_and_average_one():
    steps = torch.arange(1, 5, dtype=torch.int32)
    weights = supervision_weights(steps, 4, 0.5)
    assert torch.allclose(weights, torch.tensor([8, 4, 2, 1]) / 15 * 4)
    assert torch.allclose(weights.sum(), torch.tensor(4.0))
    assert torch.equal(supervision_weights(steps, 4, 1.0), torch.ones(4))
    paper = 0.7 ** (steps - 1).double() / sum(0.7**j for j in range(4))    # CGAR: sums to 1 over the steps
    assert torch.allclose(supervision_weights(steps, 4, 0.7).double(), 4 * paper)


def test_row_weights_scale_each_rows_loss():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 5, 6), torch.randint(0, 6, (3, 5))
    labels[1, :2] = -100
    outputs = {"logits": logits, "q_halt_logits": torch.randn(3), "q_continue_logits": torch.randn(3),
               "target_q_continue": torch.rand(3)}
    halted, steps = torch.ones(3, dtype=torch.bool), torch.tensor([1, 2, 3], dtype=torch.int32)
    weights = torch.tensor([1.5, 0.5, 0.25])
    total, metrics = act_loss(outputs, labels, halted, steps, softmax_cross_entropy, row_weights=weights)
    per_row = [act_loss({k: v[i:i + 1] for k, v in outputs.items()}, labels[i:i + 1], halted[i:i + 1],
                        steps[i:i + 1], softmax_cross_entropy)[0] for i in range(3)]
    assert torch.allclose(total, sum(w * loss for w, loss in zip(weights, per_row)))
    unweighted, _ = act_loss(outputs, labels, halted, steps, softmax_cross_entropy)
    ones, _ = act_loss(outputs, labels, halted, steps, softmax_cross_entropy, row_weights=torch.ones(3))
    assert torch.allclose(ones, unweighted)


# --- URM: ConvSwiGLU -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", [2, 3])
def test_conv_swiglu_adds_inner_times_kernel_plus_bias_parameters_per_block(kernel):
    inner = swiglu_inner_size(32, 4)
    for kw, blocks in ((dict(), 2), (dict(separate_nets=True), 4), (dict(mlp_t=True, pos_encodings="none"), 2),
                       (dict(arch="hrm", layers=1, H_layers=1, puzzle_emb_len=0), 2)):
        plain = count_parameters(build_model(tiny(**kw)))
        conv = count_parameters(build_model(tiny(**kw, mlp="conv_swiglu", conv_kernel=kernel)))
        assert conv - plain == blocks * inner * (kernel + 1), kw


@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_conv_swiglu_computes_urms_formula(kernel):
    """URM's ConvSwiGLU: a Conv1d with padding k//2 on both sides, its first S outputs, SiLU, down projection."""
    torch.manual_seed(0)
    mlp = SwiGLU(16, 4, conv_kernel=kernel)
    x = torch.randn(2, 7, 16)
    gate, up = mlp.gate_up_proj(x).chunk(2, dim=-1)
    hidden = (F.silu(gate) * up).transpose(1, 2)
    conv = F.conv1d(hidden, mlp.conv_weight, mlp.conv_bias, padding=kernel // 2, groups=hidden.shape[1])
    expected = mlp.down_proj(F.silu(conv[..., :7]).transpose(1, 2))
    assert torch.allclose(mlp(x), expected, atol=1e-6)
    assert mlp.conv_weight.abs().max() <= kernel**-0.5  # torch's Conv1d initialisation bound


def test_kernel_two_mixes_each_position_with_the_one_before():
    torch.manual_seed(0)
    mlp = SwiGLU(16, 4, conv_kernel=2)
    x = torch.randn(1, 6, 16)
    moved = x.clone()
    moved[0, 2] += 1
    changed = (mlp(moved) - mlp(x)).abs().sum(-1)[0] > 0
    assert changed.tolist() == [False, False, True, True, False, False]


def test_mlp_options_are_checked():
    with pytest.raises(ConfigError, match="unknown mlp 'gelu'; use one of swiglu, conv_swiglu"):
        build_model(tiny(mlp="gelu"))
    with pytest.raises(ConfigError, match="conv_kernel is the kernel of mlp=conv_swiglu"):
        build_model(tiny(conv_kernel=3))
    with pytest.raises(ConfigError, match="config key 'conv_kernel' must be a positive integer"):
        build_model(tiny(mlp="conv_swiglu", conv_kernel=0))


# --- URM: truncated backpropagation (grad_cycles) ------------------------------------------------------------------

def traced_step(cfg: ModelConfig, patch=None):
    """Per network call of one training step: (graph built, input dtype); then the weight gradients and how many
    calls the backward pass made (recomputed recursions)."""
    torch.manual_seed(0)
    model = TRM(cfg)
    if patch:
        patch(model)
    calls: list[tuple[bool, torch.dtype]] = []
    started: list[None] = []  # recomputation may stop inside its last call, once it has what the backward needs
    model.net.register_forward_hook(lambda module, args, out: calls.append((out.requires_grad, args[0].dtype)))
    model.net.register_forward_pre_hook(lambda module, args: started.append(None))
    inputs = torch.randint(1, 6, (2, 8), generator=torch.Generator().manual_seed(1))
    _, out = model(model.initial_state(2, "cpu"), inputs, torch.zeros(2, dtype=torch.long))
    forward_calls, forward_started = list(calls), len(started)
    out.logits.float().square().mean().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return forward_calls, grads, len(started) - forward_started


def test_one_grad_cycle_is_todays_trm_and_more_cycles_backprop_further():
    n = 2
    calls, grads, recomputed = traced_step(tiny(T=3, n=n, no_grad_dtype="bfloat16"))
    assert calls == [(False, torch.bfloat16)] * (2 * (n + 1)) + [(True, torch.float32)] * (n + 1)
    assert recomputed == 0
    calls2, grads2, recomputed2 = traced_step(tiny(T=3, n=n, no_grad_dtype="bfloat16", grad_cycles=2))
    assert calls2 == [(False, torch.bfloat16)] * (n + 1) + [(True, torch.float32)] * (2 * (n + 1))
    assert recomputed2 == n + 1  # the checkpointed recursion runs again in the backward pass
    assert grads2.keys() == grads.keys() and not all(torch.equal(grads[k], grads2[k]) for k in grads)
    calls3, _, recomputed3 = traced_step(tiny(T=3, n=n, grad_cycles=3))
    assert calls3 == [(True, torch.float32)] * (3 * (n + 1)) and recomputed3 == 2 * (n + 1)


def test_checkpointing_changes_no_gradient():
    def unrolled(model):  # the same recursions kept in memory instead of recomputed
        model.recomputed_recursion = model.latent_recursion

    _, grads, _ = traced_step(tiny(T=3, grad_cycles=3))
    _, plain, recomputed = traced_step(tiny(T=3, grad_cycles=3), patch=unrolled)
    assert recomputed == 0 and all(torch.equal(grads[k], plain[k]) for k in plain)


def test_grad_cycles_are_capped_by_a_shallower_step_and_fit_the_memory_estimate():
    cfg = tiny(T=3, n=2, grad_cycles=3)
    with recursion_depth(cfg, 1, 2):
        calls, _, recomputed = traced_step(cfg)
    assert calls == [(True, torch.float32)] * 3 and recomputed == 0
    one = estimate_memory(tiny(T=3), 4, 4, False, softmax_cross_entropy)
    three = estimate_memory(tiny(T=3, grad_cycles=3), 4, 4, False, softmax_cross_entropy)
    assert three.activations > one.activations


def test_grad_cycles_are_checked(toy_dataset, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"grad_cycles \(4\) is above T \(3\)"):
        build_model(tiny(T=3, grad_cycles=4))
    with pytest.raises(ConfigError, match="grad_cycles is a TRM option"):
        build_model(tiny(arch="hrm", H_layers=1, grad_cycles=2))
    with pytest.raises(ConfigError, match="one_step_grad .* choose one"):
        build_model(tiny(one_step_grad=True, grad_cycles=2))
    args = ["train", "cpu-sudoku6", *TINY, f"data_path={toy_dataset}", f"out_dir={tmp_path / 'run'}", "data.task="]
    assert main([*args, "grad_cycles=3", "--no-progress"]) == 2  # TINY has T=2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentloop: error: grad_cycles (3) is above T (2)") and "\n" not in err


# --- Muon ----------------------------------------------------------------------------------------------------------

def test_muon_takes_the_reasoning_matrices_and_adam_the_rest():
    model = build_model(tiny(mlp="conv_swiglu", separate_nets=True))
    hidden, dense = split_for_muon(model)
    names = {id(p): name for name, p in model.named_parameters()}
    assert len(hidden) + len(dense) == len(list(model.parameters()))
    assert {id(p) for p in hidden}.isdisjoint(id(p) for p in dense)
    assert all(p.ndim == 2 and names[id(p)].startswith(("inner.net.", "inner.net_y.")) for p in hidden)
    assert {"inner.lm_head.weight", "inner.q_head.weight", "inner.encoder.embed_tokens.embedding_weight",
            "inner.net.layers.0.mlp.conv_weight", "inner.net.layers.0.mlp.conv_bias"} <= {names[id(p)] for p in dense}
    assert "inner.net.layers.0.self_attn.qkv_proj.weight" in {names[id(p)] for p in hidden}


def muon_steps(model, muon, adam, batches: range) -> None:
    """One optimizer step per batch seed: a supervision step from the initial state, a made-up loss."""
    for seed in batches:
        inputs = torch.randint(1, 6, (4, 8), generator=torch.Generator().manual_seed(seed))
        _, out = model.inner(model.inner.initial_state(4, "cpu"), inputs, torch.zeros(4, dtype=torch.long))
        out.logits.float().square().mean().backward()
        for opt in (muon, adam):
            opt.step()
            opt.zero_grad(set_to_none=True)


def fresh(seed: int):
    """A tiny TRM initialised from `seed` with Muon and AdamATan2 as optimizer=muon splits it."""
    torch.manual_seed(seed)
    model = build_model(tiny())
    hidden, dense = split_for_muon(model)
    muon = make_muon(hidden, weight_decay=0.005)
    muon.param_groups[0]["lr"] = 0.02
    return model, muon, AdamATan2(dense, lr=1e-3, weight_decay=0.1)


def test_three_steps_saved_and_restored_then_two_equal_five_bit_for_bit():
    model, muon, adam = fresh(0)
    muon_steps(model, muon, adam, range(5))
    first, muon1, adam1 = fresh(0)
    muon_steps(first, muon1, adam1, range(3))
    buffer = io.BytesIO()
    torch.save({"weights": first.state_dict(), "muon": muon1.state_dict(), "adam": adam1.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed, muon2, adam2 = fresh(1)   # other initial weights: everything must come from the checkpoint
    resumed.load_state_dict(saved["weights"])
    muon2.load_state_dict(saved["muon"])
    adam2.load_state_dict(saved["adam"])
    muon_steps(resumed, muon2, adam2, range(3, 5))
    want, got = model.state_dict(), resumed.state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
    for a, b in ((muon, muon2), (adam, adam2)):
        for p, q in zip(a.param_groups[0]["params"], b.param_groups[0]["params"]):
            assert a.state[p].keys() == b.state[q].keys()
            assert all(torch.equal(v, b.state[q][k]) if torch.is_tensor(v) else v == b.state[q][k]
                       for k, v in a.state[p].items())


def test_unknown_optimizer_is_one_line_and_exit_2(toy_dataset, tmp_path, capsys):
    args = ["train", "cpu-sudoku6", *TINY, f"data_path={toy_dataset}", f"out_dir={tmp_path / 'run'}", "data.task="]
    assert main([*args, "optimizer=adamw", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "latentloop: error: unknown optimizer 'adamw'; use one of adam_atan2, muon"
    assert main([*args, "optimizer=muon", "muon_lr=0", "--no-progress"]) == 2
    assert "config key 'muon_lr' must be a positive number" in capsys.readouterr().err


def test_a_muon_checkpoint_resumes_only_with_muon(toy_dataset, tmp_path):
    train(tiny_config(toy_dataset, tmp_path / "run", "epochs=2", "eval_interval=2", "optimizer=muon"),
          progress=False, log=quiet)
    assert "muon" in load_train_state(resolve_checkpoint(tmp_path / "run"))
    with pytest.raises(CheckpointError, match="trained with optimizer=muon; resume it with the same optimizer"):
        train(tiny_config(toy_dataset, tmp_path / "run", "epochs=4", "eval_interval=2"), progress=False,
              resume=True, log=quiet)


# --- everything together: exact resume after SIGKILL ---------------------------------------------------------------

METHODS = ["depth_curriculum=cgar", "sup_step_weights=0.7", "mlp=conv_swiglu", "optimizer=muon", "grad_cycles=2"]


def test_sigkill_then_resume_with_every_method_is_bit_identical(toy_dataset, tmp_path):
    reference = start(toy_dataset, tmp_path / "uninterrupted", *METHODS)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    run = tmp_path / "run"
    resumed = kill_then_resume(toy_dataset, run, *METHODS)
    assert "depth curriculum: T=1 n=1 until 30%" in resumed
    assert_identical(run, tmp_path / "uninterrupted")
    got = load_train_state(resolve_checkpoint(run))["muon"]["state"]
    want = load_train_state(resolve_checkpoint(tmp_path / "uninterrupted"))["muon"]["state"]
    assert got.keys() == want.keys() and all(torch.equal(got[i]["momentum_buffer"], want[i]["momentum_buffer"])
                                             for i in want)
    assert read_config(resolve_checkpoint(run)).model.mlp == "conv_swiglu"
