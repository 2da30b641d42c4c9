"""Start a new run from a checkpoint's weights (`init_from=CHECKPOINT`): pretrain on one puzzle set, fine-tune on
another, as in test-time training on ARC (arXiv 2511.02886).

Every path `load_checkpoint` takes works: a run folder, a checkpoint folder, an official HRM/TRM checkpoint file
(with its all_config.yaml) or `hf:OWNER/REPO`. The weights taken are the ones a checkpoint evaluates with: the EMA
when the run had one (`model.safetensors`; the official TRM saves its EMA copy too). The optimizer, the learning-rate
schedule, the sampler and the ACT carry start afresh; only the weights carry over.

The puzzle-embedding table is rebuilt for the new dataset: a row whose identifier name (the datasets'
identifiers.json) the checkpoint knows keeps the checkpoint's row; every other row starts as the checkpoint's blank
row (identifier 0, what `solve` gives an unseen puzzle) or, with `init_new_rows=mean`, as the mean of its puzzle rows.
The names must be found: the checkpoint's dataset (its config's data_path) or a `dataset/identifiers.json` beside the
checkpoint (what `latentloop push` uploads). Without them rows are not matched by position, which would silently
pair unrelated puzzles: the run is refused, unless one of the tables holds only the blank row, which needs no name.

The checkpoint must be of the same task, vocabulary, sequence length and architecture (the fields of
`_architecture`). T, n, N_sup, the halting rule, the gradient ablations and the dtypes may differ: they change no
weight, so a model pretrained with one recursion schedule can be fine-tuned with another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from latentloop.config import RunConfig, TrainConfig
from latentloop.data.format import IDENTIFIERS_FILE, read_identifiers
from latentloop.errors import ConfigError, LatentloopError
from latentloop.hub import local_checkpoint
from latentloop.models import build_model
from latentloop.models.config import ModelConfig
from latentloop.models.official_config import CONFIG_FILE, config_from_official, read_official_config
from latentloop.models.official_weights import official_to_ours, read_official_state_dict
from latentloop.tasks import Task
from latentloop.training.checkpoint import LATEST, WEIGHTS, read_config, resolve_checkpoint

INIT_NEW_ROWS = ("blank", "mean")                   # train.init_new_rows; the first is the default
INIT_TRAIN = ("all", "embeddings", "network")       # train.init_train; the first is the default
TABLE = "inner.encoder.puzzle_emb.weights"          # the puzzle-embedding table in a model's state dict
TOKENS = "inner.encoder.embed_tokens.embedding_weight"
PUSHED_IDENTIFIERS = Path("dataset") / IDENTIFIERS_FILE   # beside a checkpoint pushed to the Hub
# Tensors whose shape follows the data rather than the architecture, named in words when they do not fit.
_DATA_SHAPED = {TOKENS: "another vocabulary", "inner.encoder.embed_pos.embedding_weight": "another sequence length",
                "mlp_t.": "another sequence length"}


def check_init_settings(t: TrainConfig) -> None:
    """The init_* keys: known values, and init_new_rows / init_train only with a checkpoint to start from."""
    if t.init_new_rows not in INIT_NEW_ROWS:
        raise ConfigError(f"init_new_rows must be one of {', '.join(INIT_NEW_ROWS)}, not {t.init_new_rows!r}")
    if t.init_train not in INIT_TRAIN:
        raise ConfigError(f"init_train must be one of {', '.join(INIT_TRAIN)}, not {t.init_train!r}")
    if not t.init_from and (t.init_new_rows, t.init_train) != (INIT_NEW_ROWS[0], INIT_TRAIN[0]):
        raise ConfigError("init_new_rows and init_train choose how a run started from a checkpoint begins: set "
                          "init_from=CHECKPOINT too")


@dataclass
class _Source:
    """A checkpoint's evaluation weights in our key names, with what the checks need to know about it."""

    where: Path                     # the checkpoint folder or official file the weights came from
    cfg: RunConfig
    weights: dict[str, torch.Tensor]
    task: str | None                # the task it learned ("" = plain token data); None = not known (official)
    seq_len: int | None             # None = not recorded (official: only the shapes that depend on it tell)
    ema: bool
    names_file: Path | None         # the identifiers.json naming its puzzle-embedding rows, where found


