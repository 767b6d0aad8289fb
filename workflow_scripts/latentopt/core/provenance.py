"""Library versions and hardware, recorded in every dataset and report."""

from __future__ import annotations

import importlib.metadata
import os
import platform

from latentopt import __version__

PACKAGES = ("latentopt", "torch", "torchvision", "diffusers", "lpips", "pytorch-fid", "numpy", "scipy", "pandas", "snakemake", "pillow")


def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out.get("latentopt") is None:
        out["latentopt"] = __version__
    return out


def hardware() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    try:  # core stays torch-free: torch is looked for only when the hardware is recorded
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info
