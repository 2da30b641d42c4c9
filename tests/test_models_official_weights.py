"""Checkpoints of the official HRM/TRM code: their state-dict layout, lossless round trips, clear mismatch errors.

The layout below is the one `torch.save(model.state_dict())` gives in the official pretrain.py (compiled model wrapped
in ACTLossHead). Outside the test suite, the mapping was also checked against the official model code itself on CPU
(flash-attn stubbed with SDPA): identical logits and Q values in fp32.
"""

import pytest
import torch
import yaml

import latentloop
from latentloop.cli import main
from latentloop.config import RunConfig
from latentloop.errors import CheckpointError
from latentloop.models import ModelConfig, build_model
from latentloop.models.official_config import official_config
from latentloop.models.official_weights import load_official_state_dict, official_to_ours, ours_to_official
from latentloop.training.checkpoint import save_checkpoint, weights_for_saving
from test_models_official_config import HRM_CONFIG

P = "_orig_mod.model.inner."


def official_hrm_state_dict(vocab=6, seq_len=8, ids=1, D=32, layers=1) -> dict[str, torch.Tensor]:
    """A state dict in the official HRM layout, written out by hand (random values, the official shapes)."""
    g = torch.Generator().manual_seed(0)
    inner = 256  # SwiGLU inner size: round(4 * 32 * 2 / 3) = 85, rounded up to a multiple of 256
    shapes = {"embed_tokens.embedding_weight": (vocab, D), "lm_head.weight": (vocab, D), "q_head.weight": (2, D),
              "q_head.bias": (2,), "puzzle_emb.weights": (ids, D), "H_init": (D,), "L_init": (D,)}
    for level in ("H_level", "L_level"):
        for i in range(layers):
            shapes.update({f"{level}.layers.{i}.self_attn.qkv_proj.weight": (3 * D, D),
                           f"{level}.layers.{i}.self_attn.o_proj.weight": (D, D),
                           f"{level}.layers.{i}.mlp.gate_up_proj.weight": (2 * inner, D),
                           f"{level}.layers.{i}.mlp.down_proj.weight": (D, inner)})
    return {P + k: torch.randn(s, generator=g) * 0.3 for k, s in shapes.items()}


def hrm_config() -> ModelConfig:
    return ModelConfig(arch="hrm", vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=1, H_layers=1, T=2,
                       n=2, N_sup=3, act_continue=True, puzzle_emb_ndim=32, puzzle_emb_len=0,
                       forward_dtype="float32")


def outputs(model, steps=3):
    torch.manual_seed(1)
    batch = {"inputs": torch.randint(0, 6, (3, 8)), "labels": torch.randint(0, 6, (3, 8)),
             "puzzle_identifiers": torch.zeros(3, dtype=torch.long)}
    model.eval()
    carry, result = model.initial_carry(batch), []
    with torch.no_grad():
        for _ in range(steps):
            carry, out = model(carry, batch)
            result.append(out)
    return result


def assert_same_outputs(a, b):
    for x, y in zip(outputs(a), outputs(b)):
        for key in ("logits", "q_halt_logits", "q_continue_logits"):
            assert torch.equal(x[key], y[key]), key


def test_official_hrm_layout_round_trip_is_lossless_with_identical_outputs():
    official = official_hrm_state_dict()
    first = build_model(hrm_config())
    load_official_state_dict(first, official)
    back = ours_to_official(first.state_dict(), first.inner.cfg)
    assert back.keys() == official.keys() and all(torch.equal(back[k], official[k]) for k in official)
    second = build_model(hrm_config())
    load_official_state_dict(second, back)
    assert_same_outputs(first, second)
    # The names land where they should: H_level is the H-module, H_init the initial z_H (our y).
    down = official[P + "H_level.layers.0.mlp.down_proj.weight"]
    assert torch.equal(first.inner.H_net.layers[0].mlp.down_proj.weight, down)
    assert torch.equal(first.inner.y_init, official[P + "H_init"])


TINY = dict(vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=2, T=2, n=3, N_sup=3,
            puzzle_emb_ndim=32, forward_dtype="float32")


@pytest.mark.parametrize("kw, official_names", [
    (dict(), {"L_level.layers.1.self_attn.qkv_proj.weight", "H_init", "L_init"}),
    (dict(mlp_t=True, pos_encodings="none"), {"L_level.layers.0.mlp_t.gate_up_proj.weight", "L_init"}),
    (dict(z_mode="single"), {"L_init"}),
    (dict(z_mode="multiscale", n=6), {"H_init", "L1_init", "L6_init"}),
    (dict(arch="baseline", halt_vs_continue=True, puzzle_emb_len=0, pos_encodings="learned"),
     {"H_level.layers.1.mlp.down_proj.weight", "embed_pos.embedding_weight", "H_init"}),
])
def test_every_official_class_round_trips(kw, official_names):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, **kw})
    model = build_model(cfg)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.normal_(0, 0.3)
    official = ours_to_official(model.state_dict(), cfg)
    assert {P + name for name in official_names} <= official.keys()
    ours = official_to_ours(official, cfg)
    assert ours.keys() == model.state_dict().keys()
    assert all(torch.equal(ours[k], v) for k, v in model.state_dict().items())
    again = build_model(cfg)
    load_official_state_dict(again, official)
    assert_same_outputs(model, again)
    assert official_config(RunConfig(model=cfg))["arch"]["name"].startswith("recursive_reasoning.")


@pytest.fixture
def official_checkpoint(tmp_path):
    folder = tmp_path / "official"
    folder.mkdir()
    torch.save(official_hrm_state_dict(), folder / "step_500")
    (folder / "all_config.yaml").write_text(HRM_CONFIG)
    return folder / "step_500"


