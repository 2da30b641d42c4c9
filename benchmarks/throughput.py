#!/usr/bin/env python
"""Training and evaluation throughput of latentloop's models, measured with the library's own training step.

One training step here is exactly what `latentloop.training.loop.train` does per optimizer step: the ACT forward on
the carried batch (one supervision step: T-1 recursions without gradient, one with), `act_loss`, `(loss / batch)
.backward()`, the finiteness check on the loss, an `AdamATan2` step, a `PuzzleEmbeddingSignSGD` step and an `EMA`
update. Only data loading and metric logging are left out. One evaluation step is one supervision step of the inner
model in eval mode under `torch.no_grad()`, as `latentloop.evaluation.evaluate` runs it.

Inputs are random tokens of the right vocabulary and length (Sudoku-shaped: seq_len = size^2, vocab = size + 2 for
pad, blank and digits), so no dataset is needed; the cost of a step does not depend on the token values.

Every config runs in its own subprocess so that the peak resident memory (and the peak GPU memory) is per config.
Each subprocess also measures a reference, the dense matmul throughput of the machine in the same dtype, just before
and just after its timed steps (so it sees the same load from other processes); the achieved model GFLOP/s, from
FLOPs counted with `torch.utils.flop_counter.FlopCounterMode`, is reported as a share of it.

`--variants` compares speed options (config overrides such as forward_dtype=bfloat16, no_grad_dtype=bfloat16,
compile=true, threads=1) of each config in one process, timed in interleaved rounds so that they share the machine's
load, and reports medians and ratios to the first variant.

`--official PATH` names a checkout of the official TRM code (SamsungSAILMontreal/TinyRecursiveModels), imported from
there at run time and never copied: its training step (`train_batch` of its pretrain.py and the EMA update) on the
same model, loaded with the same initial weights, takes a turn in every round as the row "official", and every
ratio is then stated against it. Its optimizer is the `adam_atan2` package where that runs (CUDA), else latentloop's
AdamATan2, as the output says. Without it the first variant (our eager step, fp32 on a CPU) is the reference.

    python benchmarks/throughput.py                              # the default configs, a few minutes on 2 idle cores
    python benchmarks/throughput.py --configs cpu-sudoku6 --steps 50 --json bench.json
    python benchmarks/throughput.py --configs cpu-sudoku6 --variants base forward_dtype=bfloat16 compile=true
    python benchmarks/throughput.py --device cuda --dtype bfloat16 --batch 768
    python benchmarks/throughput.py --configs trm-sudoku-att --dtype float32 --variants base forward_dtype=bfloat16 \
        --official ../TinyRecursiveModels                     # ours fp32 and bf16 against the official fp32 step
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from latentloop.config import RunConfig, apply_overrides, load_preset
from latentloop.data.format import read_split
from latentloop.data.sampler import GroupSampler
from latentloop.errors import CheckpointError, ConfigError
from latentloop.layers.puzzle_embedding import PuzzleEmbeddingSignSGD
from latentloop.models import build_model, count_parameters
from latentloop.models.act import ACT, Carry
from latentloop.models.losses import LOSSES, act_loss
from latentloop.models.official_config import official_config
from latentloop.models.official_weights import ours_to_official
from latentloop.training.ema import EMA
from latentloop.training.optim import AdamATan2

DEFAULT_CONFIGS = ("trm-sudoku-att", "trm-sudoku-mlp", "hrm-sudoku-1k", "cpu-sudoku6")
PAPER_BATCH = 64            # batch for the paper-size presets (their training global_batch_size is 768)
SUDOKU_SIDE = 9             # grid side of presets that name no generated task (the Sudoku-Extreme ones)
RESULT_PREFIX = "RESULT "   # the line a worker prints for the parent to parse; everything else passes through


@dataclass
class Row:
    """One config's (or one variant's) measurements; also the JSON record written by --json."""

    config: str
    variant: str                           # "base", or the overrides of this variant
    params: int
    batch: int
    dtype: str
    device: str
    threads: int
    warmup: int
    eval_warmup: int
    steps: int                             # timed steps per round
    rounds: int                            # interleaved rounds; the figures are medians over them
    warmup_seconds: float                  # the warmup steps, torch.compile's compilation included
    train_samples_per_s: float
    train_ms_per_step: float
    train_cpu_ms_per_step: float           # process CPU time: less sensitive than wall time to other jobs
    eval_samples_per_s: float
    eval_ms_per_step: float
    eval_cpu_ms_per_step: float
    train_speedup: float                   # median wall time of the reference (official step, else the first
                                           # variant) / this one's
    train_cpu_speedup: float
    eval_speedup: float
    train_gflop_per_sample: float          # model FLOPs of one training step, per sample (forward + backward)
    eval_gflop_per_sample: float
    achieved_gflops: float                 # train_gflop_per_sample * train_samples_per_s
    matmul_peak_gflops: float              # the better of the two reference measurements below, same dtype
    matmul_gflops_before: float            # measured in the worker just before timing
    matmul_gflops_after: float             # ... and just after, so both see the same load on the machine
    percent_of_peak: float
    peak_rss_mib: float                    # of the worker process: with several variants, the largest of them
    peak_gpu_mib: float | None = None
    loader_ms_per_step: float | None = None    # with --data: GroupSampler + torch.as_tensor per batch
    model: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------
# Helpers shared by parent and worker


def pick_device(name: str) -> torch.device:
    """auto = cuda when a GPU is visible, else cpu (the same rule as the training loop, without mps)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def pick_dtype(requested: str, preset_dtype: str, device: torch.device) -> str:
    """auto = the preset's own forward dtype on a GPU (bf16 for the paper presets), float32 on a CPU.

    The official bf16 is a GPU choice: most CPUs have no fast bf16 matmul, so float32 is the fair CPU figure.
    """
    if requested != "auto":
        return requested
    return preset_dtype if device.type == "cuda" else "float32"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock time covers it; a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    """Peak resident set size of this process: ru_maxrss is KiB on Linux, bytes on macOS."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if platform.system() == "Darwin" else maxrss / 1024


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the machine architecture."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() or "cpu"


def is_paper_size(cfg: RunConfig) -> bool:
    """The D=512 presets of the papers, as opposed to the small CPU presets (they get other defaults)."""
    return cfg.model.hidden_size >= 512


def default_counts(cfg: RunConfig, device: torch.device) -> tuple[int, int, int]:
    """(training warmup, eval warmup, timed steps) when not given.

    A paper-size training step is about 3 TFLOP at batch 64, i.e. tens of seconds on 2 CPU cores, so one warmup and
    one timed step is what fits a ~3 minute default run; a step that long averages out timer noise. Its eval then
    skips the warmup: on a CPU there is no autotuning or compilation to warm, and the training steps just ran the same
    kernels and allocation sizes.
    """
    if device.type == "cuda":
        return 5, 5, 30
    return (1, 0, 1) if is_paper_size(cfg) else (2, 2, 10)


# ----------------------------------------------------------------------------------------------------------------
# Reference: dense matmul throughput


def matmul_gflops(device: torch.device, dtype: torch.dtype, size: int, min_seconds: float = 1.0) -> float:
    """Throughput of a size^3 torch.matmul loop, in GFLOP/s (2 n^3 FLOPs per product): the peak a model can hope for."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b, out=out)
    synchronize(device)
    iterations, start = 0, time.perf_counter()
    while True:
        for _ in range(10 if device.type == "cuda" else 1):  # batch GPU launches so the host loop is not the limit
            torch.matmul(a, b, out=out)
            iterations += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and iterations >= 3:
            return 2 * size**3 * iterations / elapsed / 1e9


