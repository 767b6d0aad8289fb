"""bench/evaluation.py's helpers: the pair groups it parses, the synthetic arm it writes (the
per-image table reads it) and how it compares a batched table with batch 1's."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench package, as bench/benchmark.py does
from bench.evaluation import parse_pairs, table_differences, write_pairs  # noqa: E402


def test_parse_pairs():
    assert parse_pairs("12:320x480") == (12, 320, 480)
    assert parse_pairs("3:64X96") == (3, 64, 96)


def test_written_pairs_are_an_arm_the_table_reads_in_plan_order(tmp_path):
    from latentopt.analysis.scoring import per_image_table
    from latentopt.data.images import read_rgb
    from latentopt.workflow import layout

    groups = [(3, 32, 40), (2, 40, 32)]
    results, records = write_pairs(tmp_path, groups, seed=1)
    assert write_pairs(tmp_path, groups, seed=1) == (results, records)  # written once, found again
    table = per_image_table(records, results, {})
    assert table["image_id"].tolist() == [r.stem for r in records] and (table["status"] == "ok").all()
    counts = {}
    for r in records:
        shape = read_rgb(layout.original_png(results, "test", r.stem)).shape[:2]
        counts[shape] = counts.get(shape, 0) + 1
    assert counts == {(h, w): n for n, h, w in groups}


def test_table_differences(tmp_path):
    rows = pd.DataFrame({"split": ["a", "a"], "image_id": ["x", "y"], "status": ["ok", "ok"],
                         "psnr": [30.0, np.inf], "lpips_alex": [0.5, 0.25]})
    ref, same, other, moved = (tmp_path / f"{n}.csv" for n in ("ref", "same", "other", "moved"))
    rows.to_csv(ref, index=False)
    rows.to_csv(same, index=False)
    changed = rows.copy()
    changed.loc[1, "lpips_alex"] *= 1 + 1e-6
    changed.to_csv(other, index=False)
    rows.iloc[::-1].to_csv(moved, index=False)
    assert table_differences(ref, same) == {k: {"max_abs": 0.0, "max_rel": 0.0} for k in ("psnr", "lpips_alex")}
    d = table_differences(ref, other)
    assert d["lpips_alex"]["max_rel"] == pytest.approx(1e-6) and d["psnr"]["max_abs"] == 0.0
    with pytest.raises(RuntimeError, match="rows"):
        table_differences(ref, moved)
