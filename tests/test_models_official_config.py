"""all_config.yaml of the official HRM/TRM code: read and written with PyYAML as the official pretrain.py and
evaluate.py do, Hydra's `${...}` interpolations resolved as OmegaConf does, and mapped onto our config and back."""

import pytest
import torch
import yaml

from latentloop.cli import main
from latentloop.config import RunConfig
from latentloop.errors import CheckpointError
from latentloop.models import ModelConfig, build_model
from latentloop.models.official_config import (config_from_official, official_config, read_official_config,
                                               write_official_config)

# What the official pretrain.py writes (`yaml.dump(config.model_dump())`) for an HRM run, one long value folded.
HRM_CONFIG = """arch:
  H_cycles: 2
  H_layers: 1
  L_cycles: 2
  L_layers: 1
  expansion: 4
  forward_dtype: float32
  halt_exploration_prob: 0.1
  halt_max_steps: 3
  hidden_size: 32
  loss:
    loss_type: softmax_cross_entropy
    name: losses@ACTLossHead
  name: hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1
  num_heads: 4
  pos_encodings: rope
  puzzle_emb_ndim: 32
beta1: 0.9
beta2: 0.95
checkpoint_every_eval: true
checkpoint_path: checkpoints/Sudoku-extreme-1k-aug-1000 ACT-torch/HierarchicalReasoningModel_ACTV1
  amber-dog
data_path: data/not-here
epochs: 20000
eval_interval: 2000
eval_save_outputs: []
global_batch_size: 384
lr: 7.0e-05
lr_min_ratio: 1.0
lr_warmup_steps: 2000
project_name: Sudoku-extreme-1k-aug-1000 ACT-torch
puzzle_emb_lr: 7.0e-05
puzzle_emb_weight_decay: 1.0
run_name: HierarchicalReasoningModel_ACTV1 amber-dog
seed: 0
weight_decay: 1.0
"""


def write(tmp_path, text: str):
    path = tmp_path / "all_config.yaml"
    path.write_text(text)
    return path


def test_reads_what_the_official_pretrain_writes(tmp_path):
    raw = read_official_config(write(tmp_path, HRM_CONFIG))
    assert raw["checkpoint_path"].endswith("HierarchicalReasoningModel_ACTV1 amber-dog")   # folded line
    assert raw["lr"] == 7e-5 and raw["eval_save_outputs"] == [] and raw["arch"]["loss"]["name"] == "losses@ACTLossHead"
    cfg = config_from_official(raw)
    m = cfg.model
    assert (m.arch, m.T, m.n, m.layers, m.H_layers, m.N_sup, m.prefix_len, m.act_continue) == \
        ("hrm", 2, 2, 1, 1, 3, 1, True)
    assert (cfg.train.loss, cfg.train.lr, cfg.train.global_batch_size) == ("softmax_cross_entropy", 7e-5, 384)


def test_writes_what_the_official_writer_writes_and_reads_it_back(tmp_path):
    cfg = RunConfig()
    cfg.train.data_path = "data/sudoku-extreme-1k-aug-1000"
    raw = official_config(cfg)
    path = write_official_config(raw, tmp_path)
    assert path.read_text() == yaml.dump(raw)   # the official pretrain.py's own call
    assert yaml.safe_load(path.read_text()) == raw == read_official_config(path)   # evaluate.py's reader, and ours
    tricky = {"arch": {"name": "a@B", "eps": 1e-05, "flag": False, "none": None, "inf": float("inf")},
              "paths": ["x y", "1"], "evaluators": [{"name": "arc@ARC", "k": 2}], "empty": [], "text": "it's: #1",
              "yes": "no", "long": "word " * 30}
    assert read_official_config(write_official_config(tricky, tmp_path)) == tricky


ROUND_TRIP_FIELDS = ("arch", "z_mode", "hidden_size", "num_heads", "expansion", "layers", "T", "n", "N_sup",
                     "halt_exploration_prob", "act_continue", "halt_vs_continue", "mlp_t", "pos_encodings", "puzzle_emb_ndim", "prefix_len",
                     "forward_dtype", "rms_norm_eps", "rope_theta")


@pytest.mark.parametrize("kw", [
    dict(),
    dict(mlp_t=True, pos_encodings="none", act_continue=True, puzzle_emb_len=4),
    dict(z_mode="single", halt_exploration_prob=0.2),
    dict(z_mode="multiscale", n=6),
    dict(arch="hrm", H_layers=3, act_continue=True, puzzle_emb_len=0, rope_theta=500.0),
    dict(arch="hrm", mlp_t=True, pos_encodings="none", act_continue=True, puzzle_emb_len=0),
    dict(arch="baseline", halt_vs_continue=True, puzzle_emb_len=0, pos_encodings="learned", forward_dtype="float32"),
])
def test_official_config_maps_back_to_the_same_model(kw, tmp_path):
    cfg = RunConfig()
    cfg.model = ModelConfig(**{**dict(hidden_size=32, num_heads=4, layers=2, T=2, n=3, N_sup=3, puzzle_emb_ndim=32),
                               **kw})
    cfg.train.data_path, cfg.train.lr, cfg.train.seed = "data/x", 3e-4, 7
    back = config_from_official(read_official_config(write_official_config(official_config(cfg), tmp_path)))
    fields = {"trm": ROUND_TRIP_FIELDS, "hrm": ROUND_TRIP_FIELDS + ("H_layers",),
              "baseline": tuple(k for k in ROUND_TRIP_FIELDS if k not in ("T", "n"))}[cfg.model.arch]
    assert {k: getattr(back.model, k) for k in fields} == {k: getattr(cfg.model, k) for k in fields}
    assert (back.train.data_path, back.train.lr, back.train.seed) == ("data/x", 3e-4, 7)
    assert back.train.loss == cfg.train.loss


