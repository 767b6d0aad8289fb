"""Every output path of the pipeline, in one place (used by the rules and by the library).

results_dir/
  original_bsds500/{split}/{image}.png        preprocessed originals (evaluation reference)
  prepared/{split}/{image}.json               per-image preparation record (status, size, sha256)
  prepared/chunks/{chunk}.json                 a preparation job's manifest: its records and PNGs, checksummed
  {arm}_dataset/per_image/{split}/{image}.json   per-image metrics + status   (arm = baseline or a loss;
                                                 a sweep's arms are named psnr-lr0.1-it50: [a-z0-9_.-])
  {arm}_dataset/per_image/{split}/{image}.pt     latents, loss history, decoded 8-bit image
  {arm}_dataset/chunks/{chunk}.json            an optimization job's manifest: its images' .json/.pt, checksummed
                                               (what Snakemake tracks: latentopt.workflow.chunks)
  {arm}_dataset/pytorch/bsds500_{optimized_<arm>|baseline}.pt   the per-loss dataset
  {arm}_dataset/png/{split}/{image}.png        decoded images (8-bit, rounded)
  {arm}_dataset/manifest.json                  sha256 of the dataset's .pt and PNGs (written last)
  evaluation_results/...                       metrics, statistics, performance
  quality_gate/{loss}.json                     the quality gate's result per loss
  FULL_BSDS500_COMPARISON_REPORT.md            the report (figures in report_figures/)
  demo_model/demo_autoencoder.{pt,json}        the demo's own autoencoder (model.kind demo_trained)
  .checkpoints/{arm}/{split}/                  the optimizer state of running batches (resumable)
  logs/, benchmarks/                           per-job logs and Snakemake benchmarks
  .integrity/hash_cache.json                   checksums of verified outputs (latentopt.workflow.integrity)
  .integrity/quarantine/<timestamp>/...        outputs that failed verification, moved aside by a real run before its first job
  .<name>.sha256 beside every output           its writer's checksum record (latentopt.core.fileio)
  .gate/{loss}.done                            the gate has run (what the loss's other jobs wait on)
  .settings/{arm}.json                         the settings every result of an arm depends on (see rules/optimize.smk)
  .latentopt.lock                              the driver running on this folder (latentopt.workflow.driverlock)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

BASELINE = "baseline"


def one_of(names) -> str:
    """A regex matching exactly one of ``names`` (Snakemake's wildcard constraints): each name
    escaped, since the arms of a sweep hold '.' (psnr-lr0.1)."""
    return "|".join(re.escape(str(n)) for n in names)


def portable(obj, results):
    """``obj`` (JSON-like) with every path under the results folder ``results`` written relative to
    it, as ``<results_dir>/...``: a copied or moved folder keeps its settings and fingerprints."""
    if isinstance(obj, str) and results and (obj == results or obj.startswith(str(results).rstrip("/") + "/")):
        return "<results_dir>" + obj[len(str(results).rstrip("/")):]
    if isinstance(obj, dict):
        return {k: portable(v, results) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable(v, results) for v in obj]
    return obj


def original_png(results: str | Path, split: str, image_id: str) -> Path:
    return Path(results) / "original_bsds500" / split / f"{image_id}.png"


def prepared_record(results: str | Path, split: str, image_id: str) -> Path:
    return Path(results) / "prepared" / split / f"{image_id}.json"


def arm_dir(results: str | Path, arm: str) -> Path:
    return Path(results) / f"{arm}_dataset"


def per_image(results: str | Path, arm: str, split: str, image_id: str, ext: str) -> Path:
    return arm_dir(results, arm) / "per_image" / split / f"{image_id}.{ext}"


def prepared_manifest(results: str | Path, chunk: str) -> Path:
    """The manifest of one preparation job (latentopt.workflow.chunks): its declared output."""
    return Path(results) / "prepared" / "chunks" / f"{chunk}.json"


def chunk_manifest(results: str | Path, arm: str, chunk: str) -> Path:
    """The manifest of one optimization job (latentopt.workflow.chunks): its declared output."""
    return arm_dir(results, arm) / "chunks" / f"{chunk}.json"


def image_outputs(results: str | Path, arm: str, split: str, image_ids) -> dict[str, list[str]]:
    """The per-image files an optimization job writes for ``image_ids``: {'json': [...], 'pt': [...]}."""
    return {ext: [str(per_image(results, arm, split, i, ext)) for i in image_ids] for ext in ("json", "pt")}


def is_chunk_manifest(path: str | Path) -> bool:
    """Whether ``path`` is an optimization job's manifest (:func:`chunk_manifest`)."""
    path = Path(path)
    return path.parent.name == "chunks" and path.parent.parent.name.endswith("_dataset")


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


def gate_done(results: str | Path, arm: str) -> Path:
    """Written by the gate job after its verdict: what the loss's other jobs wait on (when the gate
    runs again, they run again and restore their finished images: rules/common.smk gate_input)."""
    return Path(results) / ".gate" / f"{arm}.done"


def report_file(results: str | Path) -> Path:
    return Path(results) / "FULL_BSDS500_COMPARISON_REPORT.md"


def report_appendix_file(results: str | Path) -> Path:
    """The report's appendix (per-split results, significance matrices, definitions, provenance)."""
    return Path(results) / "FULL_BSDS500_COMPARISON_REPORT_APPENDIX.md"


def report_html_file(results: str | Path) -> Path:
    """The report and its appendix as one HTML page (what ``snakemake --report`` shows)."""
    return Path(results) / "FULL_BSDS500_COMPARISON_REPORT.html"


def explorer_file(results: str | Path) -> Path:
    """The per-image explorer page (latentopt.report.explorer), next to the PNG trees it shows."""
    return Path(results) / "IMAGE_EXPLORER.html"


def report_landing_file(results: str | Path) -> Path:
    """The landing page of ``snakemake --report`` for this run (latentopt.report.landing)."""
    return Path(results) / "snakemake_report_landing.rst"


def live_status_file(results: str | Path) -> Path:
    """The live status of a run (latentopt.workflow.live): JSON, rewritten while the run runs."""
    return Path(results) / "live" / "status.json"


def live_page_file(results: str | Path) -> Path:
    """The self-refreshing page of the live status (works from ``file://``)."""
    return Path(results) / "live" / "progress.html"


def arm_settings_file(results: str | Path, arm: str) -> Path:
    return Path(results) / ".settings" / f"{arm}.json"


def features_file(results: str | Path, name: str) -> Path:
    return evaluation_dir(results) / "features" / f"{name}.npz"


def per_arm_table(results: str | Path, arm: str) -> Path:
    return evaluation_dir(results) / "per_image" / f"{arm}.csv"


def figures_dir(results: str | Path) -> Path:
    return Path(results) / "report_figures"


# The files of evaluation_results/ that summarize_evaluation, analyze_categories and test_hypotheses
# write, by what they hold.
EVALUATION_FILES = {
    "cross": "cross_evaluation_matrix.json",
    "stats": "statistical_analysis.json",
    "performance": "performance_summary.json",
    "categories": "category_analysis.json",
    "hypotheses": "hypothesis_analysis.json",
    "table": "per_image_metrics.csv",
    "categories_table": "image_categories.csv",
}
EVALUATION_JSON = tuple(name for name in EVALUATION_FILES.values() if name.endswith(".json"))
EVALUATION_CSV = tuple(name for name in EVALUATION_FILES.values() if name.endswith(".csv"))


def evaluation_file(results: str | Path, what: str) -> Path:
    """One file of evaluation_results/ (``what``: a key of EVALUATION_FILES)."""
    return evaluation_dir(results) / EVALUATION_FILES[what]

# -- What every output kind is, and how it is verified -------------------------------------------
# One declaration, read twice: the Snakefile's `rule all` asks for every declared output (so a
# deleted one is made again), and latentopt.workflow.integrity verifies each by its `verify`
# (so a new kind cannot be added without saying how it is checked). Verifications:
VERIFY = {  # every kind is also compared with its writer's checksum record (latentopt.core.fileio) where it has one
    "settings": "the writer's record; the settings it records equal the arm's settings of the config now (else it is outdated)",
    "prepared": "the writer's record; every record and reference PNG it lists by the checksum its writer recorded (by size "
                "and mtime, hashed where they changed); every source by the sha256 read when it was prepared (hashed "
                "where its size, mtime or ctime changed since); the preprocessing equals the config's",
    "chunk": "the writer's record; every per-image .json and .pt it lists by the checksum its writer recorded (by size and "
             "mtime, hashed where they changed)",
    "manifest": "the writer's record; the dataset .pt and every PNG of its tree by the sha256 the dataset builder recorded, no PNG extra",
    "json": "the writer's record; without one, parses as JSON",
    "csv": "the writer's record; without one, parses as CSV: a header, no ragged row, a complete last line",
    "zip": "the writer's record; without one, a zip archive (torch .pt, numpy .npz) whose directory and member CRCs read back, torch-free",
    "png_dir": "every PNG of the folder by its writer's record; without one, its signature and an IEND chunk",
    "text": "the writer's record; without one, UTF-8 text, not empty",
}


@dataclass(frozen=True)
class Output:
    """A declared output of one job. ``companions``: files written with it that are verified through
    it and moved to quarantine with it (a record's PNG or .pt, a dataset's .pt)."""

    kind: str
    path: Path
    verify: str
    companions: tuple[Path, ...] = field(default=())

    def __post_init__(self):
        if self.verify not in VERIFY:
            raise ValueError(f"output kind {self.kind}: unknown verification {self.verify!r}")


def declared_outputs(results: str | Path, chunks, arms: list[str], gate_arms: list[str], fid: bool,
                     demo_model: tuple[Path, Path] | None = None) -> list[Output]:
    """Every deliverable of a run, in the order jobs make them. ``chunks``: the planned jobs' chunks
    (with .name; latentopt.workflow.plan), whose manifests stand for their per-image files; ``gate_arms``: the losses that have a quality gate;
    ``demo_model``: the demo autoencoder's (weights, summary) when the run trains it."""
    results = Path(results)
    out = []
    if demo_model:
        weights, summary = demo_model
        out += [Output("demo model weights", Path(weights), "zip", (Path(summary),)),
                Output("demo model summary", Path(summary), "json")]
    out += [Output("arm settings", arm_settings_file(results, arm), "settings") for arm in arms]
    out += [Output("prepared chunk", prepared_manifest(results, c.name), "prepared") for c in chunks]
    for arm in arms:
        out += [Output("optimized chunk", chunk_manifest(results, arm, c.name), "chunk") for c in chunks]
    out += [Output("quality gate verdict", gate_file(results, arm), "json") for arm in gate_arms]
    out += [Output("quality gate done", gate_done(results, arm), "text") for arm in gate_arms]
    out += [Output("dataset manifest", dataset_manifest(results, arm), "manifest", (dataset_file(results, arm),))
            for arm in arms]
    out += [Output("per-image table", per_arm_table(results, arm), "csv") for arm in arms]
    if fid:
        out += [Output("inception features", features_file(results, name), "zip") for name in ("original", *arms)]
    ev = evaluation_dir(results)
    out += [Output("evaluation result", ev / name, "json") for name in EVALUATION_JSON]
    out += [Output("evaluation table", ev / name, "csv") for name in EVALUATION_CSV]
    out += [Output("report figures", figures_dir(results), "png_dir"), Output("report", report_file(results), "text"),
            Output("report appendix", report_appendix_file(results), "text"),
            Output("HTML report", report_html_file(results), "text"),
            Output("image explorer", explorer_file(results), "text"),
            Output("Snakemake report landing page", report_landing_file(results), "text")]
    return out


def log_dir(results: str | Path, rule: str) -> Path:
    """The logs of a rule's jobs: logs/<rule>/."""
    return Path(results) / "logs" / rule


def log_file(results: str | Path, rule: str, name: str | None = None) -> Path:
    """A job's log: logs/<rule>/<name>.log, or logs/<rule>.log for a rule with one job."""
    return Path(results) / "logs" / f"{rule}.log" if name is None else log_dir(results, rule) / f"{name}.log"


def benchmark_file(results: str | Path, rule: str, name: str | None = None) -> Path:
    """A job's Snakemake benchmark: benchmarks/<rule>/<name>.tsv, or benchmarks/<rule>.tsv."""
    return Path(results) / "benchmarks" / (f"{rule}.tsv" if name is None else f"{rule}/{name}.tsv")
