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


def make_config(results_dir: Path, data_root: Path, **overrides) -> dict:
    """The demo config (validated, defaults filled) pointed at tmp folders; dotted-key overrides.
    The autoencoder is the random ``synthetic_kl`` unless overridden: the demo's trained one would
    have to be trained first (tests/test_demo_model.py covers it)."""
    from latentopt.config import load_config

    return load_config(
        [REPO / "demo" / "config.yaml"],
        {"results_dir": str(results_dir), "data.root": str(data_root), "model.kind": "synthetic_kl", **overrides},
    )


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from latentopt.demo_data import write_demo_data

    root = tmp_path_factory.mktemp("demo_data")
    write_demo_data(root)
    return root