# ----------------------------------------------------------------------------------------------------------------
# Worker: one config, in its own process


def bench_config(cfg: RunConfig) -> RunConfig:
    """The preset with Sudoku-shaped data dimensions filled in, as the training loop would take them from the data.

    The paper presets have no [data] section (they train on a built Sudoku-Extreme dataset), so they are 9x9.
    """
    side = getattr(cfg.data, "size", SUDOKU_SIDE)
    cfg.model.vocab_size = side + 2          # pad, blank, digits 1..side
    cfg.model.seq_len = side * side
    cfg.model.num_puzzle_identifiers = 1     # Sudoku datasets use a single (blank) puzzle identifier
    return cfg


def random_batch(cfg: RunConfig, batch: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random tokens of the right vocabulary and length (int64, as the sampler yields them)."""
    m = cfg.model
    shape = (batch, m.seq_len)
    return {
        "inputs": torch.randint(1, m.vocab_size, shape, generator=generator).to(device),
        "labels": torch.randint(2, m.vocab_size, shape, generator=generator).to(device),
        "puzzle_identifiers": torch.randint(0, m.num_puzzle_identifiers, (batch,), generator=generator).to(device),
    }


class Trainer:
    """The training step of latentloop.training.loop.train, without data loading and metric logging."""

    def __init__(self, cfg: RunConfig, model: ACT, device: torch.device) -> None:
        t = cfg.train
        self.model = model
        self.loss_fn = LOSSES[t.loss]
        self.optimizer = AdamATan2(model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
        puzzle_emb = model.inner.puzzle_emb
        self.sparse_opt = (PuzzleEmbeddingSignSGD(puzzle_emb, lr=t.puzzle_emb_lr, weight_decay=t.puzzle_emb_weight_decay)
                           if puzzle_emb is not None else None)
        self.ema = EMA(model, t.ema_rate)    # all three presets train with an EMA; it is part of the step's cost
        self.explore_rng = torch.Generator(device=device).manual_seed(0)

    def forward_backward(self, carry: Carry, batch: dict[str, torch.Tensor]) -> tuple[Carry, torch.Tensor]:
        """ACT forward on the carry, the summed loss, and its gradient for the per-sample mean."""
        carry, outputs = self.model(carry, batch, generator=self.explore_rng)
        loss, _ = act_loss(outputs, carry.data["labels"], carry.halted, carry.steps, self.loss_fn)
        (loss / batch["inputs"].shape[0]).backward()
        return carry, loss

    def step(self, carry: Carry, batch: dict[str, torch.Tensor]) -> Carry:
        """One optimizer step = one supervision step, with the loop's finiteness check (a host sync on a GPU)."""
        carry, loss = self.forward_backward(carry, batch)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"loss became {loss.item()}")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.sparse_opt is not None:
            self.sparse_opt.step()
            self.sparse_opt.zero_grad()
        self.ema.update(self.model)
        return carry

    def evaluate(self, state: Any, batch: dict[str, torch.Tensor], steps: int) -> Any:
        return evaluation_steps(self.model, state, batch, steps)


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                  **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def attention_flop_formulas() -> dict[Any, Any]:
    """FLOP formulas for the CPU flash-attention kernels, which FlopCounterMode does not count by itself.

    Without them attention would count as zero on a CPU but not on a GPU (whose SDPA kernels are registered); these
    are the same formulas torch uses for the GPU kernels.
    """
    aten = torch.ops.aten
    if not hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return {}
    return {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops}


