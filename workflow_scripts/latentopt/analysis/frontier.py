"""The quality-vs-cost frontier of a sweep and the recommended setting per purpose.

Frontier
    Points are the sweep's arms with a finite mean gain (analysis.study_tests: oriented, larger is
    better) and their counted work per image (analysis.study_costs: TFLOP, None when not
    recorded). An arm is on the frontier (Pareto-optimal) when no other arm has cost <= and gain >=
    with at least one of the two strict. "Cheaper" is, in a study, less counted work
    (study_costs.cheaper_by_work): arms with identical counted work (three lr values at equal
    iterations) cost the same, so only the best gain among them is on the frontier, and without
    counted work no arm is cheaper than another. Measured time never ranks arms: it moves with
    the machine's load. Gains are means: the frontier says where the settings lie, the
    recommendation is what a test backs.

Recommendation (per purpose = per held-out metric)
    The candidate is the frontier arm with the largest mean gain (ties: the cheaper, then the
    name). It is recommended only when (a) its gain over the baseline has the verdict "better"
    and (b) its paired comparison with the runner-up (the arm with the next largest mean gain
    among all the sweep's points) has the verdict "better", the runner-up tests being one Holm
    family over the sweep's purposes (study_tests.family). Otherwise: "no setting shown better",
    with the reason. An arm off the frontier is never recommended; a purpose on an uncalibrated
    network is objectives.NOT_JUDGED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from latentopt.workflow.objectives import NOT_JUDGED

NONE_SHOWN = "no setting shown better"


def pareto_front(points: Mapping[str, tuple[float, float]], cheaper: Callable[[str, str], bool] | None = None) -> list[str]:
    """Names of the non-dominated (cost, gain) points: lower cost, higher gain, listed by cost
    (unknown costs last) then gain. ``cheaper(a, b)``: whether a costs less than b (default: its
    cost is known and lower)."""
    less = cheaper or (lambda a, b: _cost_key(points[a][0]) < _cost_key(points[b][0]))

    def dominates(a, b):
        return (less(a, b) and points[a][1] >= points[b][1]) or (not less(b, a) and points[a][1] > points[b][1])
    return sorted((b for b in points if not any(dominates(a, b) for a in points if a != b)), key=lambda a: (_cost_key(points[a][0]), points[a][1], a))


def _cost_key(cost: float | None) -> float:
    return float("inf") if cost is None else cost


def ranked(points: Mapping[str, tuple[float, float]], among=None) -> list[str]:
    """Arms by mean gain, largest first (ties: cheaper first, then name)."""
    names = [a for a in points if among is None or a in among]
    return sorted(names, key=lambda a: (-points[a][1], _cost_key(points[a][0]), a))


def candidate(points: Mapping[str, tuple[float, float]], cheaper: Callable[[str, str], bool] | None = None) -> tuple[str | None, str | None]:
    """(the frontier's best-gain arm, the runner-up among all points) or Nones."""
    front = pareto_front(points, cheaper)
    if not front:
        return None, None
    best = ranked(points, front)[0]
    rest = [a for a in ranked(points) if a != best]
    return best, (rest[0] if rest else None)


def decide(best: str | None, runner_up: str | None, vs_baseline: Mapping | None, vs_runner_up: Mapping | None, not_judged: bool) -> dict:
    """The recommendation entry of one purpose (module docstring)."""
    out = {"candidate": best, "runner_up": runner_up, "recommended": None}
    if not_judged:
        return {**out, "verdict": NOT_JUDGED, "reason": "the purpose's metric comes from an uncalibrated network"}
    if best is None:
        return {**out, "verdict": NONE_SHOWN, "reason": "no arm has both a gain and a compute cost"}
    if runner_up is None:
        return {**out, "verdict": NONE_SHOWN, "reason": "one setting only: nothing to compare it with"}
    base_v = (vs_baseline or {}).get("verdict")
    run_v = (vs_runner_up or {}).get("verdict")
    if base_v != "better":
        return {**out, "verdict": NONE_SHOWN, "reason": f"{best} vs the baseline: {base_v or 'no test'}"}
    if run_v != "better":
        return {**out, "verdict": NONE_SHOWN, "reason": f"{best} vs the runner-up {runner_up}: {run_v or 'no test'}"}
    return {**out, "verdict": "recommended", "recommended": best, "reason": f"{best} beats the baseline and the runner-up {runner_up}"}
