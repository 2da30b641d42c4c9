"""The speed options (docs/performance.md): off by default, and when on they run and stay close to fp32 eager."""

import pytest
import torch

from latentloop.config import apply_overrides, load_preset
from latentloop.errors import ConfigError
from latentloop.models import ModelConfig, build_model
from latentloop.models.trm import RecurrentModel
from latentloop.training.checkpoint import load_checkpoint
from latentloop.training.loop import train

TINY = ["hidden_size=32", "num_heads=2", "layers=1", "T=2", "n=1", "N_sup=2", "puzzle_emb_ndim=32",
        "puzzle_emb_len=1", "mlp_t=false", "pos_encodings=rope", "global_batch_size=32", "lr=3e-3",
        "lr_warmup_steps=5", "eval_batch_size=64"]


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=6, seq_len=8, hidden_size=32, num_heads=4, layers=2, T=3, n=2, N_sup=4,
                puzzle_emb_ndim=32, puzzle_emb_len=2, forward_dtype="float32")
    base.update(kw)
    return ModelConfig(**base)


def one_step(cfg: ModelConfig, compile_backend: str | None = None):
    """Output and weight gradients of one supervision step from a fixed seed and batch."""
    torch.manual_seed(0)
    model = build_model(cfg)
    if compile_backend:
        model.inner.compile_networks(backend=compile_backend)
    inputs = torch.randint(1, cfg.vocab_size, (4, cfg.seq_len), generator=torch.Generator().manual_seed(1))
    state = model.inner.initial_state(4, "cpu")
    state, out = model.inner(state, inputs, torch.zeros(4, dtype=torch.long))
    out.logits.float().square().mean().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return state, out.logits.detach(), grads


@pytest.mark.parametrize("arch", ["trm", "hrm"])
def test_no_grad_dtype_equal_to_forward_dtype_changes_nothing(arch):
    base_state, base_logits, base_grads = one_step(tiny(arch=arch))
    state, logits, grads = one_step(tiny(arch=arch, no_grad_dtype="float32"))
    assert torch.equal(logits, base_logits) and torch.equal(state.y, base_state.y)
    assert all(torch.equal(grads[k], base_grads[k]) for k in base_grads)


@pytest.mark.parametrize("arch", ["trm", "hrm"])
def test_bf16_no_grad_recursions_keep_the_state_and_gradient_in_fp32(arch):
    _, base_logits, base_grads = one_step(tiny(arch=arch))
    state, logits, grads = one_step(tiny(arch=arch, no_grad_dtype="bfloat16"))
    assert state.y.dtype == state.z.dtype == logits.dtype == torch.float32
    assert not torch.equal(logits, base_logits)          # the no-grad recursions really ran in bf16 ...
    assert torch.allclose(logits, base_logits, atol=0.05, rtol=0.05)  # ... and stayed close to fp32
    assert grads.keys() == base_grads.keys()


def test_unknown_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="no_grad_dtype"):
        build_model(tiny(no_grad_dtype="float8"))
    with pytest.raises(ConfigError, match="forward_dtype"):
        build_model(tiny(forward_dtype="fp32"))


def test_compiled_networks_keep_names_and_match_eager():
    _, base_logits, base_grads = one_step(tiny())
    _, logits, grads = one_step(tiny(), compile_backend="aot_eager")
    assert grads.keys() == base_grads.keys()              # parameter names unchanged: checkpoints and EMA work
    assert torch.allclose(logits, base_logits, atol=1e-5)
    assert all(torch.allclose(grads[k], base_grads[k], atol=1e-5) for k in base_grads)


def test_training_with_compile_true_compiles_and_saves_loadable_checkpoints(toy_dataset, tmp_path, monkeypatch):
    compiled = []
    original = RecurrentModel.compile_networks

    def quick(self, backend="inductor"):  # the same graphs, without generating C++ (seconds, not a minute)
        compiled.append(backend)
        original(self, backend="aot_eager")

    monkeypatch.setattr(RecurrentModel, "compile_networks", quick)
    cfg = apply_overrides(load_preset("cpu-sudoku6"), TINY + [f"data_path={toy_dataset}", f"out_dir={tmp_path}",
                                                              "epochs=2", "eval_interval=2", "compile=true",
                                                              "no_grad_dtype=bfloat16"])
    result = train(cfg, progress=False, log=lambda *_: None)
    assert compiled == ["inductor"] and result.final_eval is not None
    model, loaded = load_checkpoint(tmp_path)
    assert loaded.train.compile and loaded.model.no_grad_dtype == "bfloat16"
    assert not any("_orig_mod" in name for name in model.state_dict())
