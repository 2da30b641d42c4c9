"""The official code's `all_config.yaml` (sapientinc/HRM, SamsungSAILMontreal/TinyRecursiveModels) <-> our RunConfig.

The official `pretrain.py` writes that file with `yaml.dump(config.model_dump())` (Hydra config validated by pydantic,
keys sorted) and its `evaluate.py` reads it back with `yaml.safe_load`; both sides here use PyYAML the same way. The
file holds the Hydra config but not the dataset-derived sizes (vocab_size, seq_len, puzzle rows), which
`official_weights.load_official_checkpoint` fills from the weights and the dataset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from latentloop.config import RunConfig, set_value
from latentloop.errors import CheckpointError, ConfigError
from latentloop.models.config import AUTO_DTYPE, ModelConfig

CONFIG_FILE = "all_config.yaml"

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

def read_official_config(path: str | Path) -> dict[str, Any]:
    """all_config.yaml (or a JSON dump of the same) as a dict, with its `${...}` interpolations resolved."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointError(f"cannot read official config {path}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("arch"), dict):
        raise CheckpointError(f"{path} is not an official all_config.yaml: it has no 'arch' section")
    try:
        return resolve_interpolations(raw)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where it is."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        return f"{exc.problem}" + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def write_official_config(raw: dict[str, Any], folder: str | Path) -> Path:
    """`folder/all_config.yaml` as the official pretrain.py writes it (PyYAML block style, keys sorted)."""
    target = Path(folder) / CONFIG_FILE
    target.write_text(yaml.safe_dump(raw, sort_keys=True))
    return target


_INTERPOLATION = re.compile(r"\$\{([^${}]*)\}")
_MAX_DEPTH = 64   # a longer chain of references than any config has means a cycle


