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
  small but not 0. The schedule runs over the arm's own ``iterations`` (the retry's over its own);
* ``dec_inv``: the rate dec-inv's gradient-free loop (``decoder_inv_nograd``) actually uses, the
  default of method gradient_free. It caps the schedule's length at ``C = min(iterations, 100)``
  steps (``num_steps_cutoff``), uses ``cosine_warmup`` over C steps while ``i < 0.8 * C`` (the
  comparison in floating point, as written there: at C = 15 the hold starts at step 13) and holds
  the last rate so reached for every later step::

      h = the last i with i < 0.8 * C:   lr_i = cosine_warmup(min(i, h); lr, C)

  so the rate never decays below its value at 80 % of the capped schedule, and runs longer than
  100 steps keep that rate from step 80 on.

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


DEC_INV_CAP = 100  # decoder_inv_nograd's num_steps_cutoff
DEC_INV_HOLD = 0.8  # ... and the share of it after which the rate is held


def hold_step(cap: int) -> int:
    """The last step i with ``i < 0.8 * cap`` (dec-inv's float comparison)."""
    return math.ceil(DEC_INV_HOLD * cap) - 1


def dec_inv(i: int, *, lr: float, iterations: int, warmup_fraction: float) -> float:
    if not 0 <= i < iterations:
        raise ValueError(f"step {i} outside a schedule of {iterations} steps")
    cap = min(iterations, DEC_INV_CAP)
    return cosine_warmup(min(i, hold_step(cap)), lr=lr, iterations=cap, warmup_fraction=warmup_fraction)


SCHEDULES: dict[str, Callable[..., float]] = {"constant": constant, "cosine_warmup": cosine_warmup, "dec_inv": dec_inv}


def learning_rate(name: str) -> Callable[..., float]:
    """The schedule registered as ``name``."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; registered: {sorted(SCHEDULES)}") from None
