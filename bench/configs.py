"""Benchmark configurations (batch, precision, layout, compile, checkpointing, schedule) and modes."""

from __future__ import annotations

import argparse
import dataclasses

MODES = {
    # size: (height, width) of the crops; configs are (batch, precision, channels_last, compile, ckpt)
    "smoke": dict(
        size_cpu=(32, 48), size_cuda=(32, 48), iterations=3, warmup=1, loss_iterations=1,
        batches=[1, 2], extra=[],
        orch_sets=["demo"], images_per_job=[2], orch_splits=["val"], orch_iterations=3,
        orch_losses=["psnr"], n_images=0,
    ),
    "quick": dict(
        size_cpu=(48, 64), size_cuda=(320, 480), iterations=6, warmup=1, loss_iterations=2,
        batches=[1, 2, 4], extra=[(1, "bf16", False, False, False), (4, "fp32", True, False, False),
                                 (4, "fp32", False, False, True)],
        orch_sets=["demo"], images_per_job=[2, 8], orch_splits=None, orch_iterations=None,
        orch_losses=["psnr"], n_images=0,
    ),
    "full": dict(
        size_cpu=(64, 96), size_cuda=(320, 480), iterations=50, warmup=3, loss_iterations=10,
        batches=[1, 2, 4, 8, 16],
        extra=[(1, "tf32", False, False, False), (8, "tf32", False, False, False)]
        + [(b, "bf16", False, False, False) for b in (1, 2, 4, 8, 16)]
        + [(8, "bf16", True, False, False), (16, "bf16", True, False, False),
           (8, "fp32", False, False, True), (8, "bf16", False, False, True),
           (16, "bf16", False, False, True), (8, "bf16", True, True, False)],
        orch_sets=["demo", "n_images"], images_per_job=[1, 8], orch_splits=None,
        orch_iterations=None, orch_losses=["psnr"], n_images=24,
    ),
}


@dataclasses.dataclass
class Config:
    batch: int
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    checkpointing: bool = False

    @property
    def name(self) -> str:
        parts = [self.precision, f"b{self.batch}"]
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("compile")
        if self.checkpointing:
            parts.append("ckpt")
        return " ".join(parts)


def parse_config(text: str) -> Config:
    """'bf16:b8:cl:compile:ckpt' -> Config(8, 'bf16', channels_last, compile, checkpointing)."""
    from latentopt.precision import PRECISIONS

    precision, batch, *flags = text.strip().split(":")
    unknown = set(flags) - {"cl", "compile", "ckpt"}
    if precision not in PRECISIONS or not batch.startswith("b") or not batch[1:].isdigit() or unknown:
        raise argparse.ArgumentTypeError(f"bad config {text!r}: want precision:bN[:cl][:compile][:ckpt]")
    return Config(int(batch[1:]), precision, "cl" in flags, "compile" in flags, "ckpt" in flags)

