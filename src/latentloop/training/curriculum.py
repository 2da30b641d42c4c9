"""The recursion-depth curriculum of CGAR (Qasim & Zhang 2025, "Curriculum-Guided Adaptive Recursion",
arXiv 2511.08653): train with few recursions early and the configured T and n later (train.depth_curriculum).

The paper's Progressive Depth Curriculum runs (T, n) = (1, 2) for the first 30% of training, (2, 4) until 60%, then
the full (3, 6) of TRM-MLP. Here a schedule is a list of stages "FRACTION:T,n" separated by ";": stage i applies
while the fraction of optimizer steps already taken, (step - 1) / total_steps, is below its FRACTION; past the last
one the configured T and n apply. `cgar` is that schedule at one third and two thirds of the configured depth
(rounded up): "0.3:ceil(T/3),ceil(n/3);0.6:ceil(2T/3),ceil(2n/3)", exactly the paper's for T=3, n=6.

The depth of a step follows from the step number alone, so an exact resume needs no extra state; evaluation,
checkpoints and the saved config always use the configured T and n.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from latentloop.errors import ConfigError
from latentloop.models.config import ModelConfig

CGAR = "cgar"
Stage = tuple[float, int, int]   # (until this fraction of the steps, T, n)


def depth_stages(text: str, cfg: ModelConfig) -> list[Stage]:
    """The stages of a depth_curriculum value for a model with cfg's T and n; [] when off (""). Raises
    ConfigError, in one line, for a malformed schedule or one that is not a curriculum (fractions not rising
    within (0, 1), depths not within 1..the configured T and n), and for a model with no recursion depth."""
    if not text:
        return []
    if cfg.arch == "baseline":
        raise ConfigError("depth_curriculum schedules T and n; arch=baseline has no recursion and would ignore it")
    if text == CGAR:
        return [(0.3, -(-cfg.T // 3), -(-cfg.n // 3)), (0.6, -(-2 * cfg.T // 3), -(-2 * cfg.n // 3))]
    form = f'depth_curriculum must be "{CGAR}" or stages "FRACTION:T,n;..." such as "0.3:1,2;0.6:2,4", not {text!r}'
    stages: list[Stage] = []
    for part in text.split(";"):
        until, _, depth = part.partition(":")
        try:
            T, n = (int(v) for v in depth.split(","))
            stage = (float(until), T, n)
        except ValueError:
            raise ConfigError(form) from None
        previous = stages[-1][0] if stages else 0.0
        if not previous < stage[0] < 1:
            raise ConfigError(f"{form}: the fractions must rise strictly within (0, 1)")
        if not (1 <= T <= cfg.T and 1 <= n <= cfg.n):
            raise ConfigError(f"depth_curriculum stage {part.strip()!r} must have T in 1..{cfg.T} and n in "
                              f"1..{cfg.n} (the configured depth, which training ends with)")
        stages.append(stage)
    return stages


def depth_at(stages: list[Stage], step: int, total_steps: int, cfg: ModelConfig) -> tuple[int, int]:
    """(T, n) of optimizer step `step` (1-based) of `total_steps`: the first stage whose fraction lies above the
    fraction of steps already taken, else the configured depth."""
    done = (step - 1) / total_steps
    return next(((T, n) for until, T, n in stages if done < until), (cfg.T, cfg.n))


def describe(stages: list[Stage], cfg: ModelConfig) -> str:
    """The schedule in words: "depth curriculum: T=1 n=2 until 30% of the steps, T=2 n=4 until 60%, then T=3 n=6"."""
    parts = [f"T={T} n={n} until {until:.0%}" for until, T, n in stages]
    return f"depth curriculum: {', '.join(parts)} of the steps, then T={cfg.T} n={cfg.n}"


@contextmanager
def recursion_depth(cfg: ModelConfig, T: int, n: int) -> Iterator[None]:
    """Run the block (a forward and its backward, which may recompute recursions) with T and n, then put the
    configured ones back; the model reads both from `cfg` at every call."""
    full = cfg.T, cfg.n
    cfg.T, cfg.n = T, n
    try:
        yield
    finally:
        cfg.T, cfg.n = full
