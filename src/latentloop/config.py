"""Run configuration: presets (TOML files in presets/) plus `key=value` overrides.

Keys use the papers' names (T, n, N_sup, layers); the official Hydra keys are accepted as aliases
(`arch.H_cycles=3`, `arch.L_cycles=6`, `arch.halt_max_steps=16`, `arch.L_layers=2`, `global_batch_size=768`, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

from latentloop.errors import ConfigError
from latentloop.tasks import TaskOptions, load_task_module, task_class
from latentloop.models.config import (BELOW_ONE, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT,
                                      PROBABILITY, SEED, ModelConfig, Range, check_ranges, validate_model_config)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping; defaults are the official base config (cfg_pretrain.yaml)."""

    data_path: str = ""
    global_batch_size: int = 768
    epochs: int = 100000
    eval_interval: int = 10000            # in epochs, as in the official code
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    lr_warmup_steps: int = 2000
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    ema: bool = False
    ema_rate: float = 0.999
    loss: str = "stablemax_cross_entropy"
    seed: int = 0
    eval_max_examples: int = 0            # 0 = the whole test split
    eval_batch_size: int = 0              # 0 = global_batch_size
    out_dir: str = ""                     # empty = runs/<preset>
    threads: int = 0                      # 0 = torch's default
    device: str = "auto"                  # auto | cpu | cuda | mps
    logger: str = "none"                  # none | wandb | tensorboard (optional packages), besides metrics.jsonl
    grad_accum_steps: int = 1             # micro-batches per optimizer step: same result, less activation memory
    log_interval: int = 10                # optimizer steps per metrics.jsonl record
    checkpoint_interval: int = 0          # steps between extra checkpoints; 0 = only at evaluations (and on Ctrl-C)
    keep_last: int = 2                    # newest checkpoints kept; 0 = all
    keep_best: str = "exact_accuracy"     # also keep the best checkpoint by this eval metric; "" = off
    max_memory_gb: float = 0.0            # refuse to start when the memory estimate per rank is above; 0 = off
    compile: bool = False                 # torch.compile the reasoning modules (fuses their element-wise work)
    run_schedule: str = "steps"           # steps: total_steps optimizer steps, evaluating every total_steps *
                                          # eval_interval / epochs; iterations: the official loop (README, "End of
                                          # a run"): whole sampler iterations, past total_steps only the EMA moves
    arc_votes: str = "per_eval"           # ARC: per_eval (each evaluation votes alone: ARC/pass@K) or pooled (also
                                          # ARC/pooled_pass@K, votes of every evaluation so far: the official default)
    init_from: str = ""                   # start from a checkpoint's weights (any load_checkpoint path, hf: too) with
                                          # a fresh optimizer and schedule; "" = off (training/init_from.py)
    init_new_rows: str = "blank"          # puzzle-embedding rows the checkpoint does not know start as its blank
                                          # row or the mean of its puzzle rows (mean)
    init_train: str = "all"               # all | embeddings (the network is frozen) | network (the table is)
    # Training methods after TRM (docs/variants.md), all off by default:
    optimizer: str = "adam_atan2"         # or muon: Muon on the reasoning networks' weight matrices, AdamATan2 on
                                          # the rest (training/optim.py split_for_muon)
    muon_lr: float = 0.02                 # Muon's peak learning rate, on lr's warmup and cosine schedule
    depth_curriculum: str = ""            # CGAR's depth schedule: "" (off), cgar, or stages such as
                                          # "0.3:1,2;0.6:2,4" (T=1 n=2 for the first 30% of steps, ...; curriculum.py)
    sup_step_weights: float = 0.0         # CGAR's supervision weighting: 0 = off, else the decay lambda in (0, 1]
                                          # (a row's loss at step s x lambda^(s-1), normalised: losses.py)


