"""What a model costs: dense parameters, the puzzle-embedding table (a buffer the papers' "7M" / "27M" leave out),
effective depth per supervision step, forward passes per optimizer step and the precision (`latentloop info`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentloop.config import apply_overrides, load_preset
from latentloop.models import ACT, build_model, count_parameters, describe, resolve_forward_dtype
from latentloop.models.official_weights import dataset_metadata


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
    batch_rows: int = 0          # global batch size: the most table rows one optimizer step can touch
    rows_note: str = ""          # why the row count is a placeholder (a preset whose dataset is not here)
    precision: str = ""          # the forward dtype, and for forward_dtype=auto what it resolves to here and why

    def report(self) -> str:
        rows = f"{self.puzzle_rows:,} row{'s' if self.puzzle_rows != 1 else ''}"
        table = (f"{rows} x {self.puzzle_dim} fp32 ({_size(self.puzzle_bytes)}), a buffer, not counted above"
                 if self.puzzle_rows else "none")
        lines = [f"model:                       {self.kind}",
                 f"dense parameters:            {self.dense_parameters:,}",
                 f"puzzle-embedding table:      {table}"]
        if self.puzzle_rows:
            per_row = self.puzzle_dim * 4
            most = self.batch_rows if self.rows_note else min(self.batch_rows, self.puzzle_rows)
            touched = (f"at most {most:,} row{'s' if most != 1 else ''} ({_size(most * per_row)}) per optimizer step"
                       if most else "only the rows in the batch")
            indent = " " * 29
            lines += [f"{indent}sign-SGD updates {touched}; Adam moments and EMA skip the table,",
                      f"{indent}but each rank holds all of it and every checkpoint stores it"]
            if self.rows_note:
                lines += [f"{indent}{part}" for part in self.rows_note.splitlines()]
                lines += [f"{indent}each identifier adds {per_row:,} bytes (1,000,000 identifiers: "
                          f"{_size(1_000_000 * per_row)})"]
        calls = f"{self.network_calls} network call{'s' if self.network_calls != 1 else ''}"
        passes = f"{self.forward_passes}" + (" (the Q-continue target reruns each step without gradient)"
                                               if self.forward_passes == 2 else "")
        return "\n".join([*lines, f"effective depth per step:    {self.depth} layers ({calls})",
                           f"forward passes per opt step: {passes}", f"precision:                   {self.precision}"])


def _size(num_bytes: int) -> str:
    return (f"{num_bytes:,} bytes" if num_bytes < 2**20 else f"{num_bytes / 2**20:,.1f} MiB" if num_bytes < 2**30
            else f"{num_bytes / 2**30:,.2f} GiB")


def model_info(model: ACT, batch_rows: int = 0) -> ModelInfo:
    """Works on meta-device models too (nothing is read from the tensors), so a preset's table of any size is
    described without allocating it. `batch_rows`: the global batch size, if known."""
    cfg = model.inner.cfg
    table = model.inner.puzzle_emb
    rows, dim = (table.num_embeddings, table.embedding_dim) if table is not None else (0, 0)
    return ModelInfo(kind=describe(cfg), dense_parameters=count_parameters(model), puzzle_rows=rows, puzzle_dim=dim,
                     puzzle_bytes=rows * dim * 4, depth=cfg.depth, network_calls=cfg.network_calls,
                     forward_passes=cfg.forward_passes, batch_rows=batch_rows,
                     precision=resolve_forward_dtype(cfg, "cpu"))


def preset_info(preset: str, overrides: list[str] | None = None) -> ModelInfo:
    """Info for a preset without allocating it (meta device); sizes come from its dataset when that exists here,
    forward_dtype=auto is resolved for the device training would pick here."""
    from latentloop.training.loop import pick_device   # imported here: the training loop loads far more than info needs

    cfg = apply_overrides(load_preset(preset), overrides or [])
    precision = resolve_forward_dtype(cfg.model, pick_device(cfg.train.device))
    meta = dataset_metadata(cfg.train.data_path)
    if meta is not None:
        m = cfg.model
        m.vocab_size, m.seq_len, m.num_puzzle_identifiers = meta.vocab_size, meta.seq_len, meta.num_puzzle_identifiers
    with torch.device("meta"):
        info = model_info(build_model(cfg.model), cfg.train.global_batch_size)
    info.precision = precision
    if meta is None and info.puzzle_rows == 1:
        info.rows_note = (f"rows: one per puzzle identifier of {cfg.train.data_path}, which is not here\n"
                          f"(1 for Sudoku and mazes, one per task augmentation for ARC; num_puzzle_identifiers=N)")
    return info
