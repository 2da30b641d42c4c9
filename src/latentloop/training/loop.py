"""The training loop, in one place (nanoGPT style): data, model, optimizers, deep supervision, evaluation, saving.

One optimizer step = one supervision step of the ACT carry (the official `train_batch` in `pretrain.py`): the loss
of every row is summed, divided by the global batch size and back-propagated; AdamATan2 updates the dense weights and
sign-SGD the puzzle-embedding rows the batch touched; the EMA follows the raw weights and is what gets evaluated and
saved. The training methods of later papers are options, off by default: Muon for the reasoning networks' matrices
(optimizer=muon), CGAR's depth curriculum (training/curriculum.py) and supervision weighting (sup_step_weights).
A run is total_steps optimizer steps (run_schedule=steps), or the official pretrain.py's loop (run_schedule=iterations):
whole sampler iterations of eval_interval epochs, each followed by an evaluation, where the batches past total_steps
update only the EMA.

Under torchrun each rank trains its contiguous slice of the global batch and the gradients are summed across ranks
(distributed.py, as the official `pretrain.py` does). With grad_accum_steps=k each rank's slice is cut again into k
micro-batches of rows, each with its own part of the ACT carry, and their gradients add up before the one optimizer
step. Either way every row sees the same data, carry and exploration draws as in one process, so the run follows the
single-process trajectory up to floating-point summation order.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from latentloop.config import RunConfig, TrainConfig, validate_train_config
from latentloop.data.format import read_split
from latentloop.data.sampler import GroupSampler
from latentloop.errors import CheckpointError, ConfigError, DataError, LatentloopError
from latentloop.evaluation.evaluate import EvalResult, evaluate
from latentloop.layers.puzzle_embedding import PuzzleEmbeddingSignSGD
from latentloop.models import Carry, build_model, count_parameters, resolve_forward_dtype
from latentloop.models.config import AUTO_DTYPE
from latentloop.models.losses import LOSSES, act_loss, supervision_weights
from latentloop.paths import ensure_output_dir
from latentloop.tasks import Task, task_of_dataset
from latentloop.training.checkpoint import (RAW_WEIGHTS, load_train_state, load_weights, read_config,
                                           resolve_checkpoint, save_checkpoint, weights_for_saving)
from latentloop.training.curriculum import depth_at, depth_stages, describe, recursion_depth
from latentloop.training.distributed import Distributed, example_range
from latentloop.training.ema import EMA
from latentloop.training.init_from import check_init_settings, freeze, prepare_init
from latentloop.training.loggers import MetricLogger
from latentloop.training.memory import GIB, MemoryEstimate, estimate_memory, format_bytes
from latentloop.training.optim import OPTIMIZERS, AdamATan2, lr_at, make_muon, split_for_muon

if TYPE_CHECKING:
    from latentloop.evaluation.arc import ArcEvaluator

RUN_SCHEDULES = ("steps", "iterations")   # train.run_schedule: latentloop's, or the official loop's
EVAL_METRICS = ("exact_accuracy", "accuracy", "q_halt_accuracy", "lm_loss", "steps")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    num_params: int
    final_eval: EvalResult | None
    history: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0                          # under torchrun, only rank 0 reports
    precision: str = ""                    # the forward dtype used, and why (resolve_forward_dtype)
    eval_seconds: float = 0.0              # of `seconds`, the held-out evaluations this process ran


def pick_device(name: str) -> torch.device:
    if name != "auto":
        if name == "cuda" and not torch.cuda.is_available():
            raise ConfigError("train.device=cuda but no CUDA GPU is available")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def total_training_steps(cfg: RunConfig, total_groups: int, mean_puzzle_examples: float) -> int:
    """The official estimate: epochs x groups x mean examples per puzzle / global batch size."""
    return max(1, int(cfg.train.epochs * total_groups * mean_puzzle_examples / cfg.train.global_batch_size))


def _fit_model_to_data(cfg: RunConfig, train_meta, test_meta) -> None:
    """Vocabulary, sequence length and puzzle-embedding rows come from the dataset, as in the official code."""
    if (test_meta.seq_len, test_meta.vocab_size) != (train_meta.seq_len, train_meta.vocab_size):
        raise ConfigError(f"train split has seq_len {train_meta.seq_len} and vocab_size {train_meta.vocab_size}, "
                          f"test split {test_meta.seq_len} and {test_meta.vocab_size}")
    cfg.model.vocab_size = train_meta.vocab_size
    cfg.model.seq_len = train_meta.seq_len
    cfg.model.num_puzzle_identifiers = max(train_meta.num_puzzle_identifiers, test_meta.num_puzzle_identifiers)


def _metric_name(key: str) -> str:
    return key.removeprefix("eval/")


def _check_settings(t: TrainConfig) -> None:
    """Reject settings that would otherwise fail late, or with a traceback, before any work starts."""
    from latentloop.evaluation.arc import ARC_VOTES, metric_names as arc_metric_names

    validate_train_config(t)  # every numeric field's range (config.TRAIN_RANGES)
    if t.loss not in LOSSES:
        raise ConfigError(f"unknown loss {t.loss!r}; use one of {', '.join(LOSSES)}")
    if t.epochs % t.eval_interval:
        raise ConfigError(f"epochs ({t.epochs}) must be a multiple of eval_interval ({t.eval_interval})")
    if t.keep_best and _metric_name(t.keep_best) not in EVAL_METRICS + arc_metric_names():
        raise ConfigError(f"keep_best={t.keep_best!r} is not an evaluation metric; use one of "
                          f"{', '.join(EVAL_METRICS)}, ARC/pass@2 or ARC/pooled_pass@2 (or \"\" to keep only the "
                          f"newest)")
    if t.run_schedule not in RUN_SCHEDULES:
        raise ConfigError(f"run_schedule must be one of {', '.join(RUN_SCHEDULES)}, not {t.run_schedule!r}")
    if t.arc_votes not in ARC_VOTES:
        raise ConfigError(f"arc_votes must be one of {', '.join(ARC_VOTES)}, not {t.arc_votes!r}")
    if t.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {t.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    check_init_settings(t)


def _check_memory(memory: MemoryEstimate, t: TrainConfig, local_batch: int) -> None:
    """The max_memory_gb guard: refuse to start, and say which grad_accum_steps would fit."""
    limit = t.max_memory_gb * GIB
    if not limit or memory.total <= limit:
        return
    fits = [k for k in range(t.grad_accum_steps + 1, local_batch + 1)
            if local_batch % k == 0 and memory.with_micro_batch(local_batch // k) <= limit]
    hint = "lower global_batch_size or the model size"
    if fits:
        hint = (f"set grad_accum_steps={fits[0]} (same result, about "
                f"{format_bytes(memory.with_micro_batch(local_batch // fits[0]))}) or lower global_batch_size")
    raise ConfigError(f"estimated memory per rank is {format_bytes(memory.total)}, above max_memory_gb="
                      f"{t.max_memory_gb}; {hint}")


def _prepare_run_dir(run_dir: Path) -> None:
    """Fail now, in one line, if the run folder cannot be written, not at the first checkpoint hours later."""
    hint = "choose another with out_dir=FOLDER"
    ensure_output_dir(run_dir, what="the run folder", hint=hint, error=ConfigError)
    try:  # a read-only or full file system can still refuse the first file
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write_test_"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to the run folder {run_dir}: {exc.strerror or exc}; {hint}") from None


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return (isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text
            or "can't allocate memory" in text)


def _out_of_memory_message(step: int, t: TrainConfig, local_batch: int, memory: MemoryEstimate) -> str:
    micro = local_batch // t.grad_accum_steps
    more = next((k for k in range(t.grad_accum_steps + 1, local_batch + 1) if local_batch % k == 0), None)
    fix = (f"set grad_accum_steps={more} (same result, micro-batches of {local_batch // more} rows) or lower "
           f"global_batch_size" if more else "lower global_batch_size")
    return (f"out of memory at step {step} with micro-batches of {micro} rows per rank (estimated "
            f"{format_bytes(memory.total)} per rank); {fix}")


class _StopRequest:
    """Set by the first SIGINT (Ctrl-C) or SIGTERM (preemption): finish the step, save, stop."""

    def __init__(self) -> None:
        self.signal_name: str | None = None


@contextmanager
def _stop_requests(announce: bool) -> Iterator[_StopRequest]:
    """Turn SIGINT and SIGTERM into a stop request for the duration of training; a second Ctrl-C aborts at once."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: object) -> None:
        if request.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.signal_name = signal.Signals(signum).name
        if announce:
            os.write(2, b"\nstopping after this step to save a checkpoint (Ctrl-C again to abort without saving)\n")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _quiet(*_: object) -> None:
    """The log function of ranks other than 0."""


