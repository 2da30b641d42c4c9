"""The training loop, in one place (nanoGPT style): data, model, optimizers, deep supervision, evaluation, saving.

One optimizer step = one supervision step of the ACT carry (official-implementations.md §6): the loss of every row
is summed, divided by the global batch size and back-propagated; AdamATan2 updates the dense weights and sign-SGD the
puzzle-embedding rows the batch touched; the EMA follows the raw weights and is what gets evaluated and saved.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from latentloop.config import RunConfig
from latentloop.data.format import read_split
from latentloop.data.sampler import GroupSampler
from latentloop.errors import ConfigError, LatentloopError
from latentloop.evaluation.evaluate import EvalResult, evaluate
from latentloop.models import Carry, build_model, count_parameters
from latentloop.models.losses import LOSSES, act_loss
from latentloop.training.checkpoint import (RAW_WEIGHTS, load_train_state, load_weights, resolve_checkpoint,
                                           save_checkpoint, weights_for_saving)
from latentloop.training.ema import EMA
from latentloop.training.loggers import MetricLogger
from latentloop.training.optim import AdamATan2, PuzzleEmbeddingSignSGD, lr_at


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    num_params: int
    final_eval: EvalResult | None
    history: list[dict[str, Any]] = field(default_factory=list)


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


def train(cfg: RunConfig, progress: bool = True, resume: bool = False, log=print) -> TrainResult:
    """Train `cfg` to completion, evaluating every `eval_interval` epochs; returns the final evaluation."""
    t = cfg.train
    if t.loss not in LOSSES:
        raise ConfigError(f"unknown loss {t.loss!r}; use one of {', '.join(LOSSES)}")
    if t.epochs % t.eval_interval:
        raise ConfigError(f"epochs ({t.epochs}) must be a multiple of eval_interval ({t.eval_interval})")
    if t.threads:
        torch.set_num_threads(t.threads)
    device = pick_device(t.device)
    run_dir = Path(t.out_dir or f"runs/{cfg.name}")
    train_split, train_meta = read_split(Path(t.data_path) / "train")
    test_split, test_meta = read_split(Path(t.data_path) / "test")
    _fit_model_to_data(cfg, train_meta, test_meta)

    seed_everything(t.seed)
    model = build_model(cfg.model).to(device)
    model.train()
    num_params = count_parameters(model)
    optimizer = AdamATan2(model.parameters(), lr=0.0, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
    puzzle_emb = model.inner.puzzle_emb
    sparse_opt = (PuzzleEmbeddingSignSGD(puzzle_emb, lr=0.0, weight_decay=t.puzzle_emb_weight_decay)
                  if puzzle_emb is not None else None)
    ema = EMA(model, t.ema_rate) if t.ema else None
    sampler = GroupSampler(train_split, train_meta, t.global_batch_size, seed=t.seed,
                           epochs_per_iter=t.eval_interval)
    explore_rng = torch.Generator(device=device).manual_seed(t.seed)
    total_steps = total_training_steps(cfg, train_meta.total_groups, train_meta.mean_puzzle_examples)
    steps_per_eval = max(1, total_steps * t.eval_interval // t.epochs)
    loss_fn = LOSSES[t.loss]
    step = 0
    carry = resumed_carry = None
    history: list[dict[str, Any]] = []
    run_dir.mkdir(parents=True, exist_ok=True)

    if resume:
        step, resumed_carry = _restore(run_dir, model, optimizer, sparse_opt, ema, sampler, explore_rng)
        log(f"resumed {run_dir} at step {step}")
    logger = MetricLogger(run_dir, t.logger, config=cfg.to_dict(), fresh=not resume)

    log(f"{cfg.name}: {cfg.model.arch} with {num_params:,} parameters on {device}, {train_split.num_examples:,} "
        f"training examples, {test_split.num_examples:,} test examples, {total_steps:,} steps")
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    start = time.time()
    final_eval: EvalResult | None = None
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    batches = iter(sampler)
    window: dict[str, float] = {}
    while step < total_steps:
        batch = {k: torch.as_tensor(v, device=device) for k, v in next(batches).items()}
        if carry is None:
            carry = model.initial_carry(batch) if resumed_carry is None else _carry_to(resumed_carry, device)
        step += 1
        lr = lr_at(step, t.lr, t.lr_warmup_steps, total_steps, t.lr_min_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if sparse_opt is not None:
            for group in sparse_opt.param_groups:
                group["lr"] = lr_at(step, t.puzzle_emb_lr, t.lr_warmup_steps, total_steps, t.lr_min_ratio)

        carry, outputs = model(carry, batch, generator=explore_rng)
        loss, metrics = act_loss(outputs, carry.data["labels"], carry.halted, carry.steps, loss_fn)
        (loss / t.global_batch_size).backward()
        if not math.isfinite(loss.item()):
            raise LatentloopError(f"loss became {loss.item()} at step {step}; stopped before the update, the last "
                                  f"good checkpoint is in {run_dir / 'checkpoints'}")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if sparse_opt is not None:
            sparse_opt.step()
            sparse_opt.zero_grad()
        if ema is not None:
            ema.update(model)

        _accumulate(window, metrics, t.global_batch_size)
        bar.update(1)
        if step % 10 == 0 or step == total_steps:
            record = _flush(window, step, lr, time.time() - start)
            if record:
                history.append(record)
                logger.log(record)
                bar.set_postfix(loss=f"{record['train/lm_loss']:.3f}", exact=f"{record['train/exact_accuracy']:.3f}",
                                steps=f"{record['train/steps']:.1f}")

        if step % steps_per_eval == 0 or step == total_steps:
            final_eval = _evaluate_and_save(cfg, run_dir, step, model, optimizer, sparse_opt, ema, sampler,
                                            explore_rng, carry, test_split, test_meta, device)
            record = {"step": step, "time": round(time.time() - start, 2),
                      **{f"eval/{k}": v for k, v in final_eval.summary().items()},
                      "eval/per_step_exact_accuracy": final_eval.per_step_exact_accuracy}
            history.append(record)
            logger.log(record)
            bar.write(f"step {step}: held-out exact accuracy {final_eval.exact_accuracy:.1%} "
                      f"(cells {final_eval.accuracy:.1%}) on {final_eval.num_examples:,} puzzles")
    bar.close()
    logger.close()
    return TrainResult(run_dir=run_dir, steps=step, seconds=time.time() - start, num_params=num_params,
                       final_eval=final_eval, history=history)


def _accumulate(window: dict[str, float], metrics: dict[str, torch.Tensor], global_batch_size: int) -> None:
    """Sum metrics over logging steps; losses are per sample of the global batch, as the official code logs them."""
    for key, value in metrics.items():
        scale = 1.0 / global_batch_size if key.endswith("_loss") else 1.0
        window[key] = window.get(key, 0.0) + float(value) * scale
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


def _carry_to(carry: Carry, device: torch.device) -> Carry:
    state = type(carry.state)(**{k: v.to(device) for k, v in vars(carry.state).items()})
    return Carry(state=state, steps=carry.steps.to(device), halted=carry.halted.to(device),
                 data={k: v.to(device) for k, v in carry.data.items()})


def _carry_state(carry: Carry) -> dict[str, Any]:
    """The ACT carry as plain tensors, so a resumed run continues every row exactly where it was."""
    return {"state": {k: v.cpu() for k, v in vars(carry.state).items()}, "steps": carry.steps.cpu(),
            "halted": carry.halted.cpu(), "data": {k: v.cpu() for k, v in carry.data.items()}}


def _evaluate_and_save(cfg: RunConfig, run_dir: Path, step: int, model, optimizer, sparse_opt, ema, sampler,
                       explore_rng, carry: Carry, test_split, test_meta, device) -> EvalResult:
    t = cfg.train
    with _evaluation_weights(model, ema):
        result = evaluate(model, test_split, test_meta, t.eval_batch_size or t.global_batch_size, device,
                          max_examples=t.eval_max_examples, loss=t.loss)
        eval_weights = weights_for_saving(model)
    train_state = {"step": step, "optimizer": optimizer.state_dict(), "sampler": sampler.state_dict(),
                   "explore_rng": explore_rng.get_state(), "torch_rng": torch.get_rng_state(),
                   "ema": ema.state_dict() if ema is not None else {},
                   "sparse_optimizer": sparse_opt.state_dict() if sparse_opt is not None else {},
                   "carry": _carry_state(carry)}
    save_checkpoint(run_dir, step, cfg, eval_weights, raw_weights=weights_for_saving(model),
                    train_state=train_state, metrics=result.summary())
    return result


def _restore(run_dir: Path, model, optimizer, sparse_opt, ema, sampler, explore_rng) -> tuple[int, Carry]:
    """Load raw weights (with the puzzle-embedding table), optimizer, EMA, sampler, RNG state and the ACT carry."""
    directory = resolve_checkpoint(run_dir)
    state = load_train_state(directory)
    load_weights(model, directory / RAW_WEIGHTS)
    optimizer.load_state_dict(state["optimizer"])
    if sparse_opt is not None and state.get("sparse_optimizer"):
        sparse_opt.load_state_dict(state["sparse_optimizer"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    sampler.load_state_dict(state["sampler"])
    explore_rng.set_state(state["explore_rng"])
    torch.set_rng_state(state["torch_rng"])
    saved = state["carry"]
    carry = Carry(state=model.inner.initial_state(1, "cpu").__class__(**saved["state"]), steps=saved["steps"],
                  halted=saved["halted"], data=saved["data"])
    return int(state["step"]), carry
