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
