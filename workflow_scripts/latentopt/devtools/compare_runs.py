"""Are two finished runs the same but for timings? For a change that must not change results.

    PYTHONPATH=workflow_scripts python -m latentopt.devtools.compare_runs OLD_RESULTS NEW_RESULTS

Compares, cell by cell and as written (no tolerance): evaluation_results/per_image_metrics.csv
without its timing columns; every .settings/<arm>.json; every per-image record
(<arm>_dataset/per_image/<split>/<id>.json) without its timing fields, with the demo model's
training time ("in 46 s") masked wherever a text names it (the .pt files are compared through the
records' pt_sha256). Prints the counts compared and every
difference; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

# what measures time, memory or the machine, not the result; weight_files: the checksum of the
# demo autoencoder's file, which holds its training time (its tensors' checksum, weights_sha256,
# and the fingerprint built from it are compared)
TIMING_COLUMNS = {"time_s", "optimization_time_s", "peak_memory_mb", "batch_compute_s", "batch_wall_s"}
TIMING_FIELDS = {"finished_at", "host", "time_s", "optimization_time_s", "peak_memory_mb", "compute_s", "wall_s",
                 "train_time_s", "train_cpu_time_s", "weight_files"}
TRAINING_TIME = re.compile(r" in \d+(\.\d+)? s\b")


def _untimed(value):
    """``value`` without timing fields (at any depth) and with training times masked in texts."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    if isinstance(value, str):
        return TRAINING_TIME.sub(" in <t> s", value)
    return value


def _csv_rows(path: Path) -> tuple[list[str], dict[tuple, dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = {(r["dataset"], r["split"], r["image_id"]): r for r in reader}
        return list(reader.fieldnames or []), rows


def compare_metrics(old: Path, new: Path) -> tuple[int, list[str]]:
    """(cells compared, differences) of the two per_image_metrics.csv, timing columns dropped."""
    name = Path("evaluation_results") / "per_image_metrics.csv"
    old_cols, old_rows = _csv_rows(old / name)
    new_cols, new_rows = _csv_rows(new / name)
    problems = []
    if old_cols != new_cols:
        problems.append(f"{name}: columns differ: {old_cols} vs {new_cols}")
    if set(old_rows) != set(new_rows):
        problems.append(f"{name}: rows differ: {sorted(set(old_rows) ^ set(new_rows))}")
    cells = 0
    for key in sorted(set(old_rows) & set(new_rows)):
        for col in old_cols:
            if col in TIMING_COLUMNS:
                continue
            cells += 1
            if old_rows[key][col] != new_rows[key].get(col):
                problems.append(f"{name} {key} {col}: {old_rows[key][col]!r} vs {new_rows[key].get(col)!r}")
    return cells, problems


def compare_json(old: Path, new: Path, pattern: str, untimed: bool) -> tuple[int, list[str]]:
    """(files compared, differences) of the JSON files under both runs matching ``pattern``."""
    old_files = {p.relative_to(old) for p in old.glob(pattern)}
    new_files = {p.relative_to(new) for p in new.glob(pattern)}
    problems = [f"{p}: only in one run" for p in sorted(old_files ^ new_files)]
    for rel in sorted(old_files & new_files):
        a, b = (json.loads((root / rel).read_text()) for root in (old, new))
        if untimed:
            a, b = _untimed(a), _untimed(b)
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) if isinstance(a, dict) else []
            problems.append(f"{rel}: differs in {keys}")
    return len(old_files & new_files), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    cells, problems = compare_metrics(args.old, args.new)
    n_settings, settings_problems = compare_json(args.old, args.new, ".settings/*.json", untimed=False)
    n_records, record_problems = compare_json(args.old, args.new, "*_dataset/per_image/*/*.json", untimed=True)
    problems += settings_problems + record_problems
    print(f"per_image_metrics.csv: {cells} cells compared (timing columns dropped); "
          f".settings: {n_settings} files; per-image records: {n_records} files (timing fields dropped); "
          f"{len(problems)} differences")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
