"""Checkpoints of the official code (sapientinc/HRM, SamsungSAILMontreal/TinyRecursiveModels) <-> our models.

The official `pretrain.py` saves `torch.save(model.state_dict())` of the compiled loss head, so every key reads
`_orig_mod.model.inner.<name>` (without `_orig_mod.` when DISABLE_COMPILE was set), next to an `all_config.yaml`
that holds the Hydra config but not the dataset-derived sizes (read and written by `official_config`). With
`ema=True` TRM saves the EMA copy, so the weights in the file are the averaged ones and need no special handling.
Our modules use the same leaf names (qkv_proj, o_proj, gate_up_proj, down_proj, mlp_t, embedding_weight, weights);
only the containers differ:

    official                      ours (under `inner.`)
    embed_tokens / embed_pos      encoder.embed_tokens / encoder.embed_pos
    puzzle_emb.weights            encoder.puzzle_emb.weights      (the sparse table, a buffer in both)
    L_level (TRM)                 net
    H_level, L_level (HRM)        H_net, L_net
    H_level (transformers_baseline)  net
    H_init, L_init                y_init, z_init                  (trm_hier6: L1_init..L6_init -> z_init[0..5])
    lm_head, q_head               lm_head, q_head

Files are read with `torch.load(weights_only=True)`, so a downloaded pickle cannot run code.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from latentloop.config import RunConfig, apply_overrides
from latentloop.data.arc import check_official_numbering
from latentloop.data.format import DatasetMetadata, find_metadata
from latentloop.errors import CheckpointError, ConfigError
from latentloop.models import ACT, build_model, resolve_forward_dtype
from latentloop.models.config import ModelConfig
from latentloop.models.official_config import (CONFIG_FILE, config_from_official, official_config,
                                               read_official_config, write_official_config)
from latentloop.paths import check_output_dir, ensure_output_dir

COMPILED_PREFIX = "_orig_mod.model."


# ------------------------------------------------------------------------------------------------ weights mapping

def _renames(m: ModelConfig) -> dict[str, str]:
    """Official name (or name prefix, ending in '.') under `inner.` -> ours under `inner.`."""
    names = {"embed_tokens.": "encoder.embed_tokens.", "embed_pos.": "encoder.embed_pos.",
             "puzzle_emb.": "encoder.puzzle_emb.", "lm_head.": "lm_head.", "q_head.": "q_head."}
    if m.arch == "hrm":
        names.update({"H_level.": "H_net.", "L_level.": "L_net.", "H_init": "y_init", "L_init": "z_init"})
    elif m.arch == "baseline":
        names.update({"H_level.": "net.", "H_init": "y_init"})
    else:
        names["L_level."] = "net."
        if m.z_mode != "single":
            names["H_init"] = "y_init"
        if m.z_mode != "multiscale":
            names["L_init"] = "z_init"
    return names


def _rename(key: str, names: dict[str, str]) -> str | None:
    for old, new in names.items():
        if key == old or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    return None


def strip_official_prefix(key: str) -> str:
    """`_orig_mod.model.inner.x` (compiled), `model.inner.x` (DISABLE_COMPILE) or `inner.x` -> `x`; else raise."""
    bare = key.removeprefix("_orig_mod.").removeprefix("model.")
    if not bare.startswith("inner."):
        raise CheckpointError(f"unknown key {key!r}: official model weights live under [_orig_mod.]model.inner.")
    return bare[len("inner."):]


def official_to_ours(state_dict: dict[str, torch.Tensor], m: ModelConfig) -> dict[str, torch.Tensor]:
    """Rename an official state dict to our ACT model's keys (trm_hier6's six L inits become one z_init)."""
    names = _renames(m)
    ours: dict[str, torch.Tensor] = {}
    latents: dict[int, torch.Tensor] = {}
    for key, value in state_dict.items():
        bare = strip_official_prefix(key)
        match = re.fullmatch(r"L(\d+)_init", bare) if m.z_mode == "multiscale" else None
        if match:
            latents[int(match.group(1))] = value
            continue
        new = _rename(bare, names)
        if new is None:
            raise CheckpointError(f"unknown key {key!r} for an official {m.arch} model ({m.z_mode} z)")
        ours[f"inner.{new}"] = value
    if latents:
        if sorted(latents) != list(range(1, m.num_z + 1)):
            raise CheckpointError(f"official trm_hier6 checkpoint has L inits {sorted(latents)}, expected 1..{m.num_z}")
        ours["inner.z_init"] = torch.stack([latents[k] for k in sorted(latents)])
    return ours


def ours_to_official(state_dict: dict[str, torch.Tensor], m: ModelConfig,
                     prefix: str = COMPILED_PREFIX) -> dict[str, torch.Tensor]:
    """Our ACT model's state dict in the official layout, keys as their pretrain.py saves them (compiled model)."""
    official_config(RunConfig(model=m))   # raises for models without an official counterpart
    inverse = {new: old for old, new in _renames(m).items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        bare = key.removeprefix("inner.")
        if m.z_mode == "multiscale" and bare == "z_init":
            for k, latent in enumerate(value.unbind(0), start=1):
                out[f"{prefix}inner.L{k}_init"] = latent.clone()
            continue
        old = _rename(bare, inverse)
        if old is None:
            raise CheckpointError(f"key {key!r} has no official counterpart")
        out[f"{prefix}inner.{old}"] = value
    return out


# ------------------------------------------------------------------------------------------------ load and export

def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True: tensors and plain containers only, so no code in the file can run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises many types for a corrupt or unsafe pickle; all mean the same to the user
        raise CheckpointError(f"cannot read official checkpoint {path}: {exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict (a mapping of names to tensors)")
    return state


def dataset_metadata(data: str | Path | None) -> DatasetMetadata | None:
    """The metadata of a dataset (or split) folder as `find_metadata` picks it, if there is one."""
    found = find_metadata(data) if data else None
    return found[0] if found else None


def fit_to_weights(m: ModelConfig, ours: dict[str, torch.Tensor], meta: DatasetMetadata | None,
                   source: str) -> None:
    """Fill the sizes all_config.yaml lacks from the weights, and check them against the dataset if there is one."""
    tokens = ours.get("inner.encoder.embed_tokens.embedding_weight")
    if tokens is None:
        raise CheckpointError(f"{source} has no token embedding (embed_tokens.embedding_weight)")
    m.vocab_size = tokens.shape[0]
    if tokens.shape[1] != m.hidden_size:
        raise CheckpointError(f"{source}: hidden size {tokens.shape[1]} in the weights, {m.hidden_size} in the config")
    table = ours.get("inner.encoder.puzzle_emb.weights")
    if table is not None:
        m.num_puzzle_identifiers = table.shape[0]
        if table.shape[1] != m.puzzle_emb_ndim:
            raise CheckpointError(f"{source}: puzzle embedding has {table.shape[1]} dims, config puzzle_emb_ndim "
                                  f"{m.puzzle_emb_ndim}")
    positions = ours.get("inner.encoder.embed_pos.embedding_weight")
    mixer = next((v for k, v in ours.items() if k.endswith("layers.0.mlp_t.gate_up_proj.weight")), None)
    if positions is not None:
        m.seq_len = positions.shape[0] - m.prefix_len
    elif mixer is not None:
        m.seq_len = mixer.shape[1] - m.prefix_len
    elif meta is not None:
        m.seq_len = meta.seq_len
    else:
        raise CheckpointError(f"{source}: the sequence length is not stored in RoPE weights; pass the dataset "
                              f"(--data) it was trained on")
    if meta is None:
        return
    if meta.vocab_size != m.vocab_size:
        raise CheckpointError(f"wrong vocabulary: {source} has {m.vocab_size} tokens, the dataset {meta.vocab_size}")
    if meta.seq_len != m.seq_len:
        raise CheckpointError(f"wrong sequence length: {source} has {m.seq_len}, the dataset {meta.seq_len}")
    if table is not None and meta.num_puzzle_identifiers != m.num_puzzle_identifiers:
        raise CheckpointError(f"wrong puzzle-embedding rows: {source} has {m.num_puzzle_identifiers}, the dataset "
                              f"has {meta.num_puzzle_identifiers} puzzle identifiers")


def load_official_state_dict(model: ACT, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load an official state dict into our model, naming every missing, unknown or mis-shaped tensor."""
    m = model.inner.cfg
    ours = official_to_ours(state_dict, m)
    expected = model.state_dict()
    inverse = {new: old for old, new in _renames(m).items()}

    def official_name(key: str) -> str:
        return "inner." + (_rename(key.removeprefix("inner."), inverse) or key.removeprefix("inner."))

    missing = sorted(set(expected) - set(ours))
    if missing:
        raise CheckpointError(f"{source} lacks {', '.join(official_name(k) for k in missing[:3])}"
                              f"{' and more' if len(missing) > 3 else ''} (is it a {m.arch} checkpoint?)")
    unexpected = sorted(set(ours) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source} has keys this {m.arch} model does not: "
                              f"{', '.join(official_name(k) for k in unexpected[:3])}")
    for key, value in ours.items():
        if value.shape != expected[key].shape:
            what = {"inner.encoder.embed_tokens.embedding_weight": "wrong vocabulary: ",
                    "inner.encoder.puzzle_emb.weights": "wrong puzzle-embedding rows: "}.get(key, "")
            raise CheckpointError(f"{what}{source}: {official_name(key)} has shape {tuple(value.shape)}, the model "
                                  f"expects {tuple(expected[key].shape)}")
    # Initial-state buffers are stored in the forward dtype; a float32 override widens them exactly.
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in ours.items()})


def load_official_checkpoint(path: str | Path, config: str | Path | None = None, data: str | Path | None = None,
                             overrides: list[str] | None = None,
                             device: str | torch.device = "cpu") -> tuple[ACT, RunConfig]:
    """An official checkpoint file (e.g. step_12345) as our model in eval mode, with its config.

    `config` defaults to the all_config.yaml next to the file; `data` (default: the config's data path, if it exists
    here) supplies the sequence length of RoPE models and is checked against the weights. `overrides` are key=value
    settings applied on top, e.g. ["forward_dtype=float32"] to run a bf16 checkpoint in fp32 on a CPU.
    """
    path = Path(path)
    config_path = Path(config) if config else path.parent / CONFIG_FILE
    if not config_path.exists():
        raise CheckpointError(f"official checkpoint {path} needs its {CONFIG_FILE}: none at {config_path} "
                              f"(pass --config)")
    state_dict = read_official_state_dict(path)
    try:
        cfg = apply_overrides(config_from_official(read_official_config(config_path), name=path.name),
                              overrides or [])
    except ConfigError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    data = data or (cfg.train.data_path if cfg.train.data_path and Path(cfg.train.data_path).exists() else None)
    check_official_numbering(data, cfg.train.data_path, str(path))   # before data_path names the data in use
    if data:
        cfg.train.data_path = str(data)
    fit_to_weights(cfg.model, official_to_ours(state_dict, cfg.model), dataset_metadata(data), str(path))
    resolve_forward_dtype(cfg.model, device)  # an override may say forward_dtype=auto
    try:
        model = build_model(cfg.model)
    except ConfigError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    load_official_state_dict(model, state_dict, str(path))
    return model.to(device).eval(), cfg


def export_official(model: ACT, cfg: RunConfig, out_dir: str | Path, step: int = 0) -> Path:
    """Write `out_dir/step_<step>` (torch.save of the official-layout state dict) and `out_dir/all_config.yaml`,
    the layout the official evaluate.py and load_checkpoint= read. Returns the weights file."""
    check_output_dir(out_dir)
    raw = official_config(cfg)
    weights = ours_to_official({k: v.detach().cpu() for k, v in model.state_dict().items()}, cfg.model)
    out = ensure_output_dir(out_dir)
    target = out / f"step_{step}"
    torch.save(weights, target)
    write_official_config(raw, out)
    return target
