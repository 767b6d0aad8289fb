"""The study's verdicts: at most MAX_LINES answers, each backed by one test of the analysis.

Questions, in this order: which autoencoder (plain decodes, model against model), then per model
which method (matched pairs only, analysis.study_matching), then per model and sweep which
setting (the sweep's recommendation). Purposes are one metric per monotone family
(study_tests.finding_metrics: PSNR, MSE and MAE are one finding), calibrated ones only.

Each answer names its evidence: ``source``, the path of the test in study_analysis.json, whose
mean difference, CI, n and study-wide Holm p (``p_study``, over every test the study ran) the
line prints. An answer is "use X" only when that test's study-wide verdict is "better" (for a
sweep: the recommendation, which needs a win over the baseline and the runner-up); otherwise it
is "no setting shown better" with the reason, and the source is the closest candidate (the
smallest study-wide p). ``own_objective`` says when the evidence metric is the arm's objective.
Costs are counted work of the chosen arm and its multiple of the model's plain decode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from latentopt.analysis import study_matching as sm
from latentopt.analysis.frontier import NONE_SHOWN
from latentopt.analysis.study_tests import TOO_SMALL, finding_metrics
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.objectives import NOT_JUDGED

MAX_LINES = 5


def _get(a: Mapping, path):
    for k in path:
        a = a[k]
    return a


def _judged(tests: Mapping) -> list[str]:
    return finding_metrics([m for m, t in tests.items() if t.get("verdict") != NOT_JUDGED])


def _closest(candidates):
    """The (path, test) with the smallest study-wide p (ties: the order given)."""
    return min(candidates, key=lambda c: c[1].get("p_study", 1.0)) if candidates else None


def images_needed(m: int, alpha: float) -> int:
    """The fewest nonzero paired differences whose smallest attainable Wilcoxon p (2 / 2^n),
    times ``m`` tests, is below ``alpha``."""
    return int(math.floor(math.log2(2 * m / alpha))) + 1


def why_not(t: Mapping, alpha: float) -> str:
    v = t.get("verdict_study")
    if v == TOO_SMALL:
        if t.get("ci95_low") is None:
            return f"n = {t.get('n', 0)} is too small for a CI"
        return (f"n = {t.get('n', 0)} images cannot reach α over {t.get('m_study')} tests (smallest attainable corrected p {t.get('p_study_min'):.2g}; "
                f"≥ {images_needed(t['m_study'], alpha)} images with nonzero differences could)")
    if t.get("ci95_low") is not None and t["ci95_low"] <= 0 <= t["ci95_high"]:
        return "the CI spans 0"
    return "the corrected p is not below α"


def cost(analysis: Mapping, model: str, arm: str) -> dict:
    c = analysis["costs"][model].get(arm) or {}
    return {"model": model, "arm": arm, "tflop_per_image": c.get("tflop_per_image"), "x_plain_decode": c.get("x_plain_decode")}


def evidence(analysis: Mapping, path: list, own_objective: bool = False) -> dict:
    t = _get(analysis, path)
    return {"source": list(path), "metric": path[-1], "own_objective": own_objective, **{k: t.get(k) for k in ("mean_diff", "ci95_low", "ci95_high", "n", "p_study", "m_study", "verdict_study")}}


def autoencoder_line(analysis: Mapping) -> dict | None:
    rows = analysis["baseline_differences"]
    cands = [(["baseline_differences", i, "tests", m], r["tests"][m]) for i, r in enumerate(rows) for m in _judged(r["tests"])]
    shown = [c for c in cands if c[1].get("verdict_study") in ("better", "worse")]
    pick = _closest(shown) or _closest(cands)
    if pick is None:
        return None
    path, t = pick
    r = rows[path[1]]
    win, lose = (r["model_a"], r["model_b"]) if t["mean_diff"] > 0 else (r["model_b"], r["model_a"])
    c = cost(analysis, win, BASELINE)
    base = analysis["costs"][lose].get(BASELINE, {}).get("tflop_per_image")
    c["x_plain_decode"], c["reference"] = (c["tflop_per_image"] / base if c["tflop_per_image"] is not None and base else None), f"{lose}'s plain decode"
    out = {"question": "autoencoder", "about": f"{r['model_a']} vs {r['model_b']}, plain decodes", "comparison": f"{r['model_a']} − {r['model_b']}", "evidence": evidence(analysis, path), "cost": c}
    if pick in shown:
        return {**out, "shown": True, "use": win, "over": lose}
    return {**out, "shown": False, "use": None, "why": f"no autoencoder shown better on its plain decode: {why_not(t, analysis['metadata']['alpha'])}"}


def method_lines(analysis: Mapping) -> list[dict]:
    out = []
    for model, rows in analysis["methods"].items():
        if not rows:
            continue
        matched = [(i, r) for i, r in enumerate(rows) if r["matched"]]
        head = {"question": "method", "model": model}
        if not matched:
            names = "; ".join(f"{r['a']} vs {r['b']} {sm.confound_text(r['confounds'])}" for r in rows)
            out.append({**head, "shown": False, "use": None, "evidence": None, "cost": None, "about": model, "why": f"no matched pair of methods ({names})"})
            continue
        cands = [(["methods", model, i, "tests", m], r["tests"][m]) for i, r in matched for m in _judged(r["tests"])]
        shown = [c for c in cands if c[1].get("verdict_study") in ("better", "worse")]
        pick = _closest(shown) or _closest(cands)
        if pick is None:
            continue
        path, t = pick
        r = rows[path[2]]
        (wa, wm), (la, lm) = ((r["a"], r["method_a"]), (r["b"], r["method_b"])) if t["mean_diff"] > 0 else ((r["b"], r["method_b"]), (r["a"], r["method_a"]))
        line = {**head, "about": f"{model}, matched pair", "comparison": f"{r['a']} − {r['b']}", "evidence": evidence(analysis, path), "cost": cost(analysis, model, wa)}
        if pick in shown:
            out.append({**line, "shown": True, "use": f"{wm} ({wa})", "over": f"{lm} ({la})"})
        else:
            out.append({**line, "shown": False, "use": None, "why": f"no method shown better: {why_not(t, analysis['metadata']['alpha'])}"})
    return out


def sweep_lines(analysis: Mapping) -> list[dict]:
    out = []
    for model, sweeps in analysis["sweeps"].items():
        for base, s in sweeps.items():
            purposes = finding_metrics([m for m in [*s["objective"], *s["held_out"]] if s["recommendation"][m]["verdict"] != NOT_JUDGED])
            head = {"question": "settings", "model": model, "sweep": base, "about": f"{model}, sweep {base} ({', '.join(s['swept_keys'])})"}
            rec = [m for m in purposes if s["recommendation"][m]["verdict"] == "recommended"]
            tested = [(["sweeps", model, base, "vs_runner_up", m], s["vs_runner_up"][m]) for m in (rec or purposes) if m in s["vs_runner_up"]]
            pick = _closest(tested)
            if pick is None:
                m = purposes[0] if purposes else None
                why = s["recommendation"][m]["reason"] if m else "no calibrated purpose"
                out.append({**head, "shown": False, "use": None, "evidence": None, "cost": None, "why": f"{NONE_SHOWN} ({why})"})
                continue
            path, t = pick
            m = path[-1]
            r = s["recommendation"][m]
            line = {**head, "purpose": m, "comparison": f"{r['candidate']} − {r['runner_up']}", "evidence": evidence(analysis, path, m in s["objective"]), "cost": cost(analysis, model, r["candidate"])}
            if r["verdict"] == "recommended":
                out.append({**line, "shown": True, "use": r["candidate"], "over": r["runner_up"], "values": s["settings"][r["candidate"]]})
            else:
                out.append({**line, "shown": False, "use": None, "why": f"{NONE_SHOWN}: {r['reason']}" + (f" ({why_not(t, analysis['metadata']['alpha'])})" if "runner-up" in r["reason"] and r["reason"].endswith(("not shown", TOO_SMALL)) else "")})
    return out


def verdict_lines(analysis: Mapping) -> dict:
    """{"lines": at most MAX_LINES answers (module docstring), "left_off": how many more there were}."""
    lines = [x for x in [autoencoder_line(analysis) if len(analysis["costs"]) > 1 else None] if x] + method_lines(analysis) + sweep_lines(analysis)
    return {"lines": lines[:MAX_LINES], "left_off": max(0, len(lines) - MAX_LINES)}