def count_flops_per_sample(trainer: Trainer, cfg: RunConfig, device: torch.device) -> tuple[float, float]:
    """Model FLOPs of one training step and one eval step for a single sample (batch 1).

    Every counted op (matmul, attention) is linear in the batch, so batch 1 gives the per-sample figure exactly at
    1/batch of the cost. Optimizer, EMA and element-wise ops are not counted by FlopCounterMode; they are small.
    The gradients made here are dropped before timing.
    """
    model = trainer.model
    batch = random_batch(cfg, 1, device, torch.Generator().manual_seed(1))
    formulas = attention_flop_formulas()
    model.train()
    with FlopCounterMode(display=False, custom_mapping=formulas) as counter:
        trainer.forward_backward(model.initial_carry(batch), batch)
    train_flops = counter.get_total_flops()
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.sparse_opt is not None:
        trainer.sparse_opt.zero_grad()
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=formulas) as counter:
        model.inner(model.inner.initial_state(1, device), batch["inputs"], batch["puzzle_identifiers"])
    model.train()
    return train_flops / 1e9, counter.get_total_flops() / 1e9


def parse_variant(spec: str) -> list[str]:
    """A variant on the command line: comma-separated key=value overrides, or "base" for none."""
    return [] if spec in ("", "base") else [item.strip() for item in spec.split(",") if item.strip()]


@dataclass
class Variant:
    """One model + trainer under test, with its own carry, eval state and per-round timings."""

    name: str
    cfg: RunConfig
    model: torch.nn.Module
    trainer: Trainer | OfficialTrainer
    carry: Any
    state: Any
    train_gflop: float
    eval_gflop: float
    warmup_seconds: float
    timings: dict[str, list[float]] = field(default_factory=dict)

    def record(self, key: str, value: float) -> None:
        self.timings.setdefault(key, []).append(value)

    def median(self, key: str) -> float:
        return statistics.median(self.timings[key])


def build_variant(name: str, cfg: RunConfig, batch: dict[str, torch.Tensor], device: torch.device, warmup: int,
                  eval_warmup: int) -> Variant:
    """Model, optimizers and FLOP counts (on the eager model), then compile if asked and run the warmup steps."""
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    trainer = Trainer(cfg, model, device)
    train_gflop, eval_gflop = count_flops_per_sample(trainer, cfg, device)
    set_threads(cfg)
    start = time.perf_counter()
    if cfg.train.compile:
        model.inner.compile_networks()
    model.train()
    carry = model.initial_carry(batch)
    for _ in range(warmup):
        carry = trainer.step(carry, batch)
    state = model.inner.initial_state(batch["inputs"].shape[0], device)
    if eval_warmup:
        state = trainer.evaluate(state, batch, eval_warmup)
    synchronize(device)
    return Variant(name=name, cfg=cfg, model=model, trainer=trainer, carry=carry, state=state,
                   train_gflop=train_gflop, eval_gflop=eval_gflop, warmup_seconds=time.perf_counter() - start)


