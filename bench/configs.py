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
    final_steps: int = 0  # precision schedule: the last K Adam steps (and the final evaluation) in fp32
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" = CUDA graphs

    @property
    def name(self) -> str:
        parts = [self.precision, f"b{self.batch}"]
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("compile" if self.compile_mode == "default" else f"compile[{self.compile_mode}]")
        if self.checkpointing:
            parts.append("ckpt")
        if self.final_steps:
            parts.append(f"last{self.final_steps}-fp32")
        return " ".join(parts)

    def step(self):
        """The pipeline's decoder step for this config (latentopt.optimize.decoder_step.DecoderStep)."""
        from latentopt.optimize.decoder_step import DecoderStep

        return DecoderStep.of(precision=self.precision, final_precision="fp32", final_precision_steps=self.final_steps,
                              compile=self.compile, compile_mode=self.compile_mode)


CONFIG_SYNTAX = "precision:bN[:cl][:compile][:cg][:ckpt][:lastK]"


def parse_config(text: str) -> Config:
    """'fp16:b8:compile:last10' -> Config(8, 'fp16', compile=True, final_steps=10). Flags: cl
    (channels_last), compile, cg (compile with mode reduce-overhead: CUDA graphs), ckpt (gradient
    checkpointing), lastK (the last K steps in fp32)."""
    from latentopt.compute.precision import PRECISIONS

    precision, batch, *flags = text.strip().split(":")
    last = [f for f in flags if f.startswith("last") and f[4:].isdigit()]
    unknown = set(flags) - {"cl", "compile", "cg", "ckpt"} - set(last)
    if precision not in PRECISIONS or not batch.startswith("b") or not batch[1:].isdigit() or unknown or len(last) > 1:
        raise argparse.ArgumentTypeError(f"bad config {text!r}: want {CONFIG_SYNTAX}")
    return Config(int(batch[1:]), precision, "cl" in flags, "compile" in flags or "cg" in flags, "ckpt" in flags,
                  int(last[0][4:]) if last else 0, "reduce-overhead" if "cg" in flags else "default")

