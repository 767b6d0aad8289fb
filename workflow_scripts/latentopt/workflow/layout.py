"""Every output path of the pipeline, in one place (used by the rules and by the library).

results_dir/
  original_bsds500/{split}/{image}.png        preprocessed originals (evaluation reference)
  prepared/{split}/{image}.json               per-image preparation record (status, size, sha256)
  {arm}_dataset/per_image/{split}/{image}.json   per-image metrics + status   (arm = baseline or a loss)
  {arm}_dataset/per_image/{split}/{image}.pt     latents, loss history, decoded 8-bit image
  {arm}_dataset/pytorch/bsds500_{optimized_<arm>|baseline}.pt   the per-loss dataset
  {arm}_dataset/png/{split}/{image}.png        decoded images (8-bit, rounded)
  {arm}_dataset/manifest.json                  sha256 of the dataset's .pt and PNGs (written last)
  evaluation_results/...                       metrics, statistics, performance
  quality_gate/{loss}.json                     the quality gate's result per loss
  FULL_BSDS500_COMPARISON_REPORT.md            the report (figures in report_figures/)
  demo_model/demo_autoencoder.{pt,json}        the demo's own autoencoder (model.kind demo_trained)
  .checkpoints/{arm}/{split}/                  resumable in-progress state (removed when a job ends)
  logs/, benchmarks/                           per-job logs and Snakemake benchmarks
  .integrity/hash_cache.json                   checksums of verified outputs (latentopt.workflow.integrity)
  .latentopt.lock                              the driver running on this folder (latentopt.workflow.driverlock)
"""

from __future__ import annotations

from pathlib import Path

BASELINE = "baseline"


def original_png(results: str | Path, split: str, image_id: str) -> Path:
    return Path(results) / "original_bsds500" / split / f"{image_id}.png"


def prepared_record(results: str | Path, split: str, image_id: str) -> Path:
    return Path(results) / "prepared" / split / f"{image_id}.json"


def arm_dir(results: str | Path, arm: str) -> Path:
    return Path(results) / f"{arm}_dataset"


def per_image(results: str | Path, arm: str, split: str, image_id: str, ext: str) -> Path:
    return arm_dir(results, arm) / "per_image" / split / f"{image_id}.{ext}"


def dataset_file(results: str | Path, arm: str) -> Path:
    stem = "bsds500_baseline" if arm == BASELINE else f"bsds500_optimized_{arm}"
    return arm_dir(results, arm) / "pytorch" / f"{stem}.pt"


def dataset_png_dir(results: str | Path, arm: str) -> Path:
    return arm_dir(results, arm) / "png"


def demo_model_dir(results: str | Path) -> Path:
    return Path(results) / "demo_model"


def dataset_manifest(results: str | Path, arm: str) -> Path:
    return arm_dir(results, arm) / "manifest.json"


def checkpoint_dir(results: str | Path, arm: str, split: str) -> Path:
    return Path(results) / ".checkpoints" / arm / split


def evaluation_dir(results: str | Path) -> Path:
    return Path(results) / "evaluation_results"


def gate_file(results: str | Path, arm: str) -> Path:
    return Path(results) / "quality_gate" / f"{arm}.json"


def report_file(results: str | Path) -> Path:
    return Path(results) / "FULL_BSDS500_COMPARISON_REPORT.md"


def report_appendix_file(results: str | Path) -> Path:
    """The report's appendix (per-split results, significance matrices, definitions, provenance)."""
    return Path(results) / "FULL_BSDS500_COMPARISON_REPORT_APPENDIX.md"


def report_html_file(results: str | Path) -> Path:
    """The report and its appendix as one HTML page (what ``snakemake --report`` shows)."""
    return Path(results) / "FULL_BSDS500_COMPARISON_REPORT.html"
