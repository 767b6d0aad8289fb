"""Faults injected into a finished run (issue 11), shared by tests/test_integrity_pipeline.py and
bench/drills/fault_drill.py. Each takes the run's results folder and data root, damages them the way users
and machines do, and returns what it did (a sentence for the record)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

AWKWARD_SUFFIX = "{1} 100%"  # braces (Snakemake wildcards), a space, a percent sign


def _images(results: Path, arm: str, split: str) -> list[Path]:
    return sorted((results / f"{arm}_dataset" / "per_image" / split).glob("*.json"))


def _first_ok(results: Path, arm: str, split: str) -> str:
    return next(p.stem for p in _images(results, arm, split) if json.loads(p.read_text())["status"] == "ok")


def _planned_sources(results: Path, data: Path, split: str) -> list[Path]:
    """The sources of a split's planned images (named by their preparation records; the run may be
    a copy whose records name the original data), in plan order."""
    return [data / split / Path(json.loads(p.read_text())["source"]).name for p in sorted((results / "prepared" / split).glob("*.json"))]


def truncate_pt(results: Path, data: Path) -> str:
    image = _first_ok(results, "psnr", "train")
    pt = results / "psnr_dataset" / "per_image" / "train" / f"{image}.pt"
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    return f"truncated {pt.relative_to(results)} to half its size"


def bit_flip_pt(results: Path, data: Path) -> str:
    image = _first_ok(results, "baseline", "test")
    pt = results / "baseline_dataset" / "per_image" / "test" / f"{image}.pt"
    raw = bytearray(pt.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    pt.write_bytes(bytes(raw))
    return f"flipped one bit in the middle of {pt.relative_to(results)}"


def delete_dataset_png(results: Path, data: Path, arm: str = "psnr") -> str:
    png = next(iter(sorted((results / f"{arm}_dataset" / "png").rglob("*.png"))))
    png.unlink()
    return f"deleted {png.relative_to(results)}"


def rewrite_source_keep_mtime(results: Path, data: Path) -> str:
    """New content (bytes after the JPEG end marker: same pixels), modification time restored."""
    src = _planned_sources(results, data, "test")[-1]
    st = src.stat()
    with open(src, "ab") as fh:
        fh.write(b"restored from a backup")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    return f"rewrote {src.relative_to(data)} (same pixels, new bytes) and restored its mtime"


def awkward_name(results: Path, data: Path) -> str:
    """Rename the second train image so its name holds '{', '}', ' ' and '%' (same sort position)."""
    src = _planned_sources(results, data, "train")[1]
    dst = src.with_name(f"{src.stem}{AWKWARD_SUFFIX}{src.suffix}")
    src.rename(dst)
    return f"renamed {src.relative_to(data)} to {dst.relative_to(data)!s}"


def broken_link(results: Path, data: Path) -> str:
    """Replace the unreadable val image by a dangling symbolic link (an entry that cannot be followed)."""
    target = _planned_sources(results, data, "val")[-1]
    target.unlink()
    target.symlink_to("moved_away.jpg")  # relative, to a file that is not there
    return f"replaced {target.relative_to(data)} by a broken symbolic link"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete_deliverables(results: Path, data: Path) -> str:
    """Issue 16: deliverables whose consumers are up to date (before: never made again)."""
    gate = "quality_gate/ssim.json"
    if not (results / gate).exists():  # a run without ssim: another loss's verdict than psnr's
        gate = next(str(p.relative_to(results)) for p in sorted((results / "quality_gate").glob("*.json")) if p.name != "psnr.json")
    rels = ["evaluation_results/cross_evaluation_matrix.json", "evaluation_results/per_image/psnr.csv",
            "psnr_dataset/manifest.json", "prepared/val/camera.json", gate]
    for rel in rels:
        (results / rel).unlink()
    return "deleted " + ", ".join(rels)


def truncate_gate_verdict(results: Path, data: Path) -> str:
    _truncate(results / "quality_gate" / "psnr.json")
    return "truncated quality_gate/psnr.json to half its size"


def truncate_demo_model(results: Path, data: Path) -> str:
    _truncate(results / "demo_model" / "demo_autoencoder.pt")
    return "truncated demo_model/demo_autoencoder.pt to half its size"


def truncate_evaluation(results: Path, data: Path) -> str:
    _truncate(results / "evaluation_results" / "statistical_analysis.json")
    _truncate(results / "evaluation_results" / "per_image" / "lpips.csv")
    return "truncated evaluation_results/statistical_analysis.json and per_image/lpips.csv to half their size"


def wrong_shaped_hash_cache(results: Path, data: Path) -> str:
    (results / ".integrity" / "hash_cache.json").write_text('{"files": [1, 2]}')
    return "replaced .integrity/hash_cache.json by valid JSON of the wrong shape"


FAULTS = {
    "truncated per-image .pt": truncate_pt,
    "bit-flipped per-image .pt": bit_flip_pt,
    "deleted PNG of a dataset": delete_dataset_png,
    "source rewritten, old mtime restored": rewrite_source_keep_mtime,
    "data file with an awkward name": awkward_name,
    "broken link in a split folder": broken_link,
    # issue 16
    "deleted deliverables (evaluation JSON, per-image table, manifest, preparation record, gate verdict)": delete_deliverables,
    "truncated quality gate verdict": truncate_gate_verdict,
    "truncated demo autoencoder": truncate_demo_model,
    "truncated evaluation JSON and CSV": truncate_evaluation,
    "wrong-shaped hash cache": wrong_shaped_hash_cache,
}


# -- what a rerun did ----------------------------------------------------------------------------
SNAPSHOT = ("*_dataset/per_image/*/*.json", "prepared/*/*.json", "*_dataset/manifest.json")
# every per-image file (optimization .json and .pt, preparation record and reference PNG) and every
# manifest (chunk manifests: prepared/chunks/*.json, <arm>_dataset/chunks/*.json; dataset manifests)
SNAPSHOT_ALL = ("*_dataset/per_image/*/*.json", "*_dataset/per_image/*/*.pt", "prepared/*/*.json",
                "original_bsds500/*/*.png", "*_dataset/chunks/*.json", "*_dataset/manifest.json")


def snapshot(results: Path, patterns: tuple[str, ...] = SNAPSHOT) -> dict[str, tuple[int, str]]:
    """Per produced file: (mtime_ns, size) for per-image records, prepared records, manifests (of
    every model's tree in a study, ``<model>/...``). ``prepared/*/*.json`` also matches the
    preparation jobs' chunk manifests (prepared/chunks/); :data:`SNAPSHOT_ALL` adds the .pt files,
    reference PNGs and the optimization jobs' chunk manifests; :func:`is_manifest` tells manifests
    from per-image files."""
    files = [f for pattern in patterns for level in ("", "*/") for f in results.glob(level + pattern)]
    return {str(p.relative_to(results)): (p.stat().st_mtime_ns, p.stat().st_size) for p in files}


def is_manifest(key: str) -> bool:
    """A snapshot key naming a manifest (a chunk's or a dataset's), not a per-image file."""
    return "/chunks/" in f"/{key}" or key.endswith("_dataset/manifest.json")


def rewritten(before: dict, after: dict) -> list[str]:
    """Files written by the rerun (new or changed), sorted."""
    return sorted(k for k in after if before.get(k) != after[k])


def lost(before: dict, after: dict) -> list[str]:
    return sorted(set(before) - set(after))


def metric_rows(results: Path) -> dict[tuple, dict]:
    """per_image_metrics.csv: (dataset, split, image) -> metric values (timings excluded)."""
    keep = ("psnr", "ssim", "ms_ssim", "lpips_alex", "lpips_vgg", "initial_psnr", "iterations", "status")
    with open(results / "evaluation_results" / "per_image_metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return {(r["dataset"], r["split"], r["image_id"].replace("%7B1%7D 100%25", "")): {k: _number(r.get(k)) for k in keep if k in r} for r in rows}


def _number(text):
    """A CSV cell as a number when it is one: '8' and '8.0' are the same iteration count (pandas
    writes an integer column as floats once one image failed)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a finished run's folder (times kept, links kept as links)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