@dataclass
class InitFrom:
    """The initial state of a run started from a checkpoint, checked against the run's model and data; `apply`
    loads it into the freshly built model before any optimizer or EMA is made."""

    where: Path
    state: dict[str, torch.Tensor]
    ema: bool
    rows: int                       # rows of the new puzzle-embedding table (0: the model has none)
    kept: int                       # of them, rows taken from the checkpoint
    fill: str                       # what the others start as: init_new_rows
    train: str                      # init_train

    @property
    def new(self) -> int:
        return self.rows - self.kept

    def apply(self, model: torch.nn.Module) -> None:
        """Load the weights into `model` once, then let go of them (the table can take gigabytes on ARC)."""
        model.load_state_dict(self.state)
        self.state = {}

    def record(self) -> dict[str, Any]:
        """What metrics.jsonl's first record says about the start."""
        return {"init_from": str(self.where), "init_rows_kept": self.kept, "init_rows_new": self.new,
                "init_train": self.train}

    def report(self) -> str:
        trains = {"all": "everything trains", "embeddings": "only the puzzle embeddings train (the network is frozen)",
                  "network": "only the network trains (the puzzle-embedding table stays as it starts)"}[self.train]
        rows = (f"{self.kept:,} of {self.rows:,} puzzle-embedding rows kept by identifier name, {self.new:,} new "
                f"ones start as the {self.fill} row" if self.rows else "no puzzle embedding")
        weights = "EMA weights" if self.ema else "weights"
        return f"init_from {self.where}: {weights}, {rows}; fresh optimizer and schedule; {trains}"


def prepare_init(cfg: RunConfig, task: Task | None) -> InitFrom:
    """Load `cfg.train.init_from` and check it against this run (its model sized by the data, its `task`) before
    anything is written: every mismatch is one ConfigError line naming the checkpoint."""
    t = cfg.train
    if t.init_train == "embeddings" and cfg.model.puzzle_emb_ndim == 0:
        raise ConfigError("init_train=embeddings trains the puzzle embeddings only, and this model has none "
                          "(puzzle_emb_ndim=0)")
    try:
        source = _load_source(t.init_from)
    except LatentloopError as exc:
        raise ConfigError(f"init_from: {exc}") from None
    label = f"init_from={t.init_from}"
    here = task.name if task is not None else ""
    if source.task is not None and source.task != here:
        raise ConfigError(f"{label} was trained on {_task_words(source.task)}, this run's data is "
                          f"{_task_words(here)}: init_from needs the same task")
    vocab = source.weights[TOKENS].shape[0] if TOKENS in source.weights else None
    if vocab is not None and vocab != cfg.model.vocab_size:
        raise ConfigError(f"{label} has another vocabulary: {vocab} tokens there, {cfg.model.vocab_size} in this "
                          f"run's data")
    if source.seq_len is not None and source.seq_len != cfg.model.seq_len:
        raise ConfigError(f"{label} has another sequence length: {source.seq_len} there, {cfg.model.seq_len} in "
                          f"this run's data")
    theirs, ours = _architecture(source.cfg.model), _architecture(cfg.model)
    differences = [f"{name} {theirs.get(name)} there, {value} here" for name, value in ours.items()
                   if theirs.get(name) != value]
    if differences:
        raise ConfigError(f"{label} is another architecture: {'; '.join(differences)} (T, n and N_sup may differ)")
    with torch.device("meta"):   # shapes and dtypes only, before the run builds the real model
        expected = {k: (v.shape, v.dtype) for k, v in build_model(cfg.model).state_dict().items()}
    _check_tensors(source.weights, expected, label)
    state = {k: source.weights[k].to(dtype) for k, (_, dtype) in expected.items() if k != TABLE}
    rows = kept = 0
    if TABLE in expected:
        rows = expected[TABLE][0][0]
        new_names = _dataset_names(Path(t.data_path), rows, source.weights[TABLE].shape[0] > 1, label)
        state[TABLE], kept = _table(source, new_names, rows, t.init_new_rows, label)
    return InitFrom(where=source.where, state=state, ema=source.ema, rows=rows, kept=kept, fill=t.init_new_rows,
                    train=t.init_train)


def freeze(model: torch.nn.Module, init_train: str) -> None:
    """init_train=embeddings: no dense weight gets a gradient, so AdamATan2 skips them all (and the loop keeps no
    EMA: it averages dense weights only, which stay as they are). init_train=network is the loop's: it makes no
    sparse optimizer for the puzzle-embedding table."""
    if init_train == "embeddings":
        for param in model.parameters():
            param.requires_grad_(False)


def _task_words(name: str) -> str:
    return f"{name!r} data" if name else "plain token data (no task)"


def _architecture(m: ModelConfig) -> dict[str, Any]:
    """The fields that decide what the weights are and what they compute."""
    fields = {name: getattr(m, name) for name in ("arch", "hidden_size", "num_heads", "expansion", "layers", "mlp_t",
                                                  "pos_encodings", "puzzle_emb_ndim", "separate_nets", "z_mode",
                                                  "rms_norm_eps", "mlp")}
    if m.mlp == "conv_swiglu":
        fields["conv_kernel"] = m.conv_kernel
    fields["puzzle-embedding positions"] = m.prefix_len
    if m.arch == "hrm":
        fields["H_layers"] = m.H_layers
    if m.z_mode == "multiscale":
        fields["num_z"] = m.num_z
    if m.pos_encodings == "rope":
        fields["rope_theta"] = m.rope_theta
    return fields


