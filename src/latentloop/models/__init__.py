"""Model factory: every architecture is an inner recurrent model wrapped by the shared ACT wrapper."""

from __future__ import annotations

from latentloop.errors import ConfigError
from latentloop.models.act import ACT, Carry
from latentloop.models.baseline import TransformerBaseline
from latentloop.models.config import (ARCHS, AUTO_DTYPE, DTYPES, MLPS, Z_MODES, ModelConfig, resolve_forward_dtype,
                                      validate_model_config)
from latentloop.models.hrm import HRM
from latentloop.models.trm import TRM

ARCHITECTURES = {"trm": TRM, "hrm": HRM, "baseline": TransformerBaseline}


def check_config(cfg: ModelConfig) -> None:
    """Reject impossible or silently ignored settings with one line that says what to change: each numeric field's
    range (models.config.MODEL_RANGES), then the rules that tie fields together."""
    validate_model_config(cfg)
    if cfg.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {cfg.arch!r}; available: {', '.join(ARCHS)}")
    if not cfg.mlp_t and cfg.pos_encodings == "rope" and (cfg.hidden_size // cfg.num_heads) % 2:
        raise ConfigError(f"RoPE needs an even head size; hidden_size {cfg.hidden_size} / num_heads {cfg.num_heads} "
                          f"gives {cfg.hidden_size // cfg.num_heads}")
    if not cfg.mlp_t and not 0 < cfg.num_heads <= cfg.hidden_size:
        raise ConfigError(f"num_heads must lie in 1..hidden_size ({cfg.hidden_size}), got {cfg.num_heads}")
    if cfg.mlp_t and cfg.pos_encodings == "rope":
        raise ConfigError("mlp_t=true mixes positions with an MLP; set pos_encodings=none (or learned)")
    if cfg.z_mode not in Z_MODES:
        raise ConfigError(f"unknown z_mode {cfg.z_mode!r}; use one of {', '.join(Z_MODES)}")
    if cfg.z_mode == "multiscale" and not 1 <= cfg.n <= cfg.num_z:
        raise ConfigError(f"z_mode=multiscale updates one of num_z={cfg.num_z} latents per latent step: "
                          f"n ({cfg.n}) must lie in 1..num_z")
    if cfg.mlp not in MLPS:
        raise ConfigError(f"unknown mlp {cfg.mlp!r}; use one of {', '.join(MLPS)}")
    if cfg.mlp != "conv_swiglu" and cfg.conv_kernel != ModelConfig.conv_kernel:
        raise ConfigError(f"conv_kernel is the kernel of mlp=conv_swiglu; mlp={cfg.mlp} would ignore it")
    if cfg.grad_cycles > cfg.T:
        raise ConfigError(f"grad_cycles ({cfg.grad_cycles}) is above T ({cfg.T}): a supervision step has only T "
                          f"recursions to backpropagate through")
    if cfg.one_step_grad and cfg.grad_cycles > 1:
        raise ConfigError("one_step_grad backpropagates less than the last recursion; grad_cycles above 1 more: "
                          "choose one")
    trm_only = [k for k, on in (("one_step_grad", cfg.one_step_grad), ("separate_nets", cfg.separate_nets),
                                ("z_mode", cfg.z_mode != "yz"), ("grad_cycles", cfg.grad_cycles != 1)) if on]
    if cfg.arch != "trm" and trm_only:
        raise ConfigError(f"{', '.join(trm_only)} {'is a TRM option' if len(trm_only) == 1 else 'are TRM options'}; "
                          f"arch={cfg.arch} would ignore it")
    if cfg.forward_dtype not in (AUTO_DTYPE, *DTYPES):
        raise ConfigError(f"forward_dtype must be one of {AUTO_DTYPE}, {', '.join(DTYPES)}, not {cfg.forward_dtype!r}")
    if cfg.no_grad_dtype and cfg.no_grad_dtype not in DTYPES:
        raise ConfigError(f"no_grad_dtype must be one of {', '.join(DTYPES)} (or \"\" for forward_dtype), not "
                          f"{cfg.no_grad_dtype!r}")
    if cfg.arch == "hrm" and cfg.H_layers < 1:  # layers, T and n are positive for every arch (MODEL_RANGES)
        raise ConfigError("every reasoning module needs at least one layer: arch=hrm needs H_layers of 1 or more")


def build_model(cfg: ModelConfig) -> ACT:
    """Build the ACT-wrapped model named by cfg.arch; act_continue selects HRM's halting and Q-continue target,
    halt_vs_continue the same halting without the target (the official transformers_baseline).

    forward_dtype=auto is resolved here for the CPU, where a model is built; training and load_checkpoint resolve it
    for their device first (resolve_forward_dtype)."""
    check_config(cfg)
    resolve_forward_dtype(cfg, "cpu")
    inner = ARCHITECTURES[cfg.arch](cfg)
    halt_rule = "q_halt_vs_continue" if cfg.act_continue or cfg.halt_vs_continue else "q_halt"
    return ACT(inner, N_sup=cfg.N_sup, exploration_prob=cfg.halt_exploration_prob, halt_rule=halt_rule,
               q_continue_target=cfg.act_continue)


def count_parameters(model) -> int:
    """Trainable dense parameters, as the papers count them (the puzzle-embedding table is a buffer)."""
    return sum(p.numel() for p in model.parameters())


def describe(cfg: ModelConfig) -> str:
    """A short human name for a configuration, e.g. "HRM", "TRM-MLP (single z)", "baseline (8 layers)"."""
    if cfg.arch == "hrm":
        return "HRM" + ("-MLP" if cfg.mlp_t else "")
    if cfg.arch == "baseline":
        return f"baseline ({cfg.layers} layers)"
    extras = [name for name, on in (("1-step grad", cfg.one_step_grad), ("separate nets", cfg.separate_nets),
                                    (f"{cfg.z_mode} z", cfg.z_mode != "yz"), ("ACT continue", cfg.act_continue)) if on]
    return ("TRM-MLP" if cfg.mlp_t else "TRM-attention") + (f" ({', '.join(extras)})" if extras else "")


__all__ = ["ACT", "Carry", "HRM", "ModelConfig", "TRM", "TransformerBaseline", "build_model", "check_config",
           "count_parameters", "describe", "resolve_forward_dtype"]