DEFAULT_THREADS = torch.get_num_threads()


def set_threads(cfg: RunConfig) -> None:
    """Apply the variant's `threads`; 0 = torch's default, restored in case the previous variant changed it."""
    torch.set_num_threads(cfg.train.threads or DEFAULT_THREADS)


@torch.no_grad()
def evaluation_steps(model: ACT, state: Any, batch: dict[str, torch.Tensor], steps: int) -> Any:
    """`steps` eval supervision steps of the inner model, carrying the state as evaluate() does."""
    model.eval()
    for _ in range(steps):
        state, out = model.inner(state, batch["inputs"], batch["puzzle_identifiers"])
        out.logits.argmax(-1)    # evaluate() reads the prediction after every step
    model.train()
    return state


class Loader:
    """The training loop's batch assembly (GroupSampler + torch.as_tensor) on a real dataset, timed on its own."""

    def __init__(self, data_path: str, cfg: RunConfig, batch_size: int, device: torch.device) -> None:
        split, meta = read_split(os.path.join(data_path, "train"))
        if (meta.seq_len, meta.vocab_size) != (cfg.model.seq_len, cfg.model.vocab_size):
            sys.exit(f"{data_path} has seq_len {meta.seq_len} and vocab {meta.vocab_size}; the config expects "
                     f"{cfg.model.seq_len} and {cfg.model.vocab_size}")
        self.batches = iter(GroupSampler(split, meta, batch_size, seed=0))
        self.device = device
        self.seconds = 0.0
        self.count = 0

    def next(self) -> dict[str, torch.Tensor]:
        start = time.perf_counter()
        batch = {k: torch.as_tensor(v, device=self.device) for k, v in next(self.batches).items()}
        self.seconds += time.perf_counter() - start
        self.count += 1
        return batch


# ----------------------------------------------------------------------------------------------------------------
# The official step (--official PATH): the official TRM code, imported from a checkout at run time


OFFICIAL_MARKER = "models/recursive_reasoning/trm.py"
OFFICIAL_MODULES = ("models.recursive_reasoning.trm", "models.losses", "models.sparse_embedding", "models.ema")
# The TRM repository carries sapientinc's HRM as its own file, which computes the same model.
OFFICIAL_HOMES = {"hrm.hrm_act_v1": "recursive_reasoning.hrm"}


def import_official(path: str) -> str | None:
    """Put the checkout first on sys.path and import what its training step needs; the problem in one line, or None.

    The official files form a top-level `models` package without __init__.py, so an installed package of that name
    would win over the checkout; the imported files are checked to come from it.
    """
    root = Path(path).resolve()
    if not (root / OFFICIAL_MARKER).is_file():
        return f"--official {path}: not a checkout of the official TRM code (it has no {OFFICIAL_MARKER})"
    sys.path.insert(0, str(root))
    try:
        modules = [importlib.import_module(name) for name in OFFICIAL_MODULES]
    except ModuleNotFoundError as exc:
        where = "the checkout" if (exc.name or "").split(".")[0] == "models" else "this environment"
        return f"--official {path}: cannot import the official code: module {exc.name!r} is missing from {where}"
    except Exception as exc:  # a checkout of another version may fail in any way on import
        return f"--official {path}: cannot import the official code: {exc.__class__.__name__}: {exc}"
    for module in modules:
        if not Path(module.__file__ or "").resolve().is_relative_to(root):
            return f"--official {path}: {module.__name__} is imported from {module.__file__}, not from the checkout"
    return None


def official_adam(device: torch.device) -> tuple[type[torch.optim.Optimizer], str]:
    """The dense optimizer of the official pretrain.py: the `adam_atan2` package's kernel where it runs (CUDA, if
    installed), else latentloop's AdamATan2, which computes the same update in plain PyTorch."""
    if device.type == "cuda":
        try:
            from adam_atan2 import AdamATan2 as PackageAdamATan2
            return PackageAdamATan2, "AdamATan2 of the adam_atan2 package"
        except ImportError:
            return AdamATan2, "latentloop's AdamATan2 (the adam_atan2 package is not installed)"
    return AdamATan2, "latentloop's AdamATan2 (the adam_atan2 package is CUDA-only)"