# Every numeric TrainConfig field and the values it may take (models.config.MODEL_RANGES has the model's).
TRAIN_RANGES: dict[str, Range] = {
    "global_batch_size": POSITIVE_INT, "epochs": POSITIVE_INT, "eval_interval": POSITIVE_INT,
    "lr": NON_NEGATIVE, "lr_min_ratio": PROBABILITY, "lr_warmup_steps": NON_NEGATIVE_INT,
    "beta1": BELOW_ONE, "beta2": BELOW_ONE, "weight_decay": NON_NEGATIVE,
    "puzzle_emb_lr": NON_NEGATIVE, "puzzle_emb_weight_decay": NON_NEGATIVE, "ema_rate": PROBABILITY, "seed": SEED,
    "eval_max_examples": NON_NEGATIVE_INT, "eval_batch_size": NON_NEGATIVE_INT, "threads": NON_NEGATIVE_INT,
    "grad_accum_steps": POSITIVE_INT, "log_interval": POSITIVE_INT, "checkpoint_interval": NON_NEGATIVE_INT,
    "keep_last": NON_NEGATIVE_INT, "max_memory_gb": NON_NEGATIVE, "muon_lr": POSITIVE, "sup_step_weights": PROBABILITY,
}


def validate_train_config(t: TrainConfig) -> None:
    """Check every numeric train field against TRAIN_RANGES."""
    check_ranges(t, TRAIN_RANGES)


