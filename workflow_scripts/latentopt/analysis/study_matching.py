"""Which arms a study may compare for one factor: matched comparisons only.

An arm's *settings* are what produced its numbers: its validated ``losses.<arm>`` block (loss
spec, method, lr, iterations, schedule and warm-up, stopping rule, Adam's betas/eps, retry)
and the run's batch size, less what changes no result (NO_RESULT_KEYS; a sweep's own record;
the warm-up fraction when the schedule is constant, which reads none). Settings are flattened
to dotted keys (``stopping.rule``) and two arms differ in the keys whose values differ.

* a method comparison: two arms whose settings differ in ``method`` and nothing else;
* a sweep verdict: two arms of one sweep whose settings differ only in the swept keys;
* a model comparison: the same arm (or the plain decode) of two models with the same settings.

Otherwise the comparison is not drawn; the keys that differ besides the factor (the
*confounds*) are recorded so that the report names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

NO_RESULT_KEYS = ("checkpoint_interval",)  # how often a running batch is saved: no result depends on it
DROPPED_KEYS = ("sweep", "models", *NO_RESULT_KEYS)


def arm_settings(block: Mapping, batch_size: int) -> dict:
    """The settings record of one arm (module docstring) from its validated config block."""
    out = {k: v for k, v in block.items() if k not in DROPPED_KEYS}
    if out.get("schedule") == "constant":
        out.pop("warmup_fraction", None)
    out["batch_size"] = int(batch_size)
    return out


def flatten(settings: Mapping, prefix: str = "") -> dict:
    """{dotted key: value}; lists become tuples so that values compare as wholes."""
    out = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def differing_keys(a: Mapping | None, b: Mapping | None) -> list[str] | None:
    """The dotted keys whose values differ between two settings records (sorted); None when
    either record is missing (then nothing is known to match)."""
    if a is None or b is None:
        return None
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, _MISSING) != fb.get(k, _MISSING))


def confounds(a: Mapping | None, b: Mapping | None, factor: Iterable[str]) -> list[str] | None:
    """The keys that differ besides ``factor`` (dotted keys, or their top-level names:
    ``loss`` covers ``loss.name``); [] = matched; None = a settings record is missing."""
    diff = differing_keys(a, b)
    if diff is None:
        return None
    factor = set(factor)
    return [k for k in diff if k not in factor and k.split(".")[0] not in factor]


def matched(a: Mapping | None, b: Mapping | None, factor: Iterable[str]) -> bool:
    return confounds(a, b, factor) == []


def confound_text(keys: list[str] | None) -> str:
    if keys is None:
        return "settings not recorded"
    return "differ also in " + ", ".join(keys)


_MISSING = object()
