"""Images that could not be read at all, kept apart from images whose optimization failed.

An entry of a split folder that looks like an image but cannot be opened or decoded (broken or
looping symbolic link, no permission, truncated or corrupt file) fails at preparation: every arm's
per-image record has status "failed" and ``failure_kind: "input"``; failures after preparation have
``failure_kind: "optimization"``. Success rates are computed on the images that could be read:
an unreadable input says nothing about the optimization.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

INPUT, OPTIMIZATION = "input", "optimization"
PREPARATION_PREFIX = "preparation failed"


def failure_kind(record: Mapping) -> str | None:
    """'input', 'optimization' or None (succeeded); records written before failure_kind existed
    are classified by their reason."""
    if record.get("status") == "ok":
        return None
    kind = record.get("failure_kind")
    if isinstance(kind, str) and kind:
        return kind
    reason = record.get("reason")
    return INPUT if isinstance(reason, str) and reason.startswith(PREPARATION_PREFIX) else OPTIMIZATION


def readable(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of a per-image table whose image could be read (what success rates count)."""
    if "failure_kind" not in rows:
        return rows
    return rows[rows["failure_kind"] != INPUT]


def summary(rows: pd.DataFrame) -> dict:
    """Counts for performance_summary.json: readable images, input and optimization failures."""
    kinds = rows["failure_kind"] if "failure_kind" in rows else pd.Series([None] * len(rows), index=rows.index)
    unread = rows[kinds == INPUT]
    return {
        "readable_images": int(len(rows) - len(unread)),
        "input_failures": int(len(unread)),
        "optimization_failures": int(((rows["status"] != "ok") & (kinds != INPUT)).sum()),
        "input_failed_images": [{"split": s, "image_id": i, "reason": r} for s, i, r in zip(unread["split"], unread["image_id"], unread["reason"])],
    }


def input_failures_table(perf: Mapping, datasets: Sequence[str]) -> dict | None:
    """The report's table of unreadable inputs (one row per image: they fail in every dataset),
    as {"header", "rows"}; None when every image could be read."""
    seen: dict[tuple, str] = {}
    for d in datasets:
        for f in ((perf.get("datasets") or {}).get(d) or {}).get("input_failed_images") or []:
            seen.setdefault((f.get("split"), f.get("image_id")), f.get("reason") or "(no reason recorded)")
    if not seen:
        return None
    return {"header": ["split", "image", "why it could not be read"], "rows": [[s, i, r] for (s, i), r in sorted(seen.items())]}