def _check_tensors(weights: dict[str, torch.Tensor], expected: dict[str, tuple[torch.Size, torch.dtype]],
                   label: str) -> None:
    """Every tensor the model has must be in the checkpoint with its shape (the table only with its width)."""
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        names = [f"lacks {k}" for k in missing[:2]] + [f"has {k}, which this model does not" for k in extra[:2]]
        raise ConfigError(f"{label} does not fit this model: it {'; it '.join(names)} (another architecture?)")
    for key, (shape, _) in expected.items():
        got = tuple(weights[key].shape)
        if got != tuple(shape) and not (key == TABLE and got[1:] == tuple(shape)[1:]):
            why = next((words for part, words in _DATA_SHAPED.items() if part in key), "another architecture")
            raise ConfigError(f"{label} does not fit this model ({why}): {key} has shape {got} there, "
                              f"{tuple(shape)} here")


def _table(source: _Source, new_names: list[str] | None, rows: int, fill: str,
           label: str) -> tuple[torch.Tensor, int]:
    """The new [rows, D] table and how many of its rows came from the checkpoint's (matched by name)."""
    table = source.weights[TABLE].float()
    if new_names is None or table.shape[0] == 1:   # one side holds only the blank row, identifier 0 in every dataset
        pairs = [(0, 0)]
    else:
        if source.names_file is None:
            folder = source.where.parent if source.where.is_file() else source.where
            raise ConfigError(f"{label}: the {IDENTIFIERS_FILE} of the dataset it was trained on "
                              f"({source.cfg.train.data_path or 'not recorded'}) is not here, so its "
                              f"{table.shape[0]:,} puzzle-embedding rows cannot be matched to this run's puzzles by "
                              f"name; put that file at {folder / PUSHED_IDENTIFIERS}")
        index: dict[str, int] = {}
        for i, name in enumerate(_read_names(source.names_file, table.shape[0], "the checkpoint's", label)):
            index.setdefault(name, i)
        pairs = [(i, index[name]) for i, name in enumerate(new_names) if name in index]
    start = table[1:].mean(dim=0) if fill == "mean" and table.shape[0] > 1 else table[0]
    new = start.expand(rows, -1).clone()
    into, taken = (torch.tensor([pair[k] for pair in pairs], dtype=torch.long) for k in (0, 1))
    new[into] = table[taken]
    return new, len(pairs)


def _dataset_names(data: Path, rows: int, needed: bool, label: str) -> list[str] | None:
    """This run's identifier names; None where no row but the blank one needs them."""
    if rows == 1 or not needed:
        return None
    if not (data / IDENTIFIERS_FILE).is_file():
        raise ConfigError(f"{label}: {data} has no {IDENTIFIERS_FILE}, so its {rows:,} puzzle-embedding rows cannot "
                          f"be matched to the checkpoint's by name")
    return _read_names(data / IDENTIFIERS_FILE, rows, "this run's", label)


def _read_names(path: Path, rows: int, whose: str, label: str) -> list[str]:
    """An identifiers.json that names every row of its table, no more and no fewer."""
    names = read_identifiers(path.parent)
    if len(names) != rows:
        raise ConfigError(f"{label}: {path} names {len(names):,} puzzles but {whose} puzzle-embedding table has "
                          f"{rows:,} rows")
    return names


def _load_source(path: str) -> _Source:
    """The checkpoint at `path` (as load_checkpoint finds it), read without building its model."""
    local = local_checkpoint(path, WEIGHTS, LATEST)
    if local.is_file() and local.name != WEIGHTS:
        return _official_source(local)
    folder = resolve_checkpoint(local)
    cfg = read_config(folder)
    try:
        weights = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot read weights {folder / WEIGHTS}: {exc}") from None
    return _Source(where=folder, cfg=cfg, weights=weights, task=str(cfg.task.get("name") or ""),
                   seq_len=cfg.model.seq_len, ema=cfg.train.ema,
                   names_file=_names_file(cfg.train.data_path, folder))


def _official_source(path: Path) -> _Source:
    """An official HRM/TRM checkpoint file and the all_config.yaml beside it. Its task is not recorded; its
    sequence length is in the weights only where they depend on it, which the shape checks then compare."""
    config = path.parent / CONFIG_FILE
    if not config.exists():
        raise ConfigError(f"official checkpoint {path} needs its {CONFIG_FILE} beside it")
    cfg = config_from_official(read_official_config(config), name=path.name)
    weights = official_to_ours(read_official_state_dict(path), cfg.model)
    return _Source(where=path, cfg=cfg, weights=weights, task=None, seq_len=None, ema=cfg.train.ema,
                   names_file=_names_file(cfg.train.data_path, path.parent))


def _names_file(data_path: str, folder: Path) -> Path | None:
    """Where the checkpoint's identifier names are: its dataset's identifiers.json, else the copy pushed beside it."""
    candidates = ([Path(data_path) / IDENTIFIERS_FILE] if data_path else []) + [folder / PUSHED_IDENTIFIERS]
    return next((candidate for candidate in candidates if candidate.is_file()), None)
