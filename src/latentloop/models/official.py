"""Checkpoints of the official code (sapientinc/HRM, SamsungSAILMontreal/TinyRecursiveModels) <-> our models.

The official `pretrain.py` saves `torch.save(model.state_dict())` of the compiled loss head, so every key reads
`_orig_mod.model.inner.<name>` (without `_orig_mod.` when DISABLE_COMPILE was set), next to an `all_config.yaml`
that holds the Hydra config but not the dataset-derived sizes. With `ema=True` TRM saves the EMA copy, so the weights
in the file are the averaged ones and need no special handling. Our modules use the same leaf names (qkv_proj,
o_proj, gate_up_proj, down_proj, mlp_t, embedding_weight, weights); only the containers differ:

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

import json
import math
import re
from pathlib import Path
from typing import Any

import torch

from latentloop.config import RunConfig, apply_overrides, set_value
from latentloop.data.format import METADATA_FILE, DatasetMetadata
from latentloop.errors import CheckpointError, ConfigError, DataError
from latentloop.models import ACT, build_model
from latentloop.models.config import ModelConfig
from latentloop.paths import check_output_dir, ensure_output_dir

CONFIG_FILE = "all_config.yaml"
COMPILED_PREFIX = "_orig_mod.model."

# Official model class (arch.name) -> our arch and TRM z_mode.
CLASSES = {
    "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1": ("hrm", "yz"),
    "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1": ("hrm", "yz"),
    "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1": ("trm", "yz"),
    "recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1": ("trm", "single"),
    "recursive_reasoning.trm_hier6@TinyRecursiveReasoningModel_ACTV1": ("trm", "multiscale"),
    "recursive_reasoning.transformers_baseline@Model_ACTV2": ("baseline", "yz"),
}
HIER6_LATENTS = 6

# Official arch keys that map one to one onto ModelConfig fields.
ARCH_KEYS = {"hidden_size": "hidden_size", "num_heads": "num_heads", "expansion": "expansion",
             "puzzle_emb_ndim": "puzzle_emb_ndim", "pos_encodings": "pos_encodings", "halt_max_steps": "N_sup",
             "halt_exploration_prob": "halt_exploration_prob", "forward_dtype": "forward_dtype",
             "rms_norm_eps": "rms_norm_eps", "rope_theta": "rope_theta", "mlp_t": "mlp_t",
             "vocab_size": "vocab_size", "seq_len": "seq_len", "num_puzzle_identifiers": "num_puzzle_identifiers"}
# Arch keys handled by hand, and ones that only steer official training (our evaluation runs N_sup steps, as theirs).
ARCH_SPECIAL = {"name", "loss", "H_cycles", "L_cycles", "H_layers", "L_layers", "puzzle_emb_len", "no_ACT_continue"}
ARCH_TRAINING_ONLY = {"act_enabled", "act_inference", "batch_size", "causal"}
TRAIN_KEYS = ("global_batch_size", "epochs", "eval_interval", "lr", "lr_min_ratio", "lr_warmup_steps", "beta1", "beta2",
              "weight_decay", "puzzle_emb_lr", "puzzle_emb_weight_decay", "seed", "ema", "ema_rate")


# ---------------------------------------------------------------------------------------------- all_config.yaml

def parse_yaml(text: str) -> Any:
    """The YAML that `yaml.dump` and Hydra's arch files use: block mappings and sequences, plain or quoted scalars,
    flow lists and comments. Enough for all_config.yaml, without a YAML dependency."""
    lines = []
    for raw in text.splitlines():
        line = _strip_comment(raw).rstrip()
        if line.strip() and line.strip() not in ("---", "..."):
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    if not lines:
        return {}
    value, end = _parse_block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ConfigError(f"cannot parse YAML line {lines[end][1]!r}")
    return value


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _parse_block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")):
            rest = lines[i][1][1:].strip()
            if not rest:
                value, i = _parse_block(lines, i + 1, lines[i + 1][0])
            elif _split_key(rest) is not None:   # "- key: value" starts a mapping two columns in
                value, i = _parse_mapping_item(lines, i, indent, rest)
            else:
                value, i = _folded_scalar(lines, i, indent, rest)
            items.append(value)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        pair = _split_key(lines[i][1])
        if pair is None:
            raise ConfigError(f"cannot parse YAML line {lines[i][1]!r}")
        key, rest = pair
        if rest:
            mapping[key], i = _folded_scalar(lines, i, indent, rest)
            continue
        i += 1
        if i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("-"))):
            mapping[key], i = _parse_block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def _folded_scalar(lines: list[tuple[int, str]], i: int, indent: int, text: str) -> tuple[Any, int]:
    """A scalar plus the deeper-indented lines PyYAML folds long strings onto (joined by spaces)."""
    i += 1
    while i < len(lines) and lines[i][0] > indent:
        text += " " + lines[i][1]
        i += 1
    return _scalar(text), i


def _parse_mapping_item(lines: list[tuple[int, str]], i: int, indent: int, first: str) -> tuple[Any, int]:
    """A sequence item "- key: value" plus the keys indented under it."""
    sub = [(indent + 2, first)]
    j = i + 1
    while j < len(lines) and lines[j][0] > indent:
        sub.append(lines[j])
        j += 1
    value, used = _parse_block(sub, 0, indent + 2)
    if used != len(sub):
        raise ConfigError(f"cannot parse YAML line {sub[used][1]!r}")
    return value, j


def _split_key(text: str) -> tuple[str, str] | None:
    match = re.match(r"""^('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^'"\s][^:]*?)\s*:(?:\s+(.*))?$""", text)
    if match is None:
        return None
    key = match.group(1)
    return str(_scalar(key)) if key[0] in "'\"" else key, (match.group(2) or "").strip()