def test_load_checkpoint_reads_an_official_file(official_checkpoint, toy_dataset):
    model, cfg = latentloop.load_checkpoint(official_checkpoint, data=toy_dataset)
    m = cfg.model
    assert (m.arch, m.T, m.n, m.layers, m.H_layers, m.N_sup, m.prefix_len, m.act_continue) == \
        ("hrm", 2, 2, 1, 1, 3, 1, True)
    assert (m.vocab_size, m.seq_len, m.num_puzzle_identifiers) == (6, 8, 1)
    assert (cfg.train.loss, cfg.train.lr, cfg.train.global_batch_size) == ("softmax_cross_entropy", 7e-5, 384)
    assert cfg.train.data_path == str(toy_dataset) and not model.training
    reference = build_model(hrm_config())
    load_official_state_dict(reference, official_hrm_state_dict())
    assert_same_outputs(model, reference)


def test_info_on_an_official_checkpoint(official_checkpoint, toy_dataset, capsys):
    assert main(["info", str(official_checkpoint), "--data", str(toy_dataset)]) == 0
    out = capsys.readouterr().out
    assert "HRM" in out and "1 row x 32 fp32 (128 bytes)" in out and "depth per step:    6 layers" in out


def test_rope_models_need_the_dataset_for_their_length(official_checkpoint):
    with pytest.raises(CheckpointError, match="pass the dataset"):
        latentloop.load_checkpoint(official_checkpoint)


def test_mismatches_name_what_is_wrong(official_checkpoint, toy_dataset, tmp_path):
    folder = official_checkpoint.parent
    state = official_hrm_state_dict(vocab=7)
    torch.save(state, folder / "step_1")
    with pytest.raises(CheckpointError, match="wrong vocabulary: .* 7 tokens, the dataset 6"):
        latentloop.load_checkpoint(folder / "step_1", data=toy_dataset)
    torch.save(official_hrm_state_dict(ids=5), folder / "step_2")
    with pytest.raises(CheckpointError, match="wrong puzzle-embedding rows: .* 5, the dataset has 1"):
        latentloop.load_checkpoint(folder / "step_2", data=toy_dataset)
    torch.save({**official_hrm_state_dict(), P + "z_H_gate.weight": torch.zeros(2)}, folder / "step_3")
    with pytest.raises(CheckpointError, match="unknown key '_orig_mod.model.inner.z_H_gate.weight'"):
        latentloop.load_checkpoint(folder / "step_3", data=toy_dataset)
    state = official_hrm_state_dict()
    del state[P + "L_init"]
    torch.save(state, folder / "step_4")
    with pytest.raises(CheckpointError, match="lacks inner.L_init"):
        latentloop.load_checkpoint(folder / "step_4", data=toy_dataset)
    (folder / "all_config.yaml").write_text(HRM_CONFIG.replace("num_heads: 4", "num_heads: 4\n  z_gate: true"))
    with pytest.raises(CheckpointError, match="arch keys this loader does not know: z_gate"):
        latentloop.load_checkpoint(official_checkpoint, data=toy_dataset)
    (folder / "all_config.yaml").write_text(HRM_CONFIG.replace("hrm.hrm_act_v1@", "hrm.hrm_act_v2@"))
    with pytest.raises(CheckpointError, match="unknown official model class"):
        latentloop.load_checkpoint(official_checkpoint, data=toy_dataset)
    lonely = tmp_path / "lonely" / "step_9"
    lonely.parent.mkdir()
    torch.save(official_hrm_state_dict(), lonely)
    with pytest.raises(CheckpointError, match="needs its all_config.yaml"):
        latentloop.load_checkpoint(lonely, data=toy_dataset)


class NotATensor:
    pass


def test_files_are_read_without_running_code(official_checkpoint, toy_dataset):
    torch.save({"weights": NotATensor()}, official_checkpoint)
    with pytest.raises(CheckpointError, match="cannot read official checkpoint"):
        latentloop.load_checkpoint(official_checkpoint, data=toy_dataset)
    torch.save([torch.zeros(1)], official_checkpoint)
    with pytest.raises(CheckpointError, match="not a state dict"):
        latentloop.load_checkpoint(official_checkpoint, data=toy_dataset)


def test_export_then_eval_with_the_cli(toy_dataset, tmp_path, capsys):
    cfg = RunConfig()
    cfg.model = ModelConfig(**{**TINY, "mlp_t": True, "pos_encodings": "none", "puzzle_emb_len": 4})
    cfg.train.data_path = str(toy_dataset)
    model = build_model(cfg.model)
    save_checkpoint(tmp_path / "run", 40, cfg, weights_for_saving(model))
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    raw = yaml.safe_load((tmp_path / "out" / "all_config.yaml").read_text())   # as the official evaluate.py reads it
    assert raw["arch"]["name"] == "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"
    assert raw["arch"]["mlp_t"] and raw["arch"]["L_cycles"] == 3 and raw["data_paths"] == [str(toy_dataset)]
    exported = torch.load(tmp_path / "out" / "step_40", weights_only=True)
    assert all(k.startswith(P) for k in exported)
    loaded, _ = latentloop.load_checkpoint(tmp_path / "out" / "step_40")   # mlp_t stores the length itself
    assert_same_outputs(model, loaded)
    assert main(["eval", str(tmp_path / "out" / "step_40"), "--max-examples", "8"]) == 0
    assert "exact accuracy" in capsys.readouterr().out
    cfg.model.one_step_grad = True
    save_checkpoint(tmp_path / "run2", 1, cfg, weights_for_saving(build_model(cfg.model)))
    assert main(["export", str(tmp_path / "run2"), str(tmp_path / "out2")]) == 2
    assert "no official layout" in capsys.readouterr().err

