"""The summarize_all driver: evaluation of every dataset against the preprocessed originals, aggregated.

Per image (on the published 8-bit PNGs, float64 in [0,1]): PSNR, SSIM, MSE, MAE, LPIPS-alex and
LPIPS-vgg (definitions in metrics.py), and the visual-quality metrics GMSD, mean CIEDE2000 and the
Laplacian-variance sharpness ratio (visual_quality.py). Per dataset: FID and KID against the originals (fid.py),
overall and per split. Aggregation writes the seed's three JSON files:

  cross_evaluation_matrix.json  dataset x split x metric -> mean, std, median, 95% CI, n
                                (+ FID with its bootstrap CI, paired KID and standard KID)
  statistical_analysis.json     every pair of datasets, per metric and split: paired Wilcoxon and
                                t-test (Holm-corrected, with the smallest attainable p), effect
                                sizes, bootstrap CI of the mean difference; FID differences with
                                paired-bootstrap CIs; FID/KID direction agreement; Spearman
                                correlations of per-image improvements and time; success
                                criteria, each a test with a decision rule (RULES)
  performance_summary.json      per loss: images ok/failed (unreadable inputs counted apart, see
                                latentopt.analysis.input_failures), times, iterations, convergence, memory,
                                batch-level costs and noise-gated cost comparisons
Every bootstrap over images draws from the sorted (split, image id) order, so the same images
and seed give the same replicates in every file.
and per_image_metrics.csv with one row per (dataset, image).

Modules by concern: metric_names (names, directions, ranges), scoring (per-image table),
features (Inception feature tables), summaries (cross-evaluation matrix), pairwise (statistical
analysis), criteria (success criteria and their RULES), performance (costs and batches).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from latentopt.workflow.analysis_settings import SummarySettings
from latentopt.analysis.features import load_features
from latentopt.analysis.pairwise import statistical_analysis
from latentopt.analysis.performance import performance_summary
from latentopt.analysis.summaries import cross_evaluation
from latentopt.core.fileio import atomic_path, write_json


def summarize_all(settings: SummarySettings, tables: list[str | Path], feature_paths: list[str | Path], outputs: dict) -> None:
    """The summarize_evaluation job: write the three JSON files and the per-image CSV (``outputs``
    keys: cross, stats, performance, table)."""
    table = pd.concat([pd.read_csv(p) for p in tables], ignore_index=True)
    arms = [Path(p).stem for p in tables]
    features, calibrated = load_features(feature_paths)
    calibrated = {"inception": all(calibrated.values()) if calibrated else None,
                  "lpips": settings.lpips_calibrated}
    synthetic = settings.synthetic.parts()  # once per job: it reads the demo model's training summary
    cross = cross_evaluation(settings, table, features, arms, calibrated, synthetic=synthetic)
    write_json(outputs["cross"], cross)
    write_json(outputs["stats"], statistical_analysis(settings, table, features, arms, cross, calibrated, synthetic=synthetic))
    write_json(outputs["performance"], performance_summary(settings, table, arms, synthetic=synthetic))
    with atomic_path(outputs["table"]) as tmp:
        table.to_csv(tmp, index=False)