def resolve_interpolations(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy with OmegaConf's node interpolations resolved, as `OmegaConf.to_container(cfg, resolve=True)` does.

    Hydra's arch files write `puzzle_emb_ndim: ${.hidden_size}`: a leading dot is the mapping (or list) that holds
    the value, each further dot one level up, no dot the root; the rest is a dotted key path (list items by index).
    A value that is one interpolation takes the referenced value and its type; one embedded in text is formatted into
    the string. Resolvers (`${oc.env:HOME}`) belong to OmegaConf itself and are refused.
    """

    def lookup(text: str, holders: list[Any]) -> tuple[Any, list[Any]]:
        """The node `text` names from a value inside `holders` (root first), and the containers above that node."""
        if ":" in text:
            raise ConfigError(f"cannot resolve ${{{text}}}: OmegaConf resolvers are not supported; write the value")
        dots = len(text) - len(text.lstrip("."))
        if dots > len(holders):
            raise ConfigError(f"cannot resolve ${{{text}}}: it goes above the top of the file")
        node, above = (holders[-dots], holders[:-dots]) if dots else (raw, [])
        for part in filter(None, text[dots:].split(".")):
            if isinstance(node, dict) and part in node:
                node, above = node[part], above + [node]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node, above = node[int(part)], above + [node]
            else:
                raise ConfigError(f"cannot resolve ${{{text}}}: there is no key {part!r}")
        return node, above

    def resolve(value: Any, holders: list[Any], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ConfigError("cannot resolve the interpolations: they refer to each other in a cycle")
        if isinstance(value, dict):
            return {key: resolve(item, holders + [value], depth) for key, item in value.items()}
        if isinstance(value, list):
            return [resolve(item, holders + [value], depth) for item in value]
        if not isinstance(value, str) or "${" not in value:
            return value

        def target(text: str) -> Any:
            return resolve(*lookup(text.strip(), holders), depth + 1)

        whole = _INTERPOLATION.fullmatch(value)
        return target(whole.group(1)) if whole else _INTERPOLATION.sub(lambda match: str(target(match.group(1))), value)

    return resolve(raw, [], 0)


# ------------------------------------------------------------------------------------------------ config mapping

def config_from_official(raw: dict[str, Any], name: str = "official") -> RunConfig:
    """Our RunConfig for an official all_config dict, as `read_official_config` returns it (interpolations
    resolved). Dataset-derived sizes (vocab_size, seq_len, puzzle rows) are not in that file;
    `load_official_checkpoint` fills them from the weights and the dataset."""
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
            set_value(cfg, f"model.{ours}", arch[key])
    if kind == "baseline":
        m.layers = arch.get("H_layers", 8)
    else:
        m.T, m.n = arch["H_cycles"], arch["L_cycles"]
        m.layers = arch["L_layers"]
        if kind == "hrm":
            m.H_layers = arch["H_layers"]
    # Only TRM's code reads puzzle_emb_len (default 16); HRM and the baseline always use ceil(ndim / D) positions.
    m.puzzle_emb_len = arch.get("puzzle_emb_len", 16) if kind == "trm" else 0
    m.act_continue = kind == "hrm" or (kind == "trm" and not arch.get("no_ACT_continue", True))
    m.halt_vs_continue = kind == "baseline"   # Model_ACTV2 compares q_halt with a q_continue it never trains
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


def official_config(cfg: RunConfig) -> dict[str, Any]:
    """The all_config.yaml the official code would have written for this model, or CheckpointError where no
    official class computes the same function and halts the same way in training."""
    m, t = cfg.model, cfg.train
    no_layout = [k for k, on in (("one_step_grad", m.one_step_grad), ("separate_nets", m.separate_nets),
                                 (f"mlp={m.mlp}", m.mlp != "swiglu"), ("grad_cycles", m.grad_cycles != 1)) if on]
    if no_layout:
        raise CheckpointError(f"{', '.join(no_layout)}: the official code has no such model, so there is no "
                              f"official layout to export to")
    if m.forward_dtype == AUTO_DTYPE:  # a trained model's config names the dtype it used (resolve_forward_dtype)
        raise CheckpointError("forward_dtype=auto names no dtype the official code can read; set forward_dtype "
                              "to bfloat16 or float32")
    ceil_len = m.puzzle_emb_len in (0, -(m.puzzle_emb_ndim // -m.hidden_size))
    if m.arch != "trm" and not ceil_len:
        raise CheckpointError(f"official {m.arch.upper()} always uses ceil(puzzle_emb_ndim / hidden_size) prefix "
                              f"positions; this model has puzzle_emb_len={m.puzzle_emb_len}")
    if m.z_mode == "multiscale" and m.num_z != HIER6_LATENTS:
        raise CheckpointError(f"official trm_hier6 has {HIER6_LATENTS} latents; this model has num_z={m.num_z}")
    if m.arch == "baseline" and (m.mlp_t or m.pos_encodings == "none"):
        raise CheckpointError("official transformers_baseline supports neither mlp_t nor pos_encodings=none")
    name = _official_class(m)
    # The class fixes how training halts (TRM through no_ACT_continue); no other key could carry our flags back.
    official = _halting(*{"hrm": (True, False), "baseline": (False, True)}.get(m.arch, (m.act_continue, False)))
    ours = _halting(m.act_continue, m.halt_vs_continue)
    if ours != official:
        raise CheckpointError(f"official {name} halts {official}; this model halts {ours} "
                              f"(act_continue={m.act_continue}, halt_vs_continue={m.halt_vs_continue})")
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


def _halting(act_continue: bool, halt_vs_continue: bool) -> str:
    """The training-time halting rule these flags give (as build_model sets it up), in words for error lines."""
    if act_continue:
        return "when q_halt > q_continue and trains q_continue"
    return "when q_halt > q_continue without training q_continue" if halt_vs_continue else "when q_halt > 0"


def _official_class(m: ModelConfig) -> str:
    """The official file that computes this model (HRM: sapientinc's, or the TRM repo's copy for mlp_t / no RoPE)."""
    if m.arch == "hrm" and (m.mlp_t or m.pos_encodings == "none"):
        return "recursive_reasoning.hrm@HierarchicalReasoningModel_ACTV1"
    return next(name for name, kind in CLASSES.items() if kind == (m.arch, m.z_mode))