def _scalar(text: str) -> Any:
    if text[0] == "'" and text.endswith("'") and len(text) > 1:
        return text[1:-1].replace("''", "'")
    if text[0] == '"' and text.endswith('"') and len(text) > 1:
        return json.loads(text)
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(part.strip()) for part in inner.split(",")] if inner else []
    if text == "{}":
        return {}
    lowered = text.lower()
    if lowered in ("null", "~"):
        return None
    if lowered in ("true", "false", "yes", "no", "on", "off"):   # YAML 1.1 booleans, as PyYAML reads them
        return lowered in ("true", "yes", "on")
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        return float(text)
    if lowered in (".inf", "+.inf", "-.inf", ".nan"):
        return float(lowered.replace(".", ""))
    return text


def dump_yaml(data: dict[str, Any], indent: int = 0) -> str:
    """Block-style YAML that PyYAML (the official loader) reads back to the same values."""
    out = []
    pad = " " * indent
    for key, value in data.items():
        key = key if _scalar(key) == key and re.fullmatch(r"[A-Za-z_][\w.@-]*", key) else _yaml_scalar(key)
        if isinstance(value, dict) and value:
            out.append(f"{pad}{key}:\n{dump_yaml(value, indent + 2)}")
        elif isinstance(value, list) and value:
            out.append(f"{pad}{key}:\n")
            for item in value:   # "- " + the item; a mapping item continues two columns in
                text = dump_yaml(item, indent + 2) if isinstance(item, dict) and item else f"{_yaml_scalar(item)}\n"
                out.append(f"{pad}- {text[indent + 2:] if isinstance(item, dict) and item else text}")
        else:
            out.append(f"{pad}{key}: {_yaml_scalar(value)}\n")
    return "".join(out)


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        text = repr(value)
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text  # YAML 1.1 floats need a dot
    if isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    return "'" + str(value).replace("'", "''") + "'"


def read_official_config(path: str | Path) -> dict[str, Any]:
    """all_config.yaml (or a JSON dump of the same) as a dict."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointError(f"cannot read official config {path}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else parse_yaml(text)
    except (ConfigError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("arch"), dict):
        raise CheckpointError(f"{path} is not an official all_config.yaml: it has no 'arch' section")
    return raw


# ------------------------------------------------------------------------------------------------ config mapping

def config_from_official(raw: dict[str, Any], name: str = "official") -> RunConfig:
    """Our RunConfig for an official all_config dict. Dataset-derived sizes (vocab_size, seq_len, puzzle rows) are
    not in that file; `load_official_checkpoint` fills them from the weights and the dataset."""
    arch = raw["arch"]
    class_name = arch.get("name")
    if class_name not in CLASSES:
        raise CheckpointError(f"unknown official model class {class_name!r}; known: {', '.join(CLASSES)}")
    unknown = sorted(set(arch) - set(ARCH_KEYS) - ARCH_SPECIAL - ARCH_TRAINING_ONLY)
    if unknown:
        raise CheckpointError(f"official config has arch keys this loader does not know: {', '.join(unknown)}")
    kind, z_mode = CLASSES[class_name]
    cfg = RunConfig(name=name)
    m = cfg.model
    m.arch, m.z_mode = kind, z_mode
    for key, ours in ARCH_KEYS.items():
        if key in arch:
            set_value(cfg, f"model.{ours}", _resolve(arch[key], arch))
    if kind == "baseline":
        m.layers = _resolve(arch.get("H_layers", 8), arch)
    else:
        m.T, m.n = _resolve(arch["H_cycles"], arch), _resolve(arch["L_cycles"], arch)
        m.layers = _resolve(arch["L_layers"], arch)
        if kind == "hrm":
            m.H_layers = _resolve(arch["H_layers"], arch)
    # Only TRM's code reads puzzle_emb_len (default 16); HRM and the baseline always use ceil(ndim / D) positions.
    m.puzzle_emb_len = _resolve(arch.get("puzzle_emb_len", 16), arch) if kind == "trm" else 0
    m.act_continue = kind == "hrm" or (kind == "trm" and not arch.get("no_ACT_continue", True))
    if z_mode == "multiscale":
        m.num_z = HIER6_LATENTS
    if "forward_dtype" not in arch:
        m.forward_dtype = "bfloat16"
    loss = arch.get("loss") or {}
    if "loss_type" in loss:
        set_value(cfg, "train.loss", loss["loss_type"])
    paths = raw.get("data_paths") or raw.get("data_path") or ""
    set_value(cfg, "train.data_path", paths if isinstance(paths, str) else paths[0])
    for key in TRAIN_KEYS:
        if raw.get(key) is not None:
            set_value(cfg, f"train.{key}", raw[key])
    return cfg


def _resolve(value: Any, arch: dict[str, Any]) -> Any:
    """Hydra's `${.key}` interpolation (the arch files write puzzle_emb_ndim: ${.hidden_size})."""
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{\.(\w+)\}", value.strip())
        if match and match.group(1) in arch:
            return _resolve(arch[match.group(1)], arch)
    return value