def train(cfg: RunConfig, progress: bool = True, resume: bool = False, log=print) -> TrainResult:
    """Train `cfg` to completion, evaluating every `eval_interval` epochs; returns the final evaluation.

    Launched by torchrun, every rank calls this and trains its share of each batch. SIGINT (Ctrl-C) or SIGTERM
    finishes the current step, saves a checkpoint and raises KeyboardInterrupt; `resume=True` continues from the
    run folder's latest checkpoint exactly where it stopped.
    """
    t = cfg.train
    _check_settings(t)
    if t.threads:
        torch.set_num_threads(t.threads)
    job = Distributed.from_env(pick_device(t.device), t.global_batch_size, t.grad_accum_steps)
    try:
        with _stop_requests(announce=job.is_main) as stop:
            result = _train(cfg, job, stop, progress, resume, log if job.is_main else _quiet)
    except BaseException:
        job.close(wait=False)
        raise
    job.close(wait=True)
    return result


def _train(cfg: RunConfig, job: Distributed, stop: _StopRequest, progress: bool, resume: bool, log) -> TrainResult:
    t = cfg.train
    device = job.device
    run_dir = Path(t.out_dir or f"runs/{cfg.name}")
    depth_schedule = depth_stages(t.depth_curriculum, cfg.model)
    train_split, train_meta = read_split(Path(t.data_path) / "train")
    test_split, test_meta = read_split(Path(t.data_path) / "test")
    if test_split.num_examples == 0:
        raise DataError(f"{Path(t.data_path) / 'test'} holds no examples to evaluate on")
    _fit_model_to_data(cfg, train_meta, test_meta)
    task = _task_of_data(t.data_path, train_meta.task, cfg.data.task, log if job.is_main else lambda _: None)
    if task is not None:  # saved with every checkpoint: solve, view and eval rebuild the task from it
        cfg.task = {"name": task.name, "params": task.params()}
    pool = _arc_pool(t, task, test_split, test_meta, log)
    precision = _resolve_precision(cfg, device, run_dir, resume)
    local_batch = t.global_batch_size // job.world_size
    micro = local_batch // t.grad_accum_steps
    loss_fn = LOSSES[t.loss]
    memory = estimate_memory(cfg.model, local_batch, micro, t.ema, loss_fn)
    _check_memory(memory, t, local_batch)
    # init_from: a fresh run starts from a checkpoint's weights, checked here before anything is written; a resumed
    # run continues from its own checkpoint instead
    init = prepare_init(cfg, task) if t.init_from and not resume else None
    if job.is_main:
        _prepare_run_dir(run_dir)

    seed_everything(t.seed)  # the same seed on every rank: rank 0's weights are broadcast anyway
    model = build_model(cfg.model).to(device)
    if init is not None:
        init.apply(model)
    freeze(model, t.init_train)  # before the optimizers and the EMA, on resume too
    if t.compile:
        model.inner.compile_networks()
    model.train()
    job.broadcast_model(model)
    num_params = count_parameters(model)
    dense, muon = model.parameters(), None
    if t.optimizer == "muon":  # its decay rate is scaled so every weight shrinks by lr * weight_decay per step
        hidden, dense = split_for_muon(model)
        muon = make_muon(hidden, weight_decay=t.weight_decay * t.lr / t.muon_lr)
    optimizer = AdamATan2(dense, lr=0.0, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
    puzzle_emb = model.inner.puzzle_emb
    sparse_opt = (PuzzleEmbeddingSignSGD(puzzle_emb, lr=0.0, weight_decay=t.puzzle_emb_weight_decay)
                  if puzzle_emb is not None and t.init_train != "network" else None)
    ema = EMA(model, t.ema_rate) if t.ema and t.init_train != "embeddings" else None  # frozen: EMA = raw weights
    sampler = GroupSampler(train_split, train_meta, t.global_batch_size, seed=t.seed,
                           epochs_per_iter=t.eval_interval, rank=job.rank, world_size=job.world_size)
    # Every rank draws the exploration numbers of the whole global batch and uses its rows' share (ACT `rows`).
    explore_rng = torch.Generator(device=device).manual_seed(t.seed)
    total_steps = total_training_steps(cfg, train_meta.total_groups, train_meta.mean_puzzle_examples)
    steps_per_eval = max(1, total_steps * t.eval_interval // t.epochs)
    first_row = job.rank * local_batch
    step, elapsed = 0, 0.0
    carries: list[Carry] | None = None
    resumed_carry: Carry | None = None
    window: dict[str, float] = {}
    history: list[dict[str, Any]] = []

    if resume:
        step, resumed_carry, window, elapsed = _restore(run_dir, model, optimizer, sparse_opt, ema, sampler,
                                                        explore_rng, pool, muon)
        log(f"resumed {run_dir} at step {step}")
        if pool is not None and not pool.evaluations and step >= steps_per_eval:
            log("the checkpoint holds no pooled ARC votes (it was saved with arc_votes=per_eval): "
                "ARC/pooled_pass@K pools from the next evaluation on")
    ranks = f" x {job.world_size} ranks" if job.world_size > 1 else ""
    log(f"{cfg.name}: {cfg.model.arch} with {num_params:,} parameters on {device}{ranks}, "
        f"{train_split.num_examples:,} training examples, {test_split.num_examples:,} test examples, "
        f"{total_steps:,} steps")
    log(precision)
    log(memory.report())
    if init is not None:
        log(init.report())
    if depth_schedule:
        log(describe(depth_schedule, cfg.model))
    by_iterations = t.run_schedule == "iterations"
    total_iters = t.epochs // t.eval_interval
    planned = total_steps
    if by_iterations:  # the official pretrain.py: every iteration runs to its end, then evaluates
        planned = sum(sampler.iteration_length(i) for i in range(total_iters))
        log(_iterations_note(planned, total_steps, total_iters, t))
    logger = None
    if job.is_main:
        logger = MetricLogger(run_dir, t.logger, config=cfg.to_dict(), resume_step=step if resume else None)
        # The first record says which precision the run uses (a resumed run keeps it) and, with init_from, which
        # checkpoint it started from
        if not resume:
            logger.log({"step": 0, "forward_dtype": cfg.model.forward_dtype, "precision": precision,
                        **(init.record() if init is not None else {})})
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    start = time.time() - elapsed
    final_eval: EvalResult | None = None
    bar = tqdm(total=planned, initial=step, desc="train", unit="step", disable=not (progress and job.is_main),
               dynamic_ncols=True)
    batches = iter(sampler)
    lr = 0.0  # set by every trained step (a run resumed past total_steps logs no train records)
    eval_seconds = 0.0
    try:
        while (_iterations_done(sampler) < total_iters) if by_iterations else step < total_steps:
            host_batch = next(batches)
            step += 1
            if step <= total_steps:
                batch = {k: torch.as_tensor(v, device=device) for k, v in host_batch.items()}
                micro_batches = [{k: v[i * micro:(i + 1) * micro] for k, v in batch.items()}
                                 for i in range(t.grad_accum_steps)]
                if carries is None:
                    carries = ([model.initial_carry(b) for b in micro_batches] if resumed_carry is None
                               else _split_carry(resumed_carry, first_row, micro, t.grad_accum_steps, device))
                lr = lr_at(step, t.lr, t.lr_warmup_steps, total_steps, t.lr_min_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if muon is not None:
                    for group in muon.param_groups:
                        group["lr"] = lr_at(step, t.muon_lr, t.lr_warmup_steps, total_steps, t.lr_min_ratio)
                if sparse_opt is not None:
                    for group in sparse_opt.param_groups:
                        group["lr"] = lr_at(step, t.puzzle_emb_lr, t.lr_warmup_steps, total_steps, t.lr_min_ratio)
                depth = depth_at(depth_schedule, step, total_steps, cfg.model)

                explore_state = explore_rng.get_state()
                sums: dict[str, torch.Tensor] = {}
                try:
                    for i, micro_batch in enumerate(micro_batches):
                        explore_rng.set_state(explore_state)  # each micro-batch takes its rows of the same draw
                        with recursion_depth(model.inner.cfg, *depth):
                            carries[i], outputs = model(carries[i], micro_batch, generator=explore_rng,
                                                        rows=(first_row + i * micro, t.global_batch_size))
                            weights = (supervision_weights(carries[i].steps, cfg.model.N_sup, t.sup_step_weights)
                                       if t.sup_step_weights else None)
                            loss, metrics = act_loss(outputs, carries[i].data["labels"], carries[i].halted,
                                                     carries[i].steps, loss_fn, row_weights=weights)
                            (loss / t.global_batch_size).backward()
                        if sparse_opt is not None:
                            sparse_opt.collect()
                        for key, value in {"total_loss": loss.detach(), **metrics}.items():
                            sums[key] = sums[key] + value.double() if key in sums else value.double()
                except RuntimeError as exc:
                    if not _is_out_of_memory(exc):
                        raise
                    raise LatentloopError(_out_of_memory_message(step, t, local_batch, memory)) from None
                flag = torch.tensor(1.0 if stop.signal_name else 0.0, dtype=torch.float64, device=device)
                reduced = job.all_reduce_sum(torch.stack([*sums.values(), flag])).tolist()
                values = dict(zip(sums, reduced))
                stopping = reduced[-1] > 0
                total_loss = values.pop("total_loss")
                if not math.isfinite(total_loss):
                    raise LatentloopError(f"loss became {total_loss} at step {step}; stopped before the update, the "
                                          f"last good checkpoint is in {run_dir / 'checkpoints'}")
                job.all_reduce_gradients(list(model.parameters()))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if muon is not None:
                    muon.step()
                    muon.zero_grad(set_to_none=True)
                if sparse_opt is not None:
                    sparse_opt.step()
                    sparse_opt.zero_grad()
                if ema is not None:
                    ema.update(model)

                _accumulate(window, values, t.global_batch_size)
            else:  # the official loop past total_steps: the batch is counted, not trained on; the EMA moves
                if carries is None:  # resumed here: the carry still has to be saved
                    carries = _split_carry(resumed_carry, first_row, micro, t.grad_accum_steps, device)
                flag = torch.tensor([1.0 if stop.signal_name else 0.0], dtype=torch.float64, device=device)
                stopping = job.all_reduce_sum(flag).item() > 0
                if ema is not None:
                    ema.update(model)
            bar.update(1)
            if step % t.log_interval == 0 or step == total_steps:
                record = _flush(window, step, lr, time.time() - start)
                if record:
                    history.append(record)
                    if logger is not None:
                        logger.log(record)
                    bar.set_postfix(loss=f"{record['train/lm_loss']:.3f}",
                                    exact=f"{record['train/exact_accuracy']:.3f}",
                                    steps=f"{record['train/steps']:.1f}")

            evaluating = (_iteration_ended(sampler) if by_iterations
                          else step % steps_per_eval == 0 or step == total_steps)
            if evaluating:
                eval_start = time.time()
                final_eval = _evaluate(cfg, task, model, ema, test_split, test_meta, job, pool)
                eval_seconds += time.time() - eval_start
                record = {"step": step, "time": round(time.time() - start, 2),
                          **{f"eval/{k}": v for k, v in final_eval.summary().items()},
                          "eval/per_step_exact_accuracy": final_eval.per_step_exact_accuracy}
                history.append(record)
                if logger is not None:
                    logger.log(record)
                    bar.write(f"step {step}: held-out exact accuracy {final_eval.exact_accuracy:.1%} "
                              f"(cells {final_eval.accuracy:.1%}) on {final_eval.num_examples:,} puzzles")
            if evaluating or stopping or (t.checkpoint_interval and step % t.checkpoint_interval == 0):
                saved = _save(cfg, run_dir, step, model, optimizer, sparse_opt, ema, sampler, explore_rng, carries,
                              window, time.time() - start, job, final_eval.summary() if evaluating else None, pool,
                              muon)
            if stopping:
                job.barrier()  # every rank leaves together, after rank 0 has written the checkpoint
                log(f"stopped by {stop.signal_name or 'another rank'} at step {step}: saved {saved}; continue "
                    f"with `latentloop train ... --resume`")
                raise KeyboardInterrupt
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    return TrainResult(run_dir=run_dir, steps=step, seconds=time.time() - start, num_params=num_params,
                       final_eval=final_eval, history=history, rank=job.rank, precision=precision,
                       eval_seconds=eval_seconds)


def _resolve_precision(cfg: RunConfig, device: torch.device, run_dir: Path, resume: bool) -> str:
    """Resolve forward_dtype=auto once per run, before anything is built, so that config.json, every checkpoint
    and metrics.jsonl name the dtype used. A resumed run continues in the dtype its checkpoint was trained in,
    whichever machine it continues on."""
    if resume and cfg.model.forward_dtype == AUTO_DTYPE:
        cfg.model.forward_dtype = read_config(resolve_checkpoint(run_dir)).model.forward_dtype
        return f"forward_dtype {AUTO_DTYPE} -> {cfg.model.forward_dtype} (as in the checkpoint resumed)"
    return resolve_forward_dtype(cfg.model, device)


def _iteration_ended(sampler: GroupSampler) -> bool:
    """Whether the batch just taken was the last of its iteration (the official loop evaluates there)."""
    return sampler.batch_in_iteration == sampler.iteration_length(sampler.iteration)


def _iterations_done(sampler: GroupSampler) -> int:
    """Sampler iterations taken to their end."""
    return sampler.iteration + _iteration_ended(sampler)


def _iterations_note(batches: int, total_steps: int, iterations: int, t: TrainConfig) -> str:
    """What run_schedule=iterations does to this run: the batches past total_steps that only move the EMA, or
    the optimizer steps the run ends short of total_steps."""
    text = f"run_schedule=iterations: {iterations} iterations of {t.eval_interval} epochs are {batches:,} batches; "
    if batches <= total_steps:
        return text + f"the run ends after {batches:,} of the {total_steps:,} steps the schedule plans"
    extra = batches - total_steps
    moved = (f"; the final EMA moves {1 - t.ema_rate ** extra:.1%} of the way to the last raw weights"
             if t.ema else "")
    return text + f"the last {extra:,} only count and update the EMA{moved}"


def _accumulate(window: dict[str, float], metrics: dict[str, float], global_batch_size: int) -> None:
    """Sum metrics over logging steps; losses are per sample of the global batch, as the official code logs them."""
    for key, value in metrics.items():
        scale = 1.0 / global_batch_size if key.endswith("_loss") else 1.0
        window[key] = window.get(key, 0.0) + value * scale
    window["_calls"] = window.get("_calls", 0.0) + 1


def _flush(window: dict[str, float], step: int, lr: float, seconds: float) -> dict[str, Any] | None:
    """Average the window: losses per optimizer step, accuracies and steps per sample that halted."""
    calls = window.pop("_calls", 0.0)
    count = window.pop("count", 0.0)
    if not calls:
        return None
    record: dict[str, Any] = {"step": step, "time": round(seconds, 2), "lr": lr}
    for key, value in window.items():
        denominator = calls if key.endswith("_loss") else count
        record[f"train/{key}"] = value / denominator if denominator else float("nan")
    record["train/halted_per_step"] = count / calls
    window.clear()
    return record


@contextmanager
def _evaluation_weights(model: torch.nn.Module, ema: EMA | None) -> Iterator[None]:
    """Evaluate and save the EMA weights when there is an EMA (as the official TRM does), else the raw ones."""
    if ema is None:
        yield
    else:
        with ema.swapped_in(model):
            yield


def _task_of_data(data_path: str, named: str | None, name: str, log) -> Task | None:
    """The dataset's task (`named`: the one its dataset.json names). A dataset that names its task must have it (an unknown name is an error, not a silent
    token run) and must agree with `data.task`; token data of no recognisable task still trains, without task
    metrics or a recorded task."""
    if named:
        task = task_of_dataset(data_path)
        if name and named != name:
            raise ConfigError(f"data.task is {name!r} but {data_path} holds {named!r} data")
        return task
    try:
        return task_of_dataset(data_path, name)
    except DataError as exc:
        log(f"training on plain token rows without task metrics: {exc}")
        return None


def _arc_pool(t: TrainConfig, task: Task | None, split, meta, log) -> ArcEvaluator | None:
    """With arc_votes="pooled", the run-long pool of ARC votes that every evaluation joins: the official TRM
    evaluator, made once per run, which never clears its votes (aggregated_voting=True)."""
    from latentloop.evaluation.arc import ArcEvaluator

    if t.arc_votes != "pooled":
        return None
    observer = task.metrics(Path(t.data_path), split, meta) if task is not None else None
    if not isinstance(observer, ArcEvaluator):
        log("arc_votes=pooled has no effect: this dataset has no ARC test puzzles to vote on")
        return None
    return observer.pool_like()


def _evaluate(cfg: RunConfig, task: Task | None, model, ema: EMA | None, split, meta, job: Distributed,
              pool: ArcEvaluator | None = None) -> EvalResult:
    """Each rank evaluates a contiguous share of the test examples; the results are combined on every rank. With
    a pool, this evaluation's ARC votes (every rank's) join it and both numbers are logged: ARC/pass@K of this
    evaluation and ARC/pooled_pass@K of every evaluation so far."""
    t = cfg.train
    total = min(split.num_examples, t.eval_max_examples) if t.eval_max_examples else split.num_examples
    start, end = job.rows(total)
    batch_size = max(1, -(-(t.eval_batch_size or t.global_batch_size) // job.world_size))
    observer = task.metrics(Path(t.data_path), split, meta) if task is not None else None  # maze paths, ARC votes
    local = None
    if end > start:
        with _evaluation_weights(model, ema):
            local = evaluate(model, example_range(split, start, end), meta, batch_size, job.device, loss=t.loss,
                             on_batch=observer.update if observer is not None else None)
    result = job.reduce_eval(local)
    assert result is not None  # the test split is not empty (checked at start)
    if pool is not None:  # then the observer is this dataset's ArcEvaluator too
        votes = observer.gathered()  # identical on every rank, so every rank's pool stays identical
        result.metrics.update(votes.scores().metrics())
        result.metrics.update(pool.pool(votes).scores().metrics())
    elif observer is not None:
        result.metrics.update(observer.metrics())
    return result


def _cat_carries(carries: list[Carry]) -> Carry:
    """The micro-batches' carries as one carry over this rank's rows, in row order."""
    first = carries[0]
    state = {k: torch.cat([vars(c.state)[k] for c in carries]) for k in vars(first.state)}
    return Carry(state=type(first.state)(**state),
                 steps=torch.cat([c.steps for c in carries]), halted=torch.cat([c.halted for c in carries]),
                 data={k: torch.cat([c.data[k] for c in carries]) for k in first.data})


def _split_carry(carry: Carry, first_row: int, micro: int, count: int, device: torch.device) -> list[Carry]:
    """Rows first_row.. of a saved global carry, cut into `count` micro-batch carries of `micro` rows."""
    def rows(tensor: torch.Tensor, i: int) -> torch.Tensor:
        return tensor[first_row + i * micro:first_row + (i + 1) * micro].to(device)

    return [Carry(state=type(carry.state)(**{k: rows(v, i) for k, v in vars(carry.state).items()}),
                  steps=rows(carry.steps, i), halted=rows(carry.halted, i),
                  data={k: rows(v, i) for k, v in carry.data.items()}) for i in range(count)]


def _carry_state(carries: list[Carry], job: Distributed) -> dict[str, Any]:
    """The ACT carry of the whole global batch as CPU tensors (gathered from every rank), so a resumed run continues
    every row exactly where it was, whatever its number of ranks or micro-batches."""
    carry = _cat_carries(carries)

    def gather(tensor: torch.Tensor) -> torch.Tensor:
        return job.gather_rows(tensor).cpu()

    return {"state": {k: gather(v) for k, v in vars(carry.state).items()}, "steps": gather(carry.steps),
            "halted": gather(carry.halted), "data": {k: gather(v) for k, v in carry.data.items()}}


def _save(cfg: RunConfig, run_dir: Path, step: int, model, optimizer, sparse_opt, ema: EMA | None, sampler,
          explore_rng: torch.Generator, carries: list[Carry], window: dict[str, float], seconds: float,
          job: Distributed, metrics: dict[str, Any] | None, pool: ArcEvaluator | None = None,
          muon: torch.optim.Optimizer | None = None) -> Path | None:
    """Gather the carry from every rank (a collective, so all ranks call this); rank 0 writes the checkpoint.
    With optimizer=muon, "optimizer" holds AdamATan2's state and "muon" Muon's."""
    carry = _carry_state(carries, job)
    if not job.is_main:
        return None
    with _evaluation_weights(model, ema):
        eval_weights = weights_for_saving(model)
    train_state = {"step": step, "optimizer": optimizer.state_dict(), "sampler": sampler.state_dict(),
                   "explore_rng": explore_rng.get_state(), "torch_rng": torch.get_rng_state(),
                   "ema": ema.state_dict() if ema is not None else {},
                   "sparse_optimizer": sparse_opt.state_dict() if sparse_opt is not None else {},
                   "carry": carry, "window": dict(window), "seconds": seconds,
                   "arc_votes": pool.state_dict() if pool is not None else {}}
    if muon is not None:
        train_state["muon"] = muon.state_dict()
    t = cfg.train
    return save_checkpoint(run_dir, step, cfg, eval_weights, raw_weights=weights_for_saving(model),
                           train_state=train_state, metrics=metrics, keep=t.keep_last,
                           keep_best=_metric_name(t.keep_best))


def _restore(run_dir: Path, model, optimizer, sparse_opt, ema, sampler, explore_rng,
             pool: ArcEvaluator | None = None, muon: torch.optim.Optimizer | None = None
             ) -> tuple[int, Carry, dict[str, float], float]:
    """Load raw weights (with the puzzle-embedding table), optimizer(s), EMA, sampler, RNG state, the ACT carry, the
    unlogged metric window and the pooled ARC votes; every rank reads the same checkpoint (multi-node runs need a
    shared run folder)."""
    directory = resolve_checkpoint(run_dir)
    state = load_train_state(directory)
    if ("muon" in state) != (muon is not None):  # checkpoints older than the option hold AdamATan2's state only
        trained = "muon" if "muon" in state else "adam_atan2"
        raise CheckpointError(f"{directory} was trained with optimizer={trained}; resume it with the same optimizer")
    load_weights(model, directory / RAW_WEIGHTS)
    optimizer.load_state_dict(state["optimizer"])
    if muon is not None:
        muon.load_state_dict(state["muon"])
    if sparse_opt is not None and state.get("sparse_optimizer"):
        sparse_opt.load_state_dict(state["sparse_optimizer"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    sampler.load_state_dict(state["sampler"])
    explore_rng.set_state(state["explore_rng"])
    torch.set_rng_state(state["torch_rng"])
    if pool is not None and state.get("arc_votes"):
        pool.load_state_dict(state["arc_votes"])
    saved = state["carry"]
    carry = Carry(state=type(model.inner.initial_state(1, "cpu"))(**saved["state"]), steps=saved["steps"],
                  halted=saved["halted"], data=saved["data"])
    return int(state["step"]), carry, dict(state.get("window", {})), float(state.get("seconds", 0.0))
