"""Metric sinks: metrics.jsonl always; Weights & Biases or TensorBoard when asked for and installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentloop.errors import ConfigError


class MetricLogger:
    """Appends every record to run_dir/metrics.jsonl and forwards it to the optional external logger."""

    def __init__(self, run_dir: Path, kind: str = "none", project: str = "latentloop", config: dict | None = None,
                 resume_step: int | None = None) -> None:
        """Start metrics.jsonl afresh, or on resume keep the records up to `resume_step`: the ones a killed run
        wrote after its last checkpoint are written again by the resumed run (a torn last line is dropped too)."""
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue
            self.path.write_text("".join(kept))
        self.kind = kind
        self._sink: Any = None
        if kind == "wandb":
            try:
                import wandb
            except ImportError:
                raise ConfigError("train.logger=wandb needs the wandb package: pip install wandb") from None
            self._sink = wandb.init(project=project, name=Path(run_dir).name, config=config, dir=str(run_dir))
        elif kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.logger=tensorboard needs the tensorboard package: pip install tensorboard") from None
            self._sink = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        elif kind != "none":
            raise ConfigError(f"unknown logger {kind!r}; use none, wandb or tensorboard")

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self.kind == "wandb":
            self._sink.log(scalars, step=record["step"])
        elif self.kind == "tensorboard":
            for key, value in scalars.items():
                self._sink.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.kind == "wandb":
            self._sink.finish()
        elif self.kind == "tensorboard":
            self._sink.close()
