import pytest

from latentloop.config import apply_overrides, load_preset, preset_names
from latentloop.errors import ConfigError


def test_presets_load_and_paper_recipe_values():
    assert {"cpu-sudoku6", "trm-sudoku-mlp", "trm-sudoku-att"} <= set(preset_names())
    cfg = load_preset("trm-sudoku-mlp")
    assert (cfg.model.T, cfg.model.n, cfg.model.N_sup, cfg.model.layers) == (3, 6, 16, 2)
    assert cfg.model.mlp_t and cfg.model.pos_encodings == "none"
    assert (cfg.train.global_batch_size, cfg.train.epochs, cfg.train.eval_interval) == (768, 50000, 5000)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.puzzle_emb_lr, cfg.train.ema) == (1e-4, 1.0, 1e-4, True)


def test_official_keys_are_aliases():
    cfg = apply_overrides(load_preset("trm-sudoku-att"),
                          ["arch.H_cycles=2", "arch.L_cycles=4", "arch.halt_max_steps=8", "arch.L_layers=3",
                           "global_batch_size=128", "+lr=3e-4", "arch.loss.loss_type=softmax_cross_entropy",
                           "data_paths=[data/x]", "ema=False", "epochs=1e4", "+run_name=mine"])
    m, t = cfg.model, cfg.train
    assert cfg.name == "mine"
    assert (m.T, m.n, m.N_sup, m.layers) == (2, 4, 8, 3)
    assert (t.global_batch_size, t.lr, t.loss, t.data_path, t.ema, t.epochs) == (128, 3e-4, "softmax_cross_entropy",
                                                                                  "data/x", False, 10000)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean"):
        apply_overrides(load_preset("cpu-sudoku6"), ["hiden_size=3"])
    with pytest.raises(ConfigError, match="expects int"):
        apply_overrides(load_preset("cpu-sudoku6"), ["T=two"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(load_preset("cpu-sudoku6"), ["T"])


def test_unknown_preset_and_config_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        load_preset("cpu-sudoku")
    path = tmp_path / "mine.toml"
    path.write_text('[model]\nT = 5\n[train]\nlr = 0.5\n')
    cfg = load_preset(str(path))
    assert cfg.name == "mine" and cfg.model.T == 5 and cfg.train.lr == 0.5
    path.write_text('[model]\nT = [5\n')
    with pytest.raises(ConfigError, match="cannot parse"):
        load_preset(str(path))
    path.write_text('[modle]\nT = 5\n')
    with pytest.raises(ConfigError, match="unknown config section"):
        load_preset(str(path))


def test_every_numeric_field_has_a_range_and_every_preset_lies_in_it():
    import dataclasses

    from latentloop.config import TRAIN_RANGES, TrainConfig, validate
    from latentloop.models.config import MODEL_RANGES, ModelConfig

    for section, ranges in ((ModelConfig, MODEL_RANGES), (TrainConfig, TRAIN_RANGES)):
        numeric = {f.name for f in dataclasses.fields(section) if f.type in ("int", "float")}
        assert numeric == set(ranges), section.__name__
    for name in preset_names():
        validate(load_preset(name))


@pytest.mark.parametrize("override, message", [
    ("hidden_size=-4", "config key 'hidden_size' must be a positive integer, got -4"),
    ("num_heads=0", "config key 'num_heads' must be a positive integer, got 0"),
    ("arch.H_cycles=0", "config key 'T' must be a positive integer, got 0"),
    ("N_sup=0", "config key 'N_sup' must be a positive integer, got 0"),
    ("expansion=0", "config key 'expansion' must be a positive number, got 0.0"),
    ("puzzle_emb_ndim=-1", "config key 'puzzle_emb_ndim' must be a non-negative integer (0 or more), got -1"),
    ("halt_exploration_prob=1.5", "config key 'halt_exploration_prob' must be a number in [0, 1], got 1.5"),
    ("rope_theta=inf", "config key 'rope_theta' must be a positive number, got inf"),
    ("global_batch_size=0", "config key 'global_batch_size' must be a positive integer, got 0"),
    ("weight_decay=-0.1", "config key 'weight_decay' must be a non-negative number, got -0.1"),
    ("lr_warmup_steps=-1", "config key 'lr_warmup_steps' must be a non-negative integer (0 or more), got -1"),
    ("beta2=1", "config key 'beta2' must be a number in [0, 1), got 1.0"),
    ("ema_decay=-0.5", "config key 'ema_rate' must be a number in [0, 1], got -0.5"),
    ("threads=-2", "config key 'threads' must be a non-negative integer (0 or more), got -2"),
    ("seed=-1", "config key 'seed' must be an integer in 0..2**32-1"),
])
def test_out_of_range_values_are_one_config_error(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(load_preset("cpu-sudoku6"), [override])
    assert str(info.value).startswith(message), str(info.value)


def test_range_edges_that_presets_and_ablations_use_are_allowed():
    cfg = apply_overrides(load_preset("cpu-sudoku6"), [
        "lr=0", "weight_decay=0", "lr_warmup_steps=0", "halt_exploration_prob=0", "halt_exploration_prob=1",
        "ema_rate=1", "beta1=0", "puzzle_emb_ndim=0", "puzzle_emb_len=0", "H_layers=0", "eval_max_examples=0",
        "eval_batch_size=0", "threads=0", "checkpoint_interval=0", "keep_last=0", "max_memory_gb=0",
        "lr_min_ratio=0", "T=1", "n=1", "N_sup=1", "layers=1"])
    assert cfg.model.H_layers == 0 and cfg.train.lr == 0


def test_the_model_and_training_checks_share_the_ranges():
    """Configs made in Python skip apply_overrides; build_model and train check the same table."""
    from latentloop.config import TrainConfig
    from latentloop.models import build_model
    from latentloop.models.config import ModelConfig
    from latentloop.training.loop import _check_settings

    with pytest.raises(ConfigError, match="config key 'hidden_size' must be a positive integer, got -4"):
        build_model(ModelConfig(hidden_size=-4))
    with pytest.raises(ConfigError, match="arch=hrm needs H_layers of 1 or more"):
        build_model(ModelConfig(arch="hrm", H_layers=0, vocab_size=6, seq_len=8, hidden_size=32, num_heads=4))
    with pytest.raises(ConfigError, match="config key 'eval_interval' must be a positive integer, got 0"):
        _check_settings(TrainConfig(eval_interval=0))
