"""What Snakemake tracks grows with jobs, not images (latentopt.workflow.chunks): each preparation and
optimization job declares one output, its chunk's manifest, which lists the per-image files with
the checksums their writers recorded; jobs downstream read the files the manifests list."""

from __future__ import annotations

import re

from conftest import snakemake, write_config

from latentopt.core.fileio import write_json
from latentopt.workflow import chunks


def test_each_job_declares_its_chunk_manifest_not_its_per_image_files(tmp_path, demo_data):
    """Before: an optimization job declared one .json and one .pt per image, and the dry run listed
    every per-image file (planning grew with images). Now one manifest per job, and no per-image
    file is a declared output of any job."""
    cfg = write_config(tmp_path / "config.yaml", tmp_path / "results", demo_data, run={"images_per_job": 2})
    out = snakemake(cfg, "-n").stdout
    outputs = re.findall(r"^\s+output: (.+)$", out, flags=re.M)
    optimize = [o for o in outputs if "_dataset/chunks/" in o]
    prepare = [o for o in outputs if "/prepared/chunks/" in o]
    assert optimize and prepare
    assert all("," not in o for o in optimize + prepare)  # one output each
    assert not [o for o in outputs if "/per_image/" in o and "evaluation_results" not in o]  # no per-image file declared
    # 8 images in 2-image jobs: 4 chunks (train, val, test), each once per arm
    assert len(prepare) == len({o.split("/")[-1] for o in prepare}) and len(optimize) == 4 * len(prepare)


def test_a_manifest_lists_its_files_with_their_writers_checksums(tmp_path):
    results = tmp_path / "results"
    files = {}
    for i in ("a", "b c"):
        for ext in ("json", "pt"):
            path = results / "psnr_dataset" / "per_image" / "train" / f"{i}.{ext}"
            write_json(path, {"id": i, "ext": ext})  # through the writer: with its checksum record
            files.setdefault(i, {})[ext] = path
    manifest = results / "psnr_dataset" / "chunks" / "train_000.json"
    chunks.write_manifest(manifest, "optimize", "train", files.items())
    assert chunks.results_of(manifest) == results
    assert chunks.listed(str(manifest), "json") == [str(files["a"]["json"]), str(files["b c"]["json"])]
    assert chunks.by_image([manifest], "pt") == {i: str(f["pt"]) for i, f in files.items()}
    import hashlib

    for item in chunks.entries(manifest):
        assert item.sha256 == hashlib.sha256(item.path.read_bytes()).hexdigest() and item.same_stat()
