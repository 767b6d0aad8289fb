"""bench/scale.py's arithmetic: the growth exponent and the per-stage sums of the benchmark files."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the bench package, as bench/benchmark.py does
from bench.scale import slope, stage_cpu  # noqa: E402


def test_slope_is_the_log_log_exponent():
    ns = [500, 2000, 8000]
    assert slope(ns, [3.0 * n for n in ns]) == pytest.approx(1.0)
    assert slope(ns, [7.0] * 3) == pytest.approx(0.0)
    assert slope(ns, [1e-6 * n ** 2 for n in ns]) == pytest.approx(2.0)
    assert slope([500], [1.0]) is None  # one size: no exponent
    assert slope(ns, [0.0, 0.0, 1.0]) is None  # stages absent at a size are not fitted on zeros


def test_stage_cpu_sums_the_jobs_of_each_stage(tmp_path):
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {"evaluate/baseline.tsv": 2.5, "evaluate/psnr.tsv": 1.5, "report.tsv": 4.0,
             "summarize_evaluation.tsv": 1.0, "test_hypotheses.tsv": 0.25, "prepare/all_000.tsv": 0.5}
    for rel, cpu in files.items():
        path = tmp_path / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + f"1.0\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    got = stage_cpu(tmp_path)
    assert got == {"evaluate": 4.0, "report": 4.0, "analyses": 1.25, "prepare": 0.5}
    assert all(math.isfinite(v) for v in got.values())
