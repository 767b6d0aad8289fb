"""Shared fixtures. Material from ../shared (real BSDS500 photos, TAEF2 weights) is optional:
tests that need it are skipped when it is absent, so the core suite runs anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LATENTOPT_SHARED", REPO.parent / "shared"))
BSDS_ROOT = SHARED / "data" / "BSR"
TAEF2_DIR = SHARED / "models" / "taef2"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def bsds_root() -> Path:
    if not (BSDS_ROOT / "BSDS500" / "data" / "images" / "test").is_dir():
        pytest.skip(f"real BSDS500 not found at {BSDS_ROOT}")
    return BSDS_ROOT


@pytest.fixture(scope="session")
def taef2_dir() -> Path:
    if not (TAEF2_DIR / "taef2_decoder.pth").is_file():
        pytest.skip(f"TAEF2 weights not found at {TAEF2_DIR}")
    return TAEF2_DIR


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def seed_config(**overrides) -> dict:
    """The repository's config.yaml as read (not validated), with dotted-key overrides."""
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in overrides.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def make_config(results_dir: Path, data_root: Path, **overrides) -> dict:
    """The demo config (validated, defaults filled) pointed at tmp folders; dotted-key overrides.
    The autoencoder is the random ``synthetic_kl`` unless overridden: the demo's trained one would
    have to be trained first (tests/test_demo_model.py covers it)."""
    from latentopt.workflow.config import load_config

    return load_config(
        [REPO / "demo" / "config.yaml"],
        {"results_dir": str(results_dir), "data.root": str(data_root), "model.kind": "synthetic_kl", **overrides},
    )


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from latentopt.data.demo_data import write_demo_data

    root = tmp_path_factory.mktemp("demo_data")
    write_demo_data(root)
    return root


# -- Snakemake end to end (slow tests) ----------------------------------------------------------
def snakemake_cmd(configfile: Path, *args: str) -> list[str]:
    """The demo config plus ``configfile``, run from the config's own folder: each test has its
    own .snakemake (locks, metadata)."""
    from latentopt.devtools.snakemake_cli import snakemake_command

    return snakemake_command(*args, snakefile=REPO / "Snakefile", configfiles=[REPO / "demo" / "config.yaml", configfile],
                             directory=configfile.parent, cores=2)


def snakemake(configfile: Path, *args: str, timeout: int = 900, check: bool = True, env: dict | None = None, **popen):
    import subprocess

    cmd = snakemake_cmd(configfile, *args)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def write_config(path: Path, results: Path, data_root: Path, **extra) -> Path:
    import yaml

    cfg = {"results_dir": str(results), **extra, "data": {"root": str(data_root), **extra.get("data", {})}}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory, demo_data):
    """ONE finished demo run for the session: the demo's own autoencoder (trained with 40 steps
    here), 2 images per split (val: camera + a corrupt JPEG), 2 images per job, 3 losses of 8
    iterations, its metric networks fed batches of 2 images. Tests that damage it work on
    a copy (tests/test_integrity_pipeline.py) or rerun it to completion (tests/test_pipeline.py)."""
    import shutil

    tmp = tmp_path_factory.mktemp("pipeline")
    data = tmp / "data"
    shutil.copytree(demo_data, data)
    (data / "val" / "corrupt.jpg").write_bytes((data / "val" / "rocket.jpg").read_bytes()[:300])
    results = tmp / "results"
    cfg = write_config(
        tmp / "config.yaml", results, data,
        model={"kind": "demo_trained", "train_steps": 40},
        data={"limit_per_split": 2},
        run={"images_per_job": 2, "batch_size": 2},
        losses={name: {"iterations": 8} for name in ("psnr", "ssim", "lpips")},
        evaluation={"n_boot": 50, "fid_n_boot": 20, "batch_size": 2},
    )
    snakemake(cfg, timeout=1800)  # minutes on an idle 2-core machine; more on a shared one
    return cfg, results


def hold_driver_lock(results: Path, seconds: int = 60):
    """Another process holding the results folder's driver lock (latentopt.workflow.driverlock) for
    ``seconds``; returns its Popen once the lock is held."""
    import subprocess
    import sys

    code = (f"import sys, time; sys.path.insert(0, {str(REPO / 'workflow_scripts')!r});"
            f"from latentopt.workflow import driverlock; driverlock.acquire({str(results)!r}); print('held', flush=True); time.sleep({seconds})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def job_context(cfg: dict, arm: str, split: str, log=lambda m: None):
    """The context and items of the optimization job of every image of ``split`` (as
    latentopt.optimize.job.optimize_chunk builds them), for tests that drive its batches."""
    from latentopt.optimize.context import build_context
    from latentopt.optimize.items import load_items
    from latentopt.workflow import layout
    from latentopt.workflow.job_params import optimize_job_args
    from latentopt.workflow.plan import build_plan
    from latentopt.workflow.settings import ArmSettings, RunSettings

    ids = [e.image_id for e in build_plan(cfg).splits[split]]
    args = optimize_job_args(cfg, arm, split, ids)
    run = RunSettings(**args["run"])
    settings = ArmSettings.from_params(args["settings"], run.compile_cache_dir)
    ctx = build_context(settings, run, "cpu", checkpoints=layout.checkpoint_dir(args["results_dir"], arm, split),
                        lpips_random_trunk=args["lpips_random_trunk"], log=log)
    items, _ = load_items(args["prepared"], split, ids, settings.preprocess, args["results_dir"], log=lambda m: None)
    return ctx, items