class OfficialTrainer:
    """The training step of `train_batch` in pretrain.py of the official TRM code, plus its EMAHelper update.

    The model is the class named by `official_config` (models/recursive_reasoning/trm.py of the official TRM code for
    TRM) under models/losses.py's ACTLossHead, loaded with our model's weights so both step the same model. It runs
    eager, as the official code does with DISABLE_COMPILE set; our speed options (no_grad_dtype, compile) do not
    apply to it. The official files create their tensors on the default device (pretrain.py builds the model and
    the carries under `with torch.device("cuda")`), so they are built here under `torch.device(device)` the same
    way; nothing in the official code is patched. The EMA update is kept whatever train.ema says, as in `Trainer`.
    """

    def __init__(self, cfg: RunConfig, weights: dict[str, torch.Tensor], batch_size: int, device: torch.device) -> None:
        m, t = cfg.model, cfg.train
        arch = dict(official_config(cfg)["arch"])
        module, class_name = arch.pop("name").split("@")
        loss = arch.pop("loss")
        model_class = getattr(importlib.import_module(f"models.{OFFICIAL_HOMES.get(module, module)}"), class_name)
        losses, sparse, ema = (importlib.import_module(name) for name in OFFICIAL_MODULES[1:])
        self.device = device
        with torch.device(device):
            # The sizes pretrain.py's create_model adds from the dataset and the run.
            inner = model_class(dict(arch, batch_size=batch_size, vocab_size=m.vocab_size, seq_len=m.seq_len,
                                     num_puzzle_identifiers=m.num_puzzle_identifiers, causal=False))
            self.model = losses.ACTLossHead(inner, loss_type=loss["loss_type"])
        self.model.load_state_dict(ours_to_official(weights, m, prefix="model."))
        if "valid_mask" not in inspect.signature(self.model.loss_fn).parameters:
            raise ConfigError(f"the official ACTLossHead passes valid_mask to its loss, which the official "
                              f"{t.loss} does not take, so the official code cannot train with it; pass "
                              f"--set loss=stablemax_cross_entropy")
        adam, self.adam_name = official_adam(device)
        self.optimizers: list[torch.optim.Optimizer] = []
        if m.puzzle_emb_ndim > 0:
            self.optimizers.append(sparse.CastedSparseEmbeddingSignSGD_Distributed(
                inner.puzzle_emb.buffers(), world_size=1, lr=t.puzzle_emb_lr, weight_decay=t.puzzle_emb_weight_decay))
        self.optimizers.append(adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                    betas=(t.beta1, t.beta2)))
        self.ema = ema.EMAHelper(mu=t.ema_rate)
        self.ema.register(self.model)

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Any:
        with torch.device(self.device):
            return self.model.initial_carry(batch)

    def step(self, carry: Any, batch: dict[str, torch.Tensor]) -> Any:
        """Forward on the carry with the loss head, backward of the per-sample mean, the optimizers (sign-SGD first),
        the metric read-back (a host sync, as our loss check), the EMA update."""
        carry, loss, metrics, _, _ = self.model(carry=carry, batch=batch, return_keys=[])
        ((1 / batch["inputs"].shape[0]) * loss).backward()
        for optimizer in self.optimizers:
            optimizer.step()
            optimizer.zero_grad()
        torch.stack([metrics[k] for k in sorted(metrics)]).cpu().numpy()
        self.ema.update(self.model)
        return carry

    @torch.inference_mode()
    def evaluate(self, carry: Any, batch: dict[str, torch.Tensor], steps: int) -> Any:
        """`steps` supervision steps of the official evaluate() loop: the loss head in eval mode, reading whether all
        sequences halted after each."""
        self.model.eval()
        for _ in range(steps):
            carry, _, _, _, all_finish = self.model(carry=carry, batch=batch, return_keys=[])
            bool(all_finish)
        self.model.train()
        return carry


def build_official(path: str, cfg: RunConfig, batch: dict[str, torch.Tensor], device: torch.device, warmup: int,
                   eval_warmup: int) -> Variant:
    """The official step on the weights (and FLOP counts) a "base" variant of this config starts from, warmed up."""
    problem = import_official(path)
    if problem:
        sys.exit(f"error: {problem}")
    torch.manual_seed(0)   # as build_variant: the same initial weights
    model = build_model(cfg.model).to(device)
    train_gflop, eval_gflop = count_flops_per_sample(Trainer(cfg, model, device), cfg, device)
    try:
        trainer = OfficialTrainer(cfg, model.state_dict(), batch["inputs"].shape[0], device)
    except (CheckpointError, ConfigError) as exc:
        sys.exit(f"error: --official: {exc}")
    print(f"official step: {path}, {cfg.model.forward_dtype}, eager; dense optimizer: {trainer.adam_name}")
    del model
    set_threads(cfg)
    start = time.perf_counter()
    carry = trainer.initial_carry(batch)
    for _ in range(warmup):
        carry = trainer.step(carry, batch)
    state = trainer.evaluate(trainer.initial_carry(batch), batch, eval_warmup)
    synchronize(device)
    return Variant(name="official", cfg=cfg, model=trainer.model, trainer=trainer, carry=carry, state=state,
                   train_gflop=train_gflop, eval_gflop=eval_gflop, warmup_seconds=time.perf_counter() - start)


