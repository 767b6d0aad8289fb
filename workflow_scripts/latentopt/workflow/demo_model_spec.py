"""The demo autoencoder's files, training settings and label (pure Python).

The network and its training are :mod:`latentopt.models.demo_model`; the workflow layer needs only
what is here: where the ``train_demo_model`` rule writes, what the weights depend on, and the label
every output carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from latentopt.core.fileio import read_json

WEIGHTS_NAME = "demo_autoencoder.pt"
SUMMARY_NAME = "demo_autoencoder.json"
FORMAT = "latentopt-demo-autoencoder/1"


@dataclass(frozen=True)
class TrainSettings:
    """Everything the trained weights depend on (with the library versions)."""

    seed: int = 0
    steps: int = 1000
    batch_size: int = 16
    crop_size: int = 48
    lr: float = 2e-3  # peak of a one-cycle schedule (5% warm-up, cosine decay)
    l1_weight: float = 0.1
    latent_l2_weight: float = 1e-4
    latent_channels: int = 4
    widths: tuple[int, int, int] = (32, 48, 64)
    threads: int = 1  # measured on a shared 2-core VM: 2 threads took 6x the CPU time per step

    @property
    def n_crops(self) -> int:
        return self.steps * self.batch_size


def describe(n_crops: int, train_time_s: float) -> str:
    """The label every output carries for this model."""
    return f"autoencoder trained for the demo on {n_crops} crops in {train_time_s:.0f} s — not SD-VAE"


def read_summary(path: str | Path) -> dict | None:
    """The training summary JSON at ``path``, or None when it has not been written yet."""
    return read_json(path) if Path(path).is_file() else None
