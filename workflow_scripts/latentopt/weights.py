"""Where pretrained weight files live, and the error raised when one is missing.

Pure Python (no torch import): the Snakefile calls these at parse time to stop before any job
runs when a file that a job will need is absent and cannot be downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# torchvision / pytorch-fid checkpoints, looked up in torch.hub's cache directory.
TORCH_HUB_FILES = {
    "lpips_alex": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "lpips_vgg": (
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
    "fid_inception": (
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
    ),
}


class MissingWeightsError(FileNotFoundError):
    """A pretrained weight file is not on disk and may not (or could not) be downloaded."""


@dataclass(frozen=True)
class WeightFile:
    """One file a job needs: where it must be, what it is, and how to obtain it."""

    path: Path
    description: str
    url: str | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def explain(self) -> str:
        how = f"download it from {self.url}" if self.url else "obtain it"
        return f"{self.description}: expected at {self.path} ({how} and put it there)"


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, default ~/.cache/torch/hub."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        torch_home = str(Path(xdg) / "torch")
    return Path(torch_home).expanduser() / "hub"


def torch_hub_checkpoint(key: str) -> WeightFile:
    """The cached checkpoint for one of TORCH_HUB_FILES' keys."""
    filename, url = TORCH_HUB_FILES[key]
    return WeightFile(torch_hub_dir() / "checkpoints" / filename, key, url)


def require(files: list[WeightFile]) -> None:
    """Raise MissingWeightsError naming every missing file and where to put it."""
    missing = [f for f in files if not f.exists()]
    if missing:
        lines = "\n  ".join(f.explain() for f in missing)
        raise MissingWeightsError(
            f"{len(missing)} weight file(s) missing (no download possible offline):\n  {lines}"
        )
