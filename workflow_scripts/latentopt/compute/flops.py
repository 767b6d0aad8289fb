"""Counted work: the floating-point operations of a piece of torch code, counted by
``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's own per-operator formulas).

What the counter counts: matrix products and convolutions (mm, addmm, bmm, baddbmm, convolution
forward and backward, scaled-dot-product attention), 2 FLOPs per multiply-add; element-wise work
(normalisation, activations, the optimizer's update) is not counted. A convolution's backward
counts the input gradient and, only where a weight needs one, the weight gradient: with frozen
weights the backward of a convolution costs what its forward costs.

Counted work does not depend on the machine, its load or the clock, so two runs of the same
setting on the same images count the same (unlike measured time).
"""

from __future__ import annotations

from typing import Callable

COUNTER = "torch.utils.flop_counter.FlopCounterMode"
TERA = 1e12


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products and convolutions ``fn()`` runs (forward and, if ``fn`` calls
    it, backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