def official_config(cfg: RunConfig) -> dict[str, Any]:
    """The all_config.yaml the official code would have written for this model, or CheckpointError where no
    official class computes the same function."""
    m, t = cfg.model, cfg.train
    no_layout = [k for k, on in (("one_step_grad", m.one_step_grad), ("separate_nets", m.separate_nets)) if on]
    if no_layout:
        raise CheckpointError(f"{', '.join(no_layout)}: the official code has no such model, so there is no "
                              f"official layout to export to")
    ceil_len = m.puzzle_emb_len in (0, -(m.puzzle_emb_ndim // -m.hidden_size))
    if m.arch != "trm" and not ceil_len:
        raise CheckpointError(f"official {m.arch.upper()} always uses ceil(puzzle_emb_ndim / hidden_size) prefix "
                              f"positions; this model has puzzle_emb_len={m.puzzle_emb_len}")
    if m.z_mode == "multiscale" and m.num_z != HIER6_LATENTS:
        raise CheckpointError(f"official trm_hier6 has {HIER6_LATENTS} latents; this model has num_z={m.num_z}")
    if m.arch == "baseline" and (m.mlp_t or m.pos_encodings == "none"):
        raise CheckpointError("official transformers_baseline supports neither mlp_t nor pos_encodings=none")
    name = _official_class(m)
    trm_repo = name.startswith("recursive_reasoning.")
    arch: dict[str, Any] = {"name": name, "loss": {"name": "losses@ACTLossHead", "loss_type": t.loss},
                            "halt_exploration_prob": m.halt_exploration_prob, "halt_max_steps": m.N_sup,
                            "hidden_size": m.hidden_size, "num_heads": m.num_heads, "expansion": m.expansion,
                            "puzzle_emb_ndim": m.puzzle_emb_ndim, "pos_encodings": m.pos_encodings,
                            "forward_dtype": m.forward_dtype, "rms_norm_eps": m.rms_norm_eps,
                            "rope_theta": m.rope_theta}
    if m.arch == "baseline":
        arch.update(H_cycles=1, H_layers=m.layers)
    else:
        arch.update(H_cycles=m.T, L_cycles=m.n, H_layers=m.H_layers if m.arch == "hrm" else 0, L_layers=m.layers)
        if trm_repo:
            arch["mlp_t"] = m.mlp_t
    if m.arch == "trm":
        arch.update(puzzle_emb_len=m.puzzle_emb_len, no_ACT_continue=not m.act_continue)
    raw: dict[str, Any] = {"arch": arch}
    raw.update({"data_paths": [t.data_path], "data_paths_test": [], "evaluators": []} if trm_repo
               else {"data_path": t.data_path})
    raw.update({key: getattr(t, key) for key in TRAIN_KEYS if trm_repo or key not in ("ema", "ema_rate")})
    raw.update(project_name=None, run_name=None, checkpoint_path=None, checkpoint_every_eval=True,
               eval_save_outputs=[])
    if trm_repo:
        raw.update(load_checkpoint=None, min_eval_interval=0, freeze_weights=False)
    return raw


def _official_class(m: ModelConfig) -> str:
    """The official file that computes this model (HRM: sapientinc's, or the TRM repo's copy for mlp_t / no RoPE)."""
    if m.arch == "hrm" and (m.mlp_t or m.pos_encodings == "none"):
        return "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1"
    return next(name for name, kind in CLASSES.items() if kind == (m.arch, m.z_mode))


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
    """train/dataset.json (else test/) of a dataset folder, if there is one."""
    if not data:
        return None
    for split in ("train", "test"):
        path = Path(data) / split / METADATA_FILE
        if path.exists():
            try:
                return DatasetMetadata.from_json(json.loads(path.read_text()), default_total_puzzles=0, where=str(path))
            except (json.JSONDecodeError, DataError) as exc:
                raise CheckpointError(f"cannot read {path}: {exc}") from None
    return None


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
    if data:
        cfg.train.data_path = str(data)
    fit_to_weights(cfg.model, official_to_ours(state_dict, cfg.model), dataset_metadata(data), str(path))
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
    (out / CONFIG_FILE).write_text(dump_yaml(raw))
    return target
