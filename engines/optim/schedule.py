"""The learning-rate schedule written out: linear warm-up, then half a cosine down to a floor.

Linear warm-up (as Goyal et al., 2017, "Accurate, Large Minibatch SGD", §2.2,
use it for large-batch SGD): for the first W steps the rate rises linearly,
lr·(s + 1)/W at step s. With Adam it also keeps the first steps short while
the second-moment estimates are built from a handful of gradients, which makes
the adaptive rate's variance large early on (Liu et al., 2020, "On the
Variance of the Adaptive Learning Rate and Beyond", the RAdam paper). Then
cosine decay (Loshchilov & Hutter, 2017, "SGDR", eq. 5, one cycle without
restarts) from lr down to lr·r over the remaining steps:

    lr_s = lr·r + (lr − lr·r) · ½ · (1 + cos(π · (s − W) / (S − W)))

where S is the run's steps and r the floor's ratio (min_lr_ratio). Past S
the rate stays at the floor.

Example::

    >>> warmup_cosine(0, lr=3e-3, warmup=100, steps=1000, min_lr_ratio=0.1)   # lr/100
    3e-05
"""

from __future__ import annotations

import math
from typing import Protocol


class Schedule(Protocol):
    """What :func:`learning_rate` reads from a config (TrainConfig has all four)."""

    lr: float
    warmup: int
    steps: int
    min_lr_ratio: float


def warmup_cosine(step: int, *, lr: float, warmup: int, steps: int, min_lr_ratio: float) -> float:
    """The learning rate at ``step`` (0-based): linear warm-up over ``warmup`` steps, then a cosine to lr·ratio.

    Args:
        step: Optimizer steps done so far.
        lr: The peak rate, reached at step warmup − 1.
        warmup: W, steps of linear warm-up (0: none).
        steps: S, the run's length; the cosine reaches its floor at S.
        min_lr_ratio: r: the floor is lr·r.

    Returns:
        The rate for this step.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = lr * min_lr_ratio
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def learning_rate(step: int, config: Schedule) -> float:
    """Linear warm-up to lr over ``warmup`` steps, then half a cosine down to lr · min_lr_ratio.

    Args:
        step: Optimizer steps done so far (0-based).
        config: Supplies lr, warmup, steps and min_lr_ratio (a TrainConfig).

    Returns:
        The learning rate for this step.
    """
    return warmup_cosine(step, lr=config.lr, warmup=config.warmup, steps=config.steps,
                         min_lr_ratio=config.min_lr_ratio)
