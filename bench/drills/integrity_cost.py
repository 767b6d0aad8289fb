"""What verification before planning costs (issue 11), on the real BSDS500 JPEGs.

    python bench/drills/integrity_cost.py [BSR_ROOT] [--arms 4] [--pt-kib 540]

Measures, for the 500 images of the official splits:
  1. discovering the images (build_plan);
  2. hashing every source JPEG (what every planning paid before the chunk manifests; now a source is
     hashed only where its size, mtime or ctime changed since it was read);
  3. verify_results on a results tree of 500 images x ``--arms`` arms whose per-image files are
     stand-ins of ``--pt-kib`` KiB (an SD-VAE record of a 481x321 image is ~540 KiB: two 4x60x40
     float32 latents, the decoded 8-bit image, the loss history), first with an empty hash cache
     and again (what each later planning pays); per-image files are verified through their chunk
     manifests (stat, hashed where size or mtime changed).
Prints seconds and the ratio of the cached check to the first one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow_scripts"))

from latentopt.workflow import layout  # noqa: E402
from latentopt.workflow.config import load_config  # noqa: E402
from latentopt.core.fileio import atomic_path, sha256_file, write_json  # noqa: E402
from latentopt.data.prepare import source_stat  # noqa: E402
from latentopt.workflow.chunks import write_manifest  # noqa: E402
from latentopt.workflow.integrity import verify_results  # noqa: E402
from latentopt.workflow.plan import build_plan  # noqa: E402
from latentopt.workflow.sources import source_sha256  # noqa: E402


def _fake_tree(results: Path, plan, arms: list[str], pt_bytes: int, cfg_preprocess: dict) -> None:
    """Prepared records with the real sources' checksums, per-image files with recorded checksums,
    and the chunk manifests that list them (as the jobs write them)."""
    payload = os.urandom(pt_bytes)
    for chunk in plan.chunks:
        prepared, per_arm, sources = [], {arm: [] for arm in arms}, {}
        for e in chunk.entries:
            stat = source_stat(e.path)
            png = layout.original_png(results, e.split, e.image_id)
            with atomic_path(png) as tmp:
                tmp.write_bytes(payload[:200_000])
            record = layout.prepared_record(results, e.split, e.image_id)
            write_json(record, {"status": "ok", "source_sha256": source_sha256(e.path), "sha256": sha256_file(png)})
            sources[e.image_id] = {"sha256": source_sha256(e.path), "stat": stat, "path": str(e.path)}
            prepared.append((e.image_id, {"record": record, "png": png}))
            for arm in arms:
                pt = layout.per_image(results, arm, e.split, e.image_id, "pt")
                with atomic_path(pt) as tmp:
                    tmp.write_bytes(e.image_id.encode() + payload)
                js = pt.with_suffix(".json")
                write_json(js, {"status": "ok", "pt_sha256": sha256_file(pt)})
                per_arm[arm].append((e.image_id, {"json": js, "pt": pt}))
        write_manifest(layout.prepared_manifest(results, chunk.name), "prepare", chunk.split, prepared,
                       extra={"preprocess": cfg_preprocess}, sources=sources)
        for arm in arms:
            write_manifest(layout.chunk_manifest(results, arm, chunk.name), "optimize", chunk.split, per_arm[arm])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bsr_root", nargs="?", default=str(REPO.parent / "shared" / "data" / "BSR"))
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--pt-kib", type=int, default=540)
    args = parser.parse_args(argv)
    out = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="integrity_cost_") as tmp:
        cfg = load_config([], {"results_dir": str(Path(tmp) / "results"), "data.root": args.bsr_root})
        t = time.perf_counter()
        plan = build_plan(cfg)
        out["images"] = plan.n_images
        out["discover_s"] = time.perf_counter() - t
        files = [e.path for es in plan.splits.values() for e in es]
        out["source_mb"] = sum(f.stat().st_size for f in files) / 2**20
        t = time.perf_counter()
        for f in files:
            sha256_file(f)
        out["hash_sources_s"] = time.perf_counter() - t
        arms = ["baseline", *list(cfg["losses"])[: args.arms - 1]]
        plan = plan.__class__(plan.splits, plan.chunks, arms)
        _fake_tree(Path(cfg["results_dir"]), plan, arms, args.pt_kib * 1024, cfg["preprocess"])
        out["results_mb"] = sum(p.stat().st_size for p in Path(cfg["results_dir"]).rglob("*") if p.is_file()) / 2**20
        for label in ("verify_first_s", "verify_cached_s"):
            t = time.perf_counter()
            found = verify_results(cfg, plan, log=lambda m: None)
            out[label] = time.perf_counter() - t
            assert not found, found[:3]
        out["cached_over_first"] = out["verify_cached_s"] / out["verify_first_s"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