BASELINE_ARCH = {"name": "recursive_reasoning.transformers_baseline@Model_ACTV2", "H_cycles": 1, "H_layers": 2,
                 "hidden_size": 32, "num_heads": 4, "expansion": 4, "puzzle_emb_ndim": 32, "pos_encodings": "rope",
                 "halt_max_steps": 3, "halt_exploration_prob": 0.1, "loss": {"name": "losses@ACTLossHead"}}


def test_an_imported_baseline_halts_on_q_halt_over_an_untrained_q_continue():
    """Model_ACTV2 halts when q_halt > q_continue, and its loss head never builds a Q-continue target."""
    m = config_from_official({"arch": BASELINE_ARCH}).model
    assert (m.arch, m.halt_vs_continue, m.act_continue) == ("baseline", True, False)
    m.vocab_size, m.seq_len = 6, 8
    model = build_model(m)
    assert model.halt_rule == "q_halt_vs_continue" and not model.q_continue_target
    assert official_config(RunConfig(model=m))["arch"]["name"] == BASELINE_ARCH["name"]


@pytest.mark.parametrize("kw, halts", [
    (dict(arch="baseline", puzzle_emb_len=0), "when q_halt > 0"),
    (dict(arch="baseline", puzzle_emb_len=0, act_continue=True), "when q_halt > q_continue and trains q_continue"),
    (dict(halt_vs_continue=True), "when q_halt > q_continue without training q_continue"),
    (dict(arch="hrm", puzzle_emb_len=0), "when q_halt > 0"),
])
def test_a_model_that_halts_otherwise_than_its_official_class_is_not_exported(kw, halts):
    """all_config.yaml has no key for the halting rule: importing would give the official class's, not this one."""
    cfg = RunConfig()
    cfg.model = ModelConfig(**{**dict(hidden_size=32, num_heads=4, puzzle_emb_ndim=32), **kw})
    with pytest.raises(CheckpointError, match=f"this model halts {halts}") as error:
        official_config(cfg)
    assert "\n" not in str(error.value)


def test_interpolations_resolve_as_omegaconf_does(tmp_path):
    """Expected values are what OmegaConf.to_container(OmegaConf.load(path), resolve=True) gives for this file."""
    raw = read_official_config(write(tmp_path, """arch:
  name: recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1
  hidden_size: 64
  puzzle_emb_ndim: ${.hidden_size}
  L_cycles: ${..cycles}
  H_cycles: ${arch.puzzle_emb_len}
  puzzle_emb_len: ${..sizes.1}
  L_layers: 2
  loss:
    name: losses@ACTLossHead
    note: ndim ${..puzzle_emb_ndim} x ${...sizes}
cycles: 6
sizes: [8, 2]
run_name: ${arch.loss.note}
"""))
    arch = raw["arch"]
    assert (arch["puzzle_emb_ndim"], arch["L_cycles"], arch["H_cycles"], arch["puzzle_emb_len"]) == (64, 6, 2, 2)
    assert raw["run_name"] == arch["loss"]["note"] == "ndim 64 x [8, 2]"
    m = config_from_official(raw).model
    assert (m.puzzle_emb_ndim, m.n, m.T, m.puzzle_emb_len) == (64, 6, 2, 2)


@pytest.mark.parametrize("text, message", [
    ("arch: [1, 2\n", "not valid YAML: .*line 2"),
    ("arch:\n  name: x\n  hidden_size: ${.width}\n", r"cannot resolve \$\{\.width\}: there is no key 'width'"),
    ("arch:\n  dir: ${oc.env:HOME}\n", "OmegaConf resolvers are not supported"),
    ("arch:\n  a: ${.b}\n  b: ${.a}\n", "cycle"),
    ("arch:\n  a: ${....b}\n", "above the top of the file"),
    ("- arch\n", "no 'arch' section"),
])
def test_bad_config_files_give_one_line(text, message, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(CheckpointError, match=message) as error:
        read_official_config(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_bad_config_file_stops_the_cli_with_exit_2(tmp_path, capsys):
    torch.save({}, tmp_path / "step_1")
    write(tmp_path, "arch:\n  name: x\n  hidden_size: ${.width}\n")
    assert main(["info", str(tmp_path / "step_1")]) == 2
    err = capsys.readouterr().err
    assert "there is no key 'width'" in err and err.strip().count("\n") == 0 and "Traceback" not in err