def time_round(variant: Variant, batch: dict[str, torch.Tensor], steps: int, device: torch.device,
               loader: Loader | None) -> None:
    """One round: `steps` training steps, then `steps` eval steps; wall and process CPU seconds of each."""
    set_threads(variant.cfg)
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        variant.carry = variant.trainer.step(variant.carry, loader.next() if loader else batch)
    synchronize(device)
    variant.record("train", time.perf_counter() - wall)
    variant.record("train_cpu", time.process_time() - cpu)
    wall, cpu = time.perf_counter(), time.process_time()
    variant.state = variant.trainer.evaluate(variant.state, batch, steps)
    synchronize(device)
    variant.record("eval", time.perf_counter() - wall)
    variant.record("eval_cpu", time.process_time() - cpu)


def run_worker(options: dict[str, Any]) -> list[Row]:
    """Build every variant of one config, count FLOPs, time them in interleaved rounds, report medians and memory.

    Interleaving (variant A, B, C, A, B, C, ...) gives every variant the same share of whatever else the machine is
    doing, so the ratios between variants hold even when the absolute figures do not. With --official the official
    step takes its turn first in every round and is the reference of the ratios; otherwise the first variant is.
    """
    device = torch.device(options["device"])
    base = bench_config(load_preset(options["config"]))
    base.model.forward_dtype = pick_dtype(options["dtype"], base.model.forward_dtype, device)
    apply_overrides(base, options["overrides"])
    batch_size = options["batch"] or (PAPER_BATCH if is_paper_size(base) else base.train.global_batch_size)
    warmup, eval_warmup, steps = default_counts(base, device)
    if options["warmup"] is not None:
        warmup = eval_warmup = options["warmup"]
    steps = steps if options["steps"] is None else options["steps"]
    configs = {spec or "base": apply_overrides(copy.deepcopy(base), parse_variant(spec))
               for spec in options["variants"]}
    dtypes = sorted({cfg.model.forward_dtype for cfg in [base, *configs.values()]})

    # The reference runs before the models exist and after the memory peaks are read, so it is not in them.
    matmul_before = {d: matmul_gflops(device, getattr(torch, d), options["matmul_size"]) for d in dtypes}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    batch = random_batch(base, batch_size, device, torch.Generator().manual_seed(0))
    loader = Loader(options["data"], base, batch_size, device) if options["data"] else None
    # The official step, if asked for, is built first so that a config it cannot run fails before our builds.
    variants = [build_official(options["official"], base, batch, device, warmup, eval_warmup)] \
        if options["official"] else []
    variants += [build_variant(name, cfg, batch, device, warmup, eval_warmup) for name, cfg in configs.items()]
    for _ in range(options["rounds"]):
        for variant in variants:
            time_round(variant, batch, steps, device, loader)
    rss_mib = peak_rss_mib()
    gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    matmul_after = {d: matmul_gflops(device, getattr(torch, d), options["matmul_size"]) for d in dtypes}

    reference = variants[0]
    rows = []
    for v in variants:
        dtype = v.cfg.model.forward_dtype
        no_grad_dtype = v.cfg.model.no_grad_dtype if isinstance(v.trainer, Trainer) else ""
        train_seconds, eval_seconds = v.median("train") / steps, v.median("eval") / steps
        train_rate = batch_size / train_seconds
        peak = max(matmul_before[dtype], matmul_after[dtype])
        rows.append(Row(
            config=options["config"], variant=v.name, params=count_parameters(v.model), batch=batch_size,
            dtype=dtype + (f" (no-grad {no_grad_dtype})" if no_grad_dtype else ""),
            device=device.type, threads=v.cfg.train.threads or DEFAULT_THREADS,
            warmup=warmup, eval_warmup=eval_warmup, steps=steps, rounds=options["rounds"],
            warmup_seconds=v.warmup_seconds,
            train_samples_per_s=train_rate, train_ms_per_step=1000 * train_seconds,
            train_cpu_ms_per_step=1000 * v.median("train_cpu") / steps,
            eval_samples_per_s=batch_size / eval_seconds, eval_ms_per_step=1000 * eval_seconds,
            eval_cpu_ms_per_step=1000 * v.median("eval_cpu") / steps,
            train_speedup=reference.median("train") / v.median("train"),
            train_cpu_speedup=reference.median("train_cpu") / v.median("train_cpu"),
            eval_speedup=reference.median("eval") / v.median("eval"),
            train_gflop_per_sample=v.train_gflop, eval_gflop_per_sample=v.eval_gflop,
            achieved_gflops=v.train_gflop * train_rate, matmul_peak_gflops=peak,
            matmul_gflops_before=matmul_before[dtype], matmul_gflops_after=matmul_after[dtype],
            percent_of_peak=100 * v.train_gflop * train_rate / peak, peak_rss_mib=rss_mib, peak_gpu_mib=gpu_mib,
            loader_ms_per_step=1000 * loader.seconds / loader.count if loader else None,
            model={k: getattr(v.cfg.model, k) for k in ("hidden_size", "layers", "T", "n", "N_sup", "mlp_t",
                                                        "vocab_size", "seq_len", "prefix_len")},
        ))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Parent: reference, subprocesses, table


