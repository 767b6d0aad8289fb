"""The protocol presets of the published reconstruction rows (configs/coco5k.yaml: COCO-2017 val,
5,000 images; configs/imagenet50k.yaml: ImageNet-1k val, 50,000 images): their settings, and
their dry run on a synthetic flat folder named as the real one (a few hundred images here:
bench/benchmark.py --scale measures planning at 50,000)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from latentopt.workflow.config import check_config, load_config

REPO = Path(__file__).resolve().parents[1]
# preset file -> (its split, a source file name for image i, the number of images planned here)
PRESETS = {
    "coco5k.yaml": ("val2017", lambda i: f"{i:012d}.jpg", 250),
    "imagenet50k.yaml": ("val", lambda i: f"ILSVRC2012_val_{i + 1:08d}.JPEG", 1030),
}


def preset_config(name: str) -> dict:
    cfg = load_config([REPO / "config.yaml", REPO / "configs" / name])
    check_config(cfg)
    return cfg


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_states_its_protocol(name):
    cfg = preset_config(name)
    assert cfg["preprocess"]["mode"] == "resize_crop" and cfg["preprocess"]["size"] == 256
    assert cfg["preprocess"]["resize_filter"] == "bicubic"
    assert cfg["use_losses"] == ["psnr"] and cfg["evaluation"]["fid"] is True
    assert cfg["data"]["single_split_name"] == PRESETS[name][0]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_dry_run_on_a_flat_folder(tmp_path, name):
    split, file_name, n = PRESETS[name]
    cfg = preset_config(name)
    per_job, gate = cfg["run"]["images_per_job"], cfg["quality_gate"]["images_per_loss"]
    images = tmp_path / split
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):  # the real names and a landscape/portrait mix
        shape = (40, 56, 3) if i % 3 else (56, 40, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(images / file_name(i), format="JPEG")
    results = tmp_path / "results"
    data = yaml.safe_dump({"root": str(images), "single_split_name": split}, default_flow_style=True).strip()
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
           "--configfile", str(REPO / "config.yaml"), str(REPO / "configs" / name), "--directory", str(tmp_path),
           "--config", f"results_dir={results}", f"data={data}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\S+)\s+(\d+)$", proc.stdout, re.M))
    optimize = sorted(rule for rule in counts if rule.startswith("optimize_"))
    # the quality gate's images run first, the others in chunks of the preset's size: per chunk a
    # baseline and a psnr job
    chunks = 1 + math.ceil((n - gate) / per_job)
    assert len(optimize) == 2 * chunks and {r.rsplit("_", 1)[1] for r in optimize} == {"baseline", "psnr"}
    assert int(counts["total"]) > len(optimize)
    assert not results.exists()  # a dry run writes nothing
