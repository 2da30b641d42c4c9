"""Checkpoints: `model.safetensors` (the weights to evaluate: EMA when enabled, plus buffers such as the puzzle
embedding table), `config.json` (the full run config), and `train_state.pt` (raw weights, optimizer, EMA, sampler and
RNG state, for resuming). A checkpoint folder is built under a hidden name, fsynced and renamed, and the `latest`
and `best` pointers are replaced atomically, so a kill mid-save never leaves a half-written checkpoint behind:
`latest` always names a complete folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from latentloop.config import RunConfig
from latentloop.errors import CheckpointError, ConfigError
from latentloop.hub import local_checkpoint
from latentloop.models import ACT, build_model, resolve_forward_dtype
from latentloop.models.official_weights import load_official_checkpoint
from latentloop.paths import ensure_output_dir

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
RAW_WEIGHTS = "raw.safetensors"
TRAIN_STATE = "train_state.pt"
LATEST = "latest"
BEST = "best"


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def weights_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers as contiguous, unshared CPU tensors (what safetensors requires)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


MINIMISED_METRICS = ("lm_loss", "steps")  # keep_best keeps the lowest of these and the highest of the others


def _better(metric: str, value: float, best: float) -> bool:
    return value < best if metric in MINIMISED_METRICS else value > best


def _metric_of(directory: Path, metric: str) -> float | None:
    try:
        value = json.loads((directory / CONFIG).read_text())["metrics"].get(metric)
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _pointer(root: Path, name: str) -> Path | None:
    path = root / name
    return root / path.read_text().strip() if path.exists() else None


def _remove(folder: Path) -> None:
    """Rename first (atomic), then delete: a kill mid-delete leaves a hidden folder, never a half step_N."""
    trash = folder.with_name(f".deleting_{folder.name}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(run_dir: Path, step: int, cfg: RunConfig, weights: dict[str, torch.Tensor],
                    raw_weights: dict[str, torch.Tensor] | None = None, train_state: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None, keep: int = 2, keep_best: str = "") -> Path:
    """Write `run_dir/checkpoints/step_N/` as a whole (built in a hidden folder, fsynced, then renamed), point
    `checkpoints/latest` at it, and keep the newest `keep` checkpoints (all if 0) plus, when `keep_best` names an
    evaluation metric, the best one by it (`checkpoints/best`). A failed write raises CheckpointError and leaves
    the previous checkpoints as they were."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:07d}"
    tmp = root / f".incomplete_{final.name}"
    ensure_output_dir(root, error=CheckpointError)
    for stale in root.glob(".*"):  # left by a kill during an earlier save, clean-up or pointer update
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    try:
        tmp.mkdir()
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "latentloop"})
        (tmp / CONFIG).write_text(json.dumps({"step": step, "config": cfg.to_dict(), "metrics": metrics or {}},
                                             indent=2))
        if raw_weights is not None:
            save_file(raw_weights, str(tmp / RAW_WEIGHTS))
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE)
        for item in tmp.iterdir():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():  # only after a kill between renaming a folder and moving `latest` to it
            _remove(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        _atomic_write(root / LATEST, lambda path: Path(path).write_text(final.name))
    except (OSError, RuntimeError, SafetensorError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = _pointer(root, LATEST)
        kept = f"; {previous} is intact" if previous is not None and previous != final else ""
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"could not write checkpoint {final} ({reason}){kept}") from None
    best = _pointer(root, BEST) if keep_best else None
    value = (metrics or {}).get(keep_best) if keep_best else None
    if value is not None:
        best_value = _metric_of(best, keep_best) if best is not None else None
        if best_value is None or _better(keep_best, float(value), best_value):
            _atomic_write(root / BEST, lambda path: Path(path).write_text(final.name))
            best = final
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old not in (final, best):
            _remove(old)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a checkpoint folder, its model.safetensors, a run folder or its checkpoints/ folder, here or on the
    Hugging Face Hub (`hf:OWNER/REPO[@REVISION][/SUBFOLDER]`, see latentloop/hub.py)."""
    path = local_checkpoint(path, WEIGHTS, LATEST)
    if path.is_file() and path.name == WEIGHTS:
        return path.parent
    for root in (path, path / "checkpoints"):
        if (root / WEIGHTS).exists():
            return root
        if (root / LATEST).exists():
            target = root / (root / LATEST).read_text().strip()
            if (target / WEIGHTS).exists():
                return target
            raise CheckpointError(f"{root / LATEST} points at {target.name}, which is missing or incomplete")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    raise CheckpointError(f"{path} holds no checkpoint (expected {WEIGHTS} or checkpoints/{LATEST})")


def read_config(directory: Path) -> RunConfig:
    path = Path(directory) / CONFIG
    if not path.exists():
        raise CheckpointError(f"{path} not found: a latentloop checkpoint folder holds {WEIGHTS} and {CONFIG}")
    try:
        return RunConfig.from_dict(json.loads(path.read_text())["config"], strict=False)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid checkpoint config ({exc.__class__.__name__}: {exc})") from None
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `model`, naming missing, unexpected or mis-shaped tensors on failure."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{path}: tensor {key} has shape {tuple(value.shape)}, the model expects "
                                  f"{tuple(expected[key].shape)}")
    model.load_state_dict(tensors)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *, config: str | Path | None = None,
                    data: str | Path | None = None) -> tuple[ACT, RunConfig]:
    """Rebuild the model from a checkpoint (see resolve_checkpoint) and load its evaluation weights.

    A file other than model.safetensors is read as a checkpoint of the official HRM/TRM code (e.g. `step_12345`),
    with `config` (default: the all_config.yaml beside it) and `data` (sizes RoPE models): see
    models/official_weights.py. An `hf:` path loads either layout from the Hugging Face Hub (latentloop/hub.py).
    """
    path = local_checkpoint(path, WEIGHTS, LATEST)
    if Path(path).is_file() and Path(path).name != WEIGHTS:
        return load_official_checkpoint(path, config=config, data=data, device=device)
    directory = resolve_checkpoint(path)
    cfg = read_config(directory)
    resolve_forward_dtype(cfg.model, device)  # training records the dtype it used; a hand-written config may say auto
    model = build_model(cfg.model)
    load_weights(model, directory / WEIGHTS)
    return model.to(device).eval(), cfg


def load_train_state(directory: Path) -> dict[str, Any]:
    path = Path(directory) / TRAIN_STATE
    if not path.exists():
        raise CheckpointError(f"{path} not found: this checkpoint holds weights only and cannot be resumed")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt pickle/zip; all mean the same to the user
        raise CheckpointError(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from None