def run_in_subprocess(options: dict[str, Any]) -> list[Row] | str:
    """Run one config (all its variants) in a fresh interpreter; returns its rows, or the error text if it failed."""
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(options)],
                          stdout=subprocess.PIPE, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    for line in proc.stdout.splitlines():
        if not line.startswith(RESULT_PREFIX):
            print(line)
    if proc.returncode or not lines:
        return f"failed with exit code {proc.returncode} (see stderr above)"
    return [Row(**record) for record in json.loads(lines[-1][len(RESULT_PREFIX):])]


def format_table(rows: list[Row], gpu: bool) -> str:
    """A plain markdown table, one row per config and variant."""
    variants = any(r.variant != "base" for r in rows)
    loader = any(r.loader_ms_per_step is not None for r in rows)
    header = ["config", *(["variant"] if variants else []), "params", "batch", "dtype", "threads",
              "train samples/s", "ms/step", "CPU ms/step", *(["x wall", "x CPU"] if variants else []),
              "GFLOP/step-sample", "achieved GFLOP/s", "% of matmul peak", "eval samples/s",
              *(["eval x"] if variants else []), "warmup s", "peak RSS MiB"]
    if loader:
        header += ["loader ms/step", "loader share"]
    if gpu:
        header.append("peak GPU MiB")
    body = []
    for r in rows:
        cells = [r.config, *([r.variant] if variants else []), f"{r.params / 1e6:.2f}M", str(r.batch), r.dtype,
                 str(r.threads), f"{r.train_samples_per_s:,.1f}", f"{r.train_ms_per_step:,.1f}",
                 f"{r.train_cpu_ms_per_step:,.1f}",
                 *([f"{r.train_speedup:.2f}", f"{r.train_cpu_speedup:.2f}"] if variants else []),
                 f"{r.train_gflop_per_sample:,.2f}", f"{r.achieved_gflops:,.1f}", f"{r.percent_of_peak:.1f}%",
                 f"{r.eval_samples_per_s:,.1f}", *([f"{r.eval_speedup:.2f}"] if variants else []),
                 f"{r.warmup_seconds:,.1f}", f"{r.peak_rss_mib:,.0f}"]
        if loader:
            share = r.loader_ms_per_step / (r.loader_ms_per_step + r.train_ms_per_step) if r.loader_ms_per_step else 0
            cells += [f"{r.loader_ms_per_step or 0:.3f}", f"{100 * share:.2f}%"]
        if gpu:
            cells.append(f"{r.peak_gpu_mib:,.0f}" if r.peak_gpu_mib is not None else "-")
        body.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |" for cells in body]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                        help="preset names or TOML files (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=0,
                        help=f"batch size for every config (default: {PAPER_BATCH} for paper-size presets, "
                             "the preset's global_batch_size otherwise)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per round (default: 1 for paper-size presets on CPU, 10 for small ones, "
                             "30 on GPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps before timing training and eval (default: 1 before training and none "
                             "before eval for paper-size presets on CPU, 2 for small ones, 5 on GPU)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="forward dtype (default auto: float32 on CPU, the preset's dtype on GPU)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides for every config and variant, e.g. threads=1")
    parser.add_argument("--variants", nargs="+", default=["base"], metavar="SPEC",
                        help="variants to compare, each a comma-separated list of overrides or 'base', e.g. "
                             "base forward_dtype=bfloat16 compile=true,no_grad_dtype=bfloat16; they run in one "
                             "process per config, interleaved, and are reported as ratios to the first")
    parser.add_argument("--rounds", type=int, default=0,
                        help="interleaved timing rounds, medians reported (default: 1, or 3 with variants)")
    parser.add_argument("--data", metavar="PATH",
                        help="draw training batches with the loop's GroupSampler from this dataset (shapes must "
                             "match the config) and time batch assembly on its own")
    parser.add_argument("--official", metavar="PATH",
                        help="a checkout of the official TRM code (SamsungSAILMontreal/TinyRecursiveModels), "
                             "imported at run time: its training step on the same model takes a turn in every "
                             "round and becomes the reference of the ratios")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--matmul-size", type=int, default=0,
                        help="matrix size of the reference matmul (default: 2048 on CPU, 8192 on GPU)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows (and the reference) as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or (args.warmup is not None and args.warmup < 0) or \
            args.batch < 0 or args.rounds < 0:
        parser.error("--steps must be >= 1, --warmup, --batch and --rounds >= 0")
    args.rounds = args.rounds or (3 if len(args.variants) > 1 or args.official else 1)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        rows = run_worker(json.loads(args.worker))
        print(RESULT_PREFIX + json.dumps([asdict(row) for row in rows]), flush=True)
        return
    if args.official:
        problem = import_official(args.official)   # here too, to fail before any work is done
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)

    try:
        presets = [apply_overrides(load_preset(name), args.set) for name in args.configs]
        for spec in args.variants:
            apply_overrides(load_preset(args.configs[0]), parse_variant(spec))
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    sys.stdout.reconfigure(line_buffering=True)   # keep our lines in order with the workers' when piped
    start = time.perf_counter()
    device = pick_device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"latentloop throughput on {device.type} ({where}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    if hasattr(os, "getloadavg"):
        # Other processes on the same cores slow every figure below, the matmul reference included.
        print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} logical CPUs")
    matmul_size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    if device.type == "cpu" and args.steps is None and any(is_paper_size(cfg) for cfg in presets):
        print("note: a paper-size step takes tens of seconds on a CPU, so those configs are timed over 1 warmup + "
              "1 timed training step and 1 eval step per round (rough figures; pass --steps/--warmup for more)")
    if args.dtype == "auto":
        print("dtype auto: float32 on CPU, the preset's own dtype on GPU (the official bf16 is a GPU choice); "
              "variants may override it")

    rows: list[Row] = []
    for name in args.configs:
        print(f"  {name} ...", flush=True)
        t0 = time.perf_counter()
        options = {"config": name, "device": str(device), "dtype": args.dtype, "batch": args.batch,
                   "steps": args.steps, "warmup": args.warmup, "matmul_size": matmul_size, "overrides": args.set,
                   "variants": args.variants, "rounds": args.rounds, "data": args.data,
                   "official": str(Path(args.official).resolve()) if args.official else None}
        result = run_in_subprocess(options)
        if isinstance(result, str):
            print(f"{name}: {result}", file=sys.stderr)
            continue
        rows.extend(result)
        if len(args.configs) > 1:
            print(format_table(result, gpu=device.type == "cuda"))  # so a run cut short still shows what it did
        first = result[0]
        print(f"  {name}: {first.rounds} round(s) of {first.steps} timed step(s) each for training and eval, after "
              f"{first.warmup} (training) and {first.eval_warmup} (eval) warmup step(s); {matmul_size}^3 matmul "
              f"reference " + ", ".join(sorted({f"{r.dtype.split()[0]} {r.matmul_gflops_before:,.1f} before, "
                                                f"{r.matmul_gflops_after:,.1f} after" for r in result}))
              + f" GFLOP/s; {time.perf_counter() - t0:.0f} s", flush=True)

    if not rows:
        sys.exit("error: no config ran")
    print()
    print(format_table(rows, gpu=device.type == "cuda"))
    print()
    print("Training step = ACT forward + act_loss + backward + AdamATan2 + sign-SGD + EMA (one supervision step); "
          "eval step = one no-grad supervision step of the inner model. GFLOP counts matmuls and attention "
          "(forward + backward) with FlopCounterMode. % of matmul peak = achieved GFLOP/s over the better of the "
          "matmul references (in the variant's forward dtype) taken in the same process before and after timing "
          "(over 100% means the load on the machine changed in between). x wall / x CPU = the reference's "
          "median time over this one's, the reference being the official step with --official and the first "
          "variant otherwise (all run interleaved in one process, so they share the machine's load; CPU time is the "
          "process's, all threads). Warmup s includes torch.compile's compilation. Peak RSS includes the few "
          "hundred MiB of the torch runtime and, with variants, covers all of them.")
    if args.official:
        print("official = train_batch of the official pretrain.py (loss head forward + backward + sign-SGD + "
              "AdamATan2 + metric read-back) and its EMA update, eager, on the same initial weights; its eval step "
              "is one supervision step of the official evaluate() loop (the loss head in eval mode).")
    load = f", load average {os.getloadavg()[0]:.2f} at the end" if hasattr(os, "getloadavg") else ""
    print(f"total {time.perf_counter() - start:.0f} s{load}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device.type, "device_name": where, "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "matmul_size": matmul_size, "official": args.official,
                       "command": " ".join(sys.argv), "rows": [asdict(r) for r in rows]}, handle, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
