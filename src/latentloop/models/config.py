"""Architecture hyperparameters, named as in the papers (T, n, N_sup); official key names are aliases (config.py).

One config describes every architecture (`arch`):

* ``trm``: the Tiny Recursive Model. Its ablations (TRM paper, Tables 1-3) are options of the same model:
  ``one_step_grad``, ``separate_nets``, ``z_mode`` (+ ``num_z``), ``act_continue``, and any ``layers``, T, n.
* ``hrm``: the Hierarchical Reasoning Model. T = H_cycles (high-level updates per step), n = L_cycles (low-level
  updates per high-level update), ``layers`` = L_layers (the L-module) and ``H_layers`` (the H-module).
  The official recipe also sets ``act_continue=true`` and ``puzzle_emb_len=0`` (one prefix position): see the
  hrm-* presets.
* ``baseline``: the papers' "Direct pred" row, a ``layers``-deep Transformer applied once per supervision step.
  T, n and H_layers are unused.

Options from later papers (docs/variants.md, "Training methods after TRM"): ``mlp=conv_swiglu`` with
``conv_kernel`` (URM's ConvSwiGLU, every arch) and ``grad_cycles`` (URM's truncated backpropagation, TRM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from latentloop.errors import ConfigError

ARCHS = ("trm", "hrm", "baseline")
Z_MODES = ("yz", "single", "multiscale")
MLPS = ("swiglu", "conv_swiglu")
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
AUTO_DTYPE = "auto"   # forward_dtype=auto: bfloat16 where the device computes it natively, else float32
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")   # x86 flags of native bf16 arithmetic (AVX-512 BF16, AMX-BF16)


@dataclass(frozen=True)
class Range:
    """The values a numeric config key accepts: low..high (each end open or closed), finite, said in `words`."""

    words: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


POSITIVE_INT = Range("a positive integer", low=1)
NON_NEGATIVE_INT = Range("a non-negative integer (0 or more)", low=0)
POSITIVE = Range("a positive number", low=0, low_open=True)
NON_NEGATIVE = Range("a non-negative number", low=0)
PROBABILITY = Range("a number in [0, 1]", low=0, high=1)
BELOW_ONE = Range("a number in [0, 1)", low=0, high=1, high_open=True)
SEED = Range("an integer in 0..2**32-1 (numpy's seed range)", low=0, high=2**32 - 1)

# Every numeric ModelConfig field and the values it may take (cross-field rules live in models.check_config).
MODEL_RANGES: dict[str, Range] = {
    "vocab_size": POSITIVE_INT, "seq_len": POSITIVE_INT, "num_puzzle_identifiers": POSITIVE_INT,
    "hidden_size": POSITIVE_INT, "num_heads": POSITIVE_INT, "expansion": POSITIVE,
    "layers": POSITIVE_INT, "H_layers": NON_NEGATIVE_INT, "T": POSITIVE_INT, "n": POSITIVE_INT, "N_sup": POSITIVE_INT,
    "halt_exploration_prob": PROBABILITY, "num_z": POSITIVE_INT,
    "puzzle_emb_ndim": NON_NEGATIVE_INT,    # 0 disables the puzzle embedding
    "puzzle_emb_len": NON_NEGATIVE_INT,     # 0 = ceil(puzzle_emb_ndim / hidden_size)
    "rms_norm_eps": POSITIVE, "rope_theta": POSITIVE, "conv_kernel": POSITIVE_INT, "grad_cycles": POSITIVE_INT,
}  # H_layers: TRM and the baseline ignore it (official TRM configs say 0); HRM needs 1 or more


def check_ranges(section: Any, ranges: dict[str, Range]) -> None:
    """Raise ConfigError for the first field of `section` whose value lies outside its range in `ranges`."""
    for name, allowed in ranges.items():
        value = getattr(section, name)
        if value not in allowed:
            raise ConfigError(f"config key {name!r} must be {allowed.words}, got {value!r}")


def validate_model_config(cfg: "ModelConfig") -> None:
    """Check every numeric model field against MODEL_RANGES (see config.validate, which runs this)."""
    check_ranges(cfg, MODEL_RANGES)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved next to every checkpoint."""

    arch: str = "trm"               # trm | hrm | baseline
    vocab_size: int = 11
    seq_len: int = 81
    num_puzzle_identifiers: int = 1
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    layers: int = 2                 # official: L_layers (TRM's net, HRM's L-module, the baseline's depth)
    H_layers: int = 4               # HRM's high-level module; TRM ignores it, as the official code does
    T: int = 3                      # official: H_cycles; outer recursions per supervision step
    n: int = 6                      # official: L_cycles; latent updates per recursion
    N_sup: int = 16                 # official: halt_max_steps; supervision steps
    halt_exploration_prob: float = 0.1
    act_continue: bool = False      # HRM's ACT: halt when q_halt > q_continue, train q_continue (official:
                                    # not no_ACT_continue); costs one more forward pass per step
    halt_vs_continue: bool = False  # halt when q_halt > q_continue without training q_continue, as the official
                                    # transformers_baseline does (its q_continue stays near its init); else q_halt > 0
    one_step_grad: bool = False     # TRM ablation: backprop only the last z and y updates (HRM's 1-step gradient)
    separate_nets: bool = False     # TRM ablation: y is updated by its own network (f_H), z by `net` (f_L)
    z_mode: str = "yz"              # TRM ablation (Table 2): yz | single (only z) | multiscale (num_z latents)
    num_z: int = 6                  # latents of z_mode=multiscale (official trm_hier6: 6; needs n <= num_z)
    mlp_t: bool = False             # TRM-MLP: token-mixing SwiGLU instead of attention
    mlp: str = "swiglu"             # swiglu | conv_swiglu: URM's ConvSwiGLU (arXiv 2512.14693), a depthwise
                                    # convolution over positions after the gating of every block's channel MLP
    conv_kernel: int = 2            # ConvSwiGLU's kernel in positions (URM: 2, each position and the one before)
    grad_cycles: int = 1            # TRM: recursions of the T per step that are backpropagated, the last ones (URM's
                                    # truncated backprop through loops); 1 = the paper's TRM, T = all of them
    pos_encodings: str = "rope"     # rope | learned | none
    puzzle_emb_ndim: int = 512      # 0 disables the puzzle embedding
    puzzle_emb_len: int = 16        # prefix positions; 0 means ceil(puzzle_emb_ndim / hidden_size)
    forward_dtype: str = "bfloat16"  # or "auto": resolve_forward_dtype picks bfloat16 or float32 for the device
    no_grad_dtype: str = ""         # dtype of the recursions that never get a gradient (TRM's first T-1, all but
                                    # HRM's last L and H updates); "" = forward_dtype. bfloat16 makes them cheaper
                                    # on GPUs and on CPUs with AVX-512 BF16 or AMX while the gradient stays fp32
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def dtype(self) -> torch.dtype:
        if self.forward_dtype == AUTO_DTYPE:
            raise ConfigError("forward_dtype=auto names no dtype until resolve_forward_dtype picks one for a device")
        return DTYPES[self.forward_dtype]

    @property
    def no_grad_torch_dtype(self) -> torch.dtype:
        """The dtype of the no-gradient recursions: no_grad_dtype, or the forward dtype when it is empty."""
        return DTYPES[self.no_grad_dtype or self.forward_dtype]

    @property
    def prefix_len(self) -> int:
        """Number of puzzle-embedding prefix positions in front of the tokens."""
        if self.puzzle_emb_ndim == 0:
            return 0
        return self.puzzle_emb_len or -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def num_positions(self) -> int:
        return self.seq_len + self.prefix_len

    @property
    def network_calls(self) -> int:
        """Network applications per supervision step (TRM, HRM: T(n+1); the baseline: 1)."""
        return 1 if self.arch == "baseline" else self.T * (self.n + 1)

    @property
    def depth(self) -> int:
        """Effective depth per supervision step in layers, the TRM paper's T(n+1)*layers (HRM: T*n*L + T*H)."""
        if self.arch == "baseline":
            return self.layers
        if self.arch == "hrm":
            return self.T * self.n * self.layers + self.T * self.H_layers
        return self.network_calls * self.layers

    @property
    def forward_passes(self) -> int:
        """Forward passes per optimizer step (the TRM paper's NFP): 2 with the Q-continue target, else 1."""
        return 2 if self.act_continue else 1


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU feature flags of Linux's /proc/cpuinfo (its x86 `flags` line); None where that file cannot be read
    (other systems), so that forward_dtype=auto falls back to float32 rather than guess."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes bf16 natively (not emulated, which is slower than fp32), and why, in words."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device here"
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch (2.2, 2.3) has no such argument and reports native support only
            native = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device)
        return native, f"{name} {'has' if native else 'has no'} native bf16"
    if device.type == "cpu":
        flags = cpu_flags()
        if flags is None:
            return False, "CPU flags unknown: no /proc/cpuinfo on this system"
        found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        if found:
            return True, f"CPU has {' and '.join(found)}"
        return False, f"CPU has neither {' nor '.join(BF16_CPU_FLAGS)}"
    return False, f"native bf16 is not checked on {device.type}"


def resolve_forward_dtype(cfg: ModelConfig, device: torch.device | str) -> str:
    """Replace forward_dtype=auto in `cfg` by the dtype `device` runs fastest (bfloat16 where native, else
    float32), so that every config saved or logged afterwards names the dtype really used and a checkpoint reloaded
    on another machine computes what it trained with. Returns the precision in words, e.g. "forward_dtype auto ->
    bfloat16 (CPU has avx512_bf16)"; a concrete forward_dtype is left as it is. no_grad_dtype="" follows the result."""
    why = ""
    if cfg.forward_dtype == AUTO_DTYPE:
        native, why = native_bf16(torch.device(device))
        cfg.forward_dtype = "bfloat16" if native else "float32"
    text = f"forward_dtype {AUTO_DTYPE} -> {cfg.forward_dtype} ({why})" if why else f"forward_dtype {cfg.forward_dtype}"
    if cfg.no_grad_dtype and cfg.no_grad_dtype != cfg.forward_dtype:
        text += f", no_grad_dtype {cfg.no_grad_dtype}"
    return text
