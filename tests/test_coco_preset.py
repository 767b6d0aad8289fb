"""configs/coco5k.yaml, the COCO-2017 val protocol preset: its settings, and its dry run on a
synthetic flat folder of COCO-named JPEGs (250 images here: planning 5,000 takes a minute of CPU
on a loaded 2-core machine; bench/benchmark.py --scale measures planning at that size)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from latentopt.workflow.config import check_config, load_config

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "configs" / "coco5k.yaml"


def test_preset_states_the_model_card_protocol():
    cfg = load_config([REPO / "config.yaml", PRESET])
    check_config(cfg)
    assert cfg["preprocess"]["mode"] == "resize_crop" and cfg["preprocess"]["size"] == 256
    assert cfg["preprocess"]["resize_filter"] == "bicubic"
    assert cfg["use_losses"] == ["psnr"] and cfg["evaluation"]["fid"] is True
    assert cfg["data"]["single_split_name"] == "val2017"


def test_preset_dry_run_on_a_flat_folder(tmp_path):
    n, per_job = 250, 100
    images = tmp_path / "val2017"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):  # COCO's names and a landscape/portrait mix
        shape = (40, 56, 3) if i % 3 else (56, 40, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(images / f"{i:012d}.jpg")
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
           "--configfile", str(REPO / "config.yaml"), str(PRESET), "--directory", str(tmp_path),
           "--config", f"results_dir={results}", f"data={yaml.safe_dump({'root': str(images), 'single_split_name': 'val2017'}, default_flow_style=True).strip()}",
           f"run={{images_per_job: {per_job}}}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = dict(re.findall(r"^(\S+)\s+(\d+)$", proc.stdout, re.M))
    optimize = sorted(rule for rule in counts if rule.startswith("optimize_"))
    # the first 10 images (quality gate) run first, the other 240 in chunks of 100: 4 chunks x (baseline, psnr)
    assert len(optimize) == 8 and {r.rsplit("_", 1)[1] for r in optimize} == {"baseline", "psnr"}
    assert int(counts["total"]) > len(optimize)
    assert not results.exists()  # a dry run writes nothing
