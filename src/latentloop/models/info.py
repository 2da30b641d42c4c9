"""What a model costs: dense parameters, the puzzle-embedding table (a buffer the papers' "7M" / "27M" leave out),
effective depth per supervision step, and forward passes per optimizer step (`latentloop info`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentloop.config import apply_overrides, load_preset
from latentloop.models import ACT, build_model, count_parameters, describe
from latentloop.models.official import dataset_metadata


@dataclass
class ModelInfo:
    kind: str
    dense_parameters: int
    puzzle_rows: int
    puzzle_dim: int
    puzzle_bytes: int
    depth: int
    network_calls: int
    forward_passes: int

    def report(self) -> str:
        size = (f"{self.puzzle_bytes:,} bytes" if self.puzzle_bytes < 2**20 else
                f"{self.puzzle_bytes / 2**20:,.1f} MiB" if self.puzzle_bytes < 2**30 else
                f"{self.puzzle_bytes / 2**30:,.2f} GiB")
        rows = f"{self.puzzle_rows:,} row{'s' if self.puzzle_rows != 1 else ''}"
        table = (f"{rows} x {self.puzzle_dim} fp32 ({size}), a buffer, not counted above"
                 if self.puzzle_rows else "none")
        calls = f"{self.network_calls} network call{'s' if self.network_calls != 1 else ''}"
        passes = f"{self.forward_passes}" + (" (the Q-continue target reruns each step without gradient)"
                                               if self.forward_passes == 2 else "")
        return "\n".join([
            f"model:                       {self.kind}",
            f"dense parameters:            {self.dense_parameters:,}",
            f"puzzle-embedding table:      {table}",
            f"effective depth per step:    {self.depth} layers ({calls})",
            f"forward passes per opt step: {passes}"])


def model_info(model: ACT) -> ModelInfo:
    """Works on meta-device models too (nothing is read from the tensors)."""
    cfg = model.inner.cfg
    table = model.inner.puzzle_emb
    rows, dim = (table.num_embeddings, table.embedding_dim) if table is not None else (0, 0)
    return ModelInfo(kind=describe(cfg), dense_parameters=count_parameters(model), puzzle_rows=rows, puzzle_dim=dim,
                     puzzle_bytes=rows * dim * 4, depth=cfg.depth, network_calls=cfg.network_calls,
                     forward_passes=cfg.forward_passes)


def preset_info(preset: str, overrides: list[str] | None = None) -> ModelInfo:
    """Info for a preset without allocating it (meta device); sizes come from its dataset when that exists here."""
    cfg = apply_overrides(load_preset(preset), overrides or [])
    meta = dataset_metadata(cfg.train.data_path)
    if meta is not None:
        m = cfg.model
        m.vocab_size, m.seq_len, m.num_puzzle_identifiers = meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers
    with torch.device("meta"):
        return model_info(build_model(cfg.model))
