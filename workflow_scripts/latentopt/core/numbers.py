"""The one test of a usable number, shared by the analysis and the report (pure Python)."""

from __future__ import annotations

import math
from typing import Any


def is_finite(v: Any) -> bool:
    """``v`` is a real number (an int or a float, numpy's float64 included; not a bool) that is
    neither NaN nor infinite: what a table can show and a decision can rest on."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
