"""Learning-rate schedules of the Adam loop (``losses.<arm>.schedule``), for every method.

A schedule maps the 0-based index ``i`` of an Adam step (the step from z_i to z_{i+1}) in a run of
``iterations`` steps to that step's learning rate:

* ``constant``: ``lr`` at every step (the loop then leaves Adam's learning rate untouched);
* ``cosine_warmup``: dec-inv's ``get_lr_cosine_with_warmup`` (smhongok/dec-inv,
  src/stable_diffusion/inverse_stable_diffusion.py), with its warm-up length
  ``num_warmup_steps = num_steps // 10`` generalised to ``W = floor(warmup_fraction * iterations)``
  (exact for the decimal fraction written in the config)::

      i <  W:  lr * (i + 1) / W
      i >= W:  lr * (1 + cos(pi * (i - W) / (iterations - W))) / 2

  The first step already moves (``(i+1)/W``, unlike transformers' ``get_cosine_schedule_with_warmup``
  used by dec-inv's gradient-based baseline, whose first step has lr 0), and the last step's rate is
  small but not 0. Not reproduced from dec-inv's gradient-free loop: it caps the schedule's length at
  100 steps and holds the rate reached at 80 % of it for the remaining steps; here the schedule runs
  over the arm's own ``iterations`` (the retry's over its own).

An image that stops early (stopping rule) simply stops on the schedule; a resumed run continues on it
from the checkpoint's iteration.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable


def warmup_steps(iterations: int, warmup_fraction: float) -> int:
    """W = floor(warmup_fraction * iterations), computed on the fraction as written (0.1 * 30 = 3)."""
    return math.floor(Fraction(str(warmup_fraction)) * iterations)


def constant(i: int, *, lr: float, iterations: int, warmup_fraction: float) -> float:
    return lr


def cosine_warmup(i: int, *, lr: float, iterations: int, warmup_fraction: float) -> float:
    if not 0 <= i < iterations:
        raise ValueError(f"step {i} outside a schedule of {iterations} steps")
    w = warmup_steps(iterations, warmup_fraction)
    if i < w:
        return (i + 1) / w * lr
    return lr * (1 + math.cos(math.pi * (i - w) / (iterations - w))) / 2


SCHEDULES: dict[str, Callable[..., float]] = {"constant": constant, "cosine_warmup": cosine_warmup}


def learning_rate(name: str) -> Callable[..., float]:
    """The schedule registered as ``name``."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; registered: {sorted(SCHEDULES)}") from None
