"""forward_dtype=auto: bf16 where the hardware computes it natively, fp32 elsewhere; the detection is mocked, the
choice and what gets recorded are real."""

import pytest
import torch

from latentloop.config import RunConfig
from latentloop.errors import CheckpointError, ConfigError
from latentloop.models import ModelConfig, build_model, resolve_forward_dtype
from latentloop.models import config as model_config
from latentloop.models.config import cpu_flags
from latentloop.models.official_config import official_config

X86_FLAGS = "fpu vme de pse tsc msr pae avx avx2 avx512f"


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=6, seq_len=8, hidden_size=32, num_heads=2, layers=1, T=2, n=1, N_sup=2,
                puzzle_emb_ndim=32, puzzle_emb_len=1)
    return ModelConfig(**{**base, **kw})


def with_flags(monkeypatch, flags: set[str] | None) -> None:
    monkeypatch.setattr(model_config, "cpu_flags", lambda: flags)


def test_cpu_flags_are_read_from_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {X86_FLAGS} avx512_bf16\n"
                       f"bugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: {X86_FLAGS} avx512_bf16\n")
    assert cpu_flags(cpuinfo) == set(X86_FLAGS.split()) | {"avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize("flags", [set(X86_FLAGS.split()), None])
def test_auto_picks_float32_on_a_cpu_without_native_bf16(monkeypatch, flags):
    with_flags(monkeypatch, flags)
    cfg = tiny(forward_dtype="auto")
    text = resolve_forward_dtype(cfg, "cpu")
    assert cfg.forward_dtype == "float32" and cfg.dtype == torch.float32
    why = "CPU has neither avx512_bf16 nor amx_bf16" if flags else "CPU flags unknown"
    assert text.startswith(f"forward_dtype auto -> float32 ({why}")


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_picks_bfloat16_on_a_cpu_with_native_bf16(monkeypatch, flag):
    with_flags(monkeypatch, set(X86_FLAGS.split()) | {flag})
    cfg = tiny(forward_dtype="auto")
    assert resolve_forward_dtype(cfg, torch.device("cpu")) == f"forward_dtype auto -> bfloat16 (CPU has {flag})"
    assert cfg.forward_dtype == "bfloat16" and cfg.no_grad_torch_dtype == torch.bfloat16  # "" follows it


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_cuda_asks_for_native_bf16(monkeypatch, native):
    with_flags(monkeypatch, {"avx512_bf16"})   # the GPU decides, not the host CPU
    asked = {}

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked["including_emulation"] = including_emulation
        return native

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    cfg = tiny(forward_dtype="auto")
    text = resolve_forward_dtype(cfg, "cuda")
    assert cfg.forward_dtype == ("bfloat16" if native else "float32") and asked == {"including_emulation": False}
    assert text == f"forward_dtype auto -> {cfg.forward_dtype} (Some GPU has {'' if native else 'no '}native bf16)"


def test_auto_without_a_cuda_device_or_on_other_devices_is_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, why in (("cuda", "no CUDA device here"), ("mps", "native bf16 is not checked on mps")):
        cfg = tiny(forward_dtype="auto")
        assert resolve_forward_dtype(cfg, device) == f"forward_dtype auto -> float32 ({why})"


def test_a_concrete_dtype_is_left_as_it_is(monkeypatch):
    with_flags(monkeypatch, {"avx512_bf16"})
    for dtype in ("float32", "bfloat16", "float16"):
        cfg = tiny(forward_dtype=dtype)
        assert resolve_forward_dtype(cfg, "cpu") == f"forward_dtype {dtype}" and cfg.forward_dtype == dtype
    cfg = tiny(forward_dtype="auto", no_grad_dtype="bfloat16")
    with_flags(monkeypatch, set())
    assert resolve_forward_dtype(cfg, "cpu") == ("forward_dtype auto -> float32 (CPU has neither avx512_bf16 nor "
                                                 "amx_bf16), no_grad_dtype bfloat16")


def test_build_model_resolves_auto_for_the_cpu(monkeypatch):
    with_flags(monkeypatch, {"amx_bf16"})
    cfg = tiny(forward_dtype="auto")
    model = build_model(cfg)
    assert cfg.forward_dtype == "bfloat16" and model.inner.cfg.forward_dtype == "bfloat16"
    with_flags(monkeypatch, set())
    torch.manual_seed(0)
    auto = build_model(tiny(forward_dtype="auto")).state_dict()
    torch.manual_seed(0)
    fp32 = build_model(tiny(forward_dtype="float32")).state_dict()
    assert all(torch.equal(auto[k], fp32[k]) for k in fp32)


def test_an_unresolved_auto_names_no_dtype_and_a_bad_value_is_refused():
    with pytest.raises(ConfigError, match="forward_dtype=auto names no dtype"):
        tiny(forward_dtype="auto").dtype
    with pytest.raises(ConfigError, match="^forward_dtype must be one of auto, bfloat16, float32, float16, not 'fp32'$"):
        build_model(tiny(forward_dtype="fp32"))
    with pytest.raises(ConfigError, match="^no_grad_dtype must be one of bfloat16, float32, float16"):
        build_model(tiny(no_grad_dtype="auto"))


def test_the_official_config_needs_a_concrete_dtype():
    cfg = RunConfig(model=tiny(forward_dtype="auto"))
    with pytest.raises(CheckpointError, match="forward_dtype=auto names no dtype the official code can read"):
        official_config(cfg)
    cfg.model.forward_dtype = "float32"
    assert official_config(cfg)["arch"]["forward_dtype"] == "float32"
