"""The quality gate's section: one row per loss from ``quality_gate/<loss>.json`` (see gate.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from latentopt.core.fileio import read_json
from latentopt.optimize.gate import gate_table
from latentopt.report.formatting import table


def load_gates(paths: Sequence[str | Path]) -> list[dict]:
    return [read_json(p) for p in paths]


def gate_section(gates: Sequence[Mapping]) -> dict | None:
    """The gate table (None when the run had no gate)."""
    if not gates:
        return None
    t = gate_table(gates)
    return table(t["header"], t["rows"], ["l", "l", "r", "r", "r", "r", "l", "l"])
