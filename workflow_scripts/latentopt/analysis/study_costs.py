"""The study's cost axis: counted work, not the machine's clock.

Counted work is the FLOPs an arm's iterations really ran, per image (performance_summary.json's
``datasets.<arm>.counted_work.tflop_per_image.mean``, counted once per job and multiplied by the
iterations each image ran): it does not move with the machine's load. It is the study's only
cost axis: the frontier, "cheaper" and every cost ratio use it. Two arms are ranked by cost
only when their counted work differs (by more than SAME_WORK_RTOL, float rounding); arms with
identical counted work cost the same. Measured device time (process CPU time on a CPU, the
device clock on a GPU; analysis.performance's batch costs) is kept beside it as context and
never ranks arms. Where counted work is not recorded, no arm is ranked by cost at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from latentopt.core.numbers import is_finite
from latentopt.analysis.statistics import n_too_small

SAME_WORK_RTOL = 1e-9
COUNTED = "counted work (TFLOP per image)"


def _dataset(perf: Mapping | None, arm: str) -> Mapping:
    return ((perf or {}).get("datasets") or {}).get(arm) or {}


def counted_tflop(perf: Mapping | None, arm: str) -> float | None:
    """Mean counted TFLOP per image of ``arm``, or None when not recorded."""
    work = _dataset(perf, arm).get("counted_work") or {}
    v = (work.get("tflop_per_image") or {}).get("mean")
    return float(v) if is_finite(v) else None


def device_time(perf: Mapping | None, arm: str) -> dict:
    """Measured compute per image over batches (context only): mean, 95 % t-interval, batches, clock."""
    bc = _dataset(perf, arm).get("batch_costs")
    if not bc:
        return {"mean": None, "ci95_low": None, "ci95_high": None, "n_batches": 0, "clock": [], "n_too_small": True}
    s = bc["compute_per_image_s"]
    return {"mean": s["mean"], "ci95_low": s["ci95_low"], "ci95_high": s["ci95_high"], "n_batches": bc["n_batches"], "clock": list(bc.get("clock") or []), "n_too_small": n_too_small(bc["n_batches"])}


def cost_entry(perf: Mapping | None, arm: str, plain: str = "baseline") -> dict:
    """One arm's cost: counted TFLOP per image, its ratio to the model's plain decode (``plain``,
    the baseline) and the measured device time as context."""
    work = _dataset(perf, arm).get("counted_work") or {}
    tflop, base = counted_tflop(perf, arm), counted_tflop(perf, plain)
    return {
        "tflop_per_image": tflop,
        "x_plain_decode": tflop / base if tflop is not None and base else None,
        "counter": work.get("counter"),
        "device_time": device_time(perf, arm),
    }


def same_work(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_WORK_RTOL * max(abs(a), abs(b))


def cheaper_by_work(tflop: Mapping[str, float | None]) -> Callable[[str, str], bool]:
    """cheaper(a, b): a's counted work is below b's (never for identical work or a missing count)."""
    def cheaper(a: str, b: str) -> bool:
        wa, wb = tflop.get(a), tflop.get(b)
        return wa is not None and wb is not None and wa < wb and not same_work(wa, wb)
    return cheaper


def cost_order(ca: Mapping, cb: Mapping) -> dict:
    """How two cost entries compare on counted work: "cheaper"/"dearer" (a against b), "same
    work", or "not counted"; with the ratio a / b when both are counted."""
    wa, wb = ca.get("tflop_per_image"), cb.get("tflop_per_image")
    if wa is None or wb is None:
        return {"order": "not counted", "ratio": None}
    if same_work(wa, wb):
        return {"order": "same work", "ratio": 1.0}
    return {"order": "cheaper" if wa < wb else "dearer", "ratio": wa / wb if wb else None}