@dataclass
class RunConfig:
    """A run: the model, its training, and its data section: the options of the task (`data.task`) that builds
    the dataset when data_path does not exist yet (a `latentloop.tasks` Options dataclass; its defaults live there).
    `task` records the task the model was trained on ({"name", "params"}), written by training from the dataset."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: TaskOptions = field(default_factory=TaskOptions)
    task: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], strict: bool = True, base_dir: Path | None = None) -> "RunConfig":
        """A config from its dict; `strict=False` (checkpoints of older versions, whose data section held every
        task's options) drops data keys the task does not have. A relative task_module .py path that is not in the
        current folder is found beside the config file (`base_dir`)."""
        cfg = cls(name=str(raw.get("name", "custom")))
        data = dict(raw.get("data") or {})
        if data.get("task_module"):  # the module defines the task named next
            module = str(data.pop("task_module"))
            if (base_dir is not None and module.endswith(".py") and not Path(module).is_file()
                    and (base_dir / module).is_file()):
                module = str(base_dir / module)
            set_value(cfg, "data.task_module", module)
        if "task" in data:  # first: it decides which options the other keys are
            set_value(cfg, "data.task", data.pop("task"))
        data_fields = {f.name for f in dataclasses.fields(cfg.data)}
        for key, value in data.items():
            if strict or key in data_fields:
                set_value(cfg, f"data.{key}", value)
        for section in ("model", "train"):
            for key, value in (raw.get(section) or {}).items():
                set_value(cfg, f"{section}.{key}", value)
        task = raw.get("task") or {}
        if not isinstance(task, dict) or not isinstance(task.get("params", {}), dict):
            raise ConfigError(f"config section 'task' must be {{name, params}}, got {task!r}")
        cfg.task = dict(task)
        unknown = set(raw) - {"name", "model", "train", "data", "task"}
        if unknown:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        return cfg


# Official key -> our key. The section prefixes arch./model./train./data. are optional.
ALIASES = {
    "H_cycles": "T", "L_cycles": "n", "halt_max_steps": "N_sup", "L_layers": "layers",
    "data_paths": "data_path", "loss_type": "loss", "loss.loss_type": "loss", "loss.name": "loss",
    "lr_warmup": "lr_warmup_steps", "ema_decay": "ema_rate",
}


def _resolve(key: str, data_options: type[TaskOptions] = TaskOptions) -> tuple[str, str]:
    """Map a user key (ours or official) to (section, field); raise with a suggestion when unknown. Data keys are
    the fields of the run's task options (`data_options`)."""
    sections = {"model": ModelConfig, "train": TrainConfig, "data": data_options}
    bare = key
    for prefix in ("arch.", "model.", "train.", "data."):
        if key.startswith(prefix):
            bare = key[len(prefix):]
            break
    bare = ALIASES.get(bare, bare)
    explicit = key.split(".", 1)[0] if "." in key and key.split(".", 1)[0] in sections else None
    candidates = [explicit] if explicit else ["model", "train", "data"]
    for section in candidates:
        if bare in {f.name for f in dataclasses.fields(sections[section])}:
            return section, bare
    known = [f"{s}.{f.name}" for s, c in sections.items() for f in dataclasses.fields(c)] + list(ALIASES)
    known += [f.name for c in sections.values() for f in dataclasses.fields(c)]
    close = difflib.get_close_matches(key, known, n=1) or difflib.get_close_matches(bare, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown config key {key!r}{hint}")


def _convert(value: Any, default: Any, key: str) -> Any:
    """Convert a string (from the command line) or TOML value to the type of the field's default."""
    kind = type(default)
    if kind is list and isinstance(value, str):  # data.sources=PATH: a list of one
        return [value.strip()]
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in ("true", "1", "yes", "on"):
                    return True
                if text.lower() in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            if kind is int:
                number = float(text)  # accepts 1e4 and 20000.0 as well as 20000
                if not number.is_integer():
                    raise ValueError
                return int(number)
            if kind is float:
                return float(text)
        except ValueError:
            raise ConfigError(f"config key {key!r} expects {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is str and isinstance(value, list):  # official data_paths=[a] lists
        if len(value) != 1:
            raise ConfigError(f"config key {key!r} takes one path, got {len(value)}")
        return str(value[0])
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"config key {key!r} expects {kind.__name__}, got {value!r}")
    return value


def set_value(cfg: RunConfig, key: str, value: Any) -> None:
    if key in ("name", "run_name"):  # run_name: the official key for the same thing
        cfg.name = str(value)
        return
    section, name = _resolve(key, type(cfg.data))
    target = getattr(cfg, section)
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        value = [v.strip() for v in value[1:-1].split(",") if v.strip()]
    value = _convert(value, getattr(target, name), key)
    if section == "data" and name == "task_module" and value:
        load_task_module(value)
        if value.endswith(".py"):  # absolute, so a checkpoint finds it from any folder
            value = str(Path(value).resolve())
    if section == "data" and name == "task" and value != cfg.data.task:
        _switch_task(cfg, value)
        return
    setattr(target, name, value)


def _switch_task(cfg: RunConfig, name: str) -> None:
    """data.task picks the options class; the options both tasks have (seed, task_module) carry over."""
    options = task_class(name).Options if name else TaskOptions
    shared = {f.name for f in dataclasses.fields(options)} & {f.name for f in dataclasses.fields(cfg.data)}
    cfg.data = options(**{k: getattr(cfg.data, k) for k in shared if k != "task"}, task=name)


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `key=value` strings (a leading '+' as in Hydra is accepted)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip().lstrip("+"), value)
    return validate(cfg)


def validate(cfg: RunConfig) -> RunConfig:
    """The one range check of every numeric model and train field (MODEL_RANGES, TRAIN_RANGES), run by
    apply_overrides once a preset and its overrides are in place, before any data or model is made. build_model
    and train run the same checks again for configs made in Python or read from a checkpoint."""
    validate_model_config(cfg.model)
    validate_train_config(cfg.train)
    return cfg


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("latentloop.presets").iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> RunConfig:
    """A preset by name (see `latentloop presets`) or a path to a TOML or JSON config file."""
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json") and path.exists():
        try:
            raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot parse config file {path}: {exc}") from None
        raw.setdefault("name", path.stem)
        return RunConfig.from_dict(raw, base_dir=path.parent)
    if path.suffix in (".toml", ".json"):
        raise ConfigError(f"config file {path} does not exist")
    names = preset_names()
    if name_or_path not in names:
        close = difflib.get_close_matches(name_or_path, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; available: {', '.join(names)}"
        raise ConfigError(f"unknown preset {name_or_path!r}{hint}")
    raw = tomllib.loads(resources.files("latentloop.presets").joinpath(f"{name_or_path}.toml").read_text())
    raw.setdefault("name", name_or_path)
    return RunConfig.from_dict(raw)
