#!/usr/bin/env python
"""Benchmark of the latent optimization: every figure is a RATIO MEASURED IN ONE RUN.

Sections (see bench/README.md for what each number means):

1. throughput -- image-iterations/s of ``latentopt.optimizer.optimize_latents`` (the code the
   pipeline runs) for configurations of images per batch, precision (fp32, TF32, bf16 autocast with
   fp32 latents/loss/Adam), channels_last, torch.compile and gradient checkpointing; each as a ratio
   to the fp32 batch-1 baseline, with peak memory per image, activation bytes saved for backward per
   image, model-FLOP utilisation (GPU only; FLOPs counted with torch.utils.flop_counter.FlopCounterMode
   for the model and size used) and the final PSNR/SSIM/LPIPS deltas against fp32 on the same images.
2. orchestration -- efficiency = sum of the per-image ``optimization_time_s`` records / wall time of
   the ``snakemake`` command, measured by running the pipeline (tmp results_dir) on the demo data
   and on N images for several ``run.images_per_job`` values.
3. projection -- the full experiment (3 losses x 500 images x their iterations from config.yaml) from
   the measured per-loss throughput plus the measured orchestration overhead; the <= 15 min on one
   H100 verdict is only given for a GPU measurement of the full-size SD-VAE at 480x320.

    python bench/benchmark.py --quick                 # CI-sized CPU run (< 3 min on 2 cores)
    python bench/benchmark.py --device cuda --full    # the GPU run (full SD-VAE, 480x320 crops)
    python bench/benchmark.py --smoke                 # seconds; used by tests/test_benchmark.py

Writes JSON to --out (default bench/out/benchmark.json) and prints tables.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "workflow_scripts"
if str(LIBRARY) not in sys.path:
    sys.path.insert(0, str(LIBRARY))
SHARED = Path(os.environ.get("LATENTOPT_SHARED", REPO.parent / "shared"))
BSDS_IMAGES = SHARED / "data" / "BSR" / "BSDS500" / "data" / "images"
TAEF2_DIR = SHARED / "models" / "taef2"
SCHEMA_VERSION = "latentopt-benchmark/1"

# The Stable Diffusion v1 VAE architecture (diffusers AutoencoderKL config of
# CompVis/stable-diffusion-v1-4/vae), randomly initialised: same layers, hence same FLOPs and
# activation memory as the real one. Built through latentopt's synthetic_kl loader.
SD_VAE_SPEC = {
    "kind": "synthetic_kl",
    "seed": 0,
    "block_out_channels": [128, 256, 512, 512],
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
}
BSDS500_SPLIT_SIZES = {"train": 200, "val": 100, "test": 200}
SMALL_KL_SPEC = {"kind": "synthetic_kl", "seed": 0}  # latentopt's default tiny synthetic KL

# Dense (no structured sparsity) peak throughput in FLOP/s, per precision.
# Sources: NVIDIA datasheets; the tensor-core figures there are quoted "with sparsity", the dense
# value is half of it.
#  * H100 SXM5 / PCIe: https://www.nvidia.com/en-us/data-center/h100/ (H100 datasheet, "Technical
#    Specifications"): SXM FP32 67 TF, TF32 989 TF*, BF16 1,979 TF*; PCIe FP32 51 TF, TF32 756 TF*,
#    BF16 1,513 TF* (* with sparsity).
#  * H200 SXM: https://www.nvidia.com/en-us/data-center/h200/ : FP32 67 TF, TF32 989 TF*, BF16 1,979 TF*.
#  * A100 (SXM4 and PCIe): https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/
#    nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf : FP32 19.5 TF, TF32 156 TF (312*),
#    BF16 312 TF (624*).
# NVL variants (different clocks/power) are not in the table: MFU is then reported as null.
PEAK_FLOPS = {
    "H100 SXM": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "H100 PCIe": {"fp32": 51.2e12, "tf32": 378.0e12, "bf16": 756.0e12},
    "H200 SXM": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156.0e12, "bf16": 312.0e12},
}

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


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(xs) if xs else None


def gpu_peak(name: str | None) -> tuple[str | None, dict | None]:
    """(table key, peak FLOP/s per precision) for a CUDA device name, or (None, None)."""
    if not name:
        return None, None
    n = name.upper()
    if "NVL" in n:
        return None, None
    if "H200" in n:
        return "H200 SXM", PEAK_FLOPS["H200 SXM"]
    if "H100" in n:
        key = "H100 PCIe" if "PCIE" in n else "H100 SXM"
        return key, PEAK_FLOPS[key]
    if "A100" in n:
        return "A100", PEAK_FLOPS["A100"]
    return None, None


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


# --------------------------------------------------------------------------------------------
# images and models
# --------------------------------------------------------------------------------------------


def _crop_cover(arr, height: int, width: int, shift: int = 0):
    """Centre crop (shifted by ``shift`` steps along the longer free axis) after upscaling when
    the photo is smaller than the crop."""
    import numpy as np
    from PIL import Image

    h, w = arr.shape[:2]
    scale = max(height / h, width / w, 1.0)
    if scale > 1.0:
        arr = np.asarray(Image.fromarray(arr).resize((math.ceil(w * scale), math.ceil(h * scale)), Image.BICUBIC))
        h, w = arr.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    if shift:
        span_h, span_w = h - height, w - width
        if span_w >= span_h:
            left = (left + shift * max(1, span_w // 5)) % (span_w + 1)
        else:
            top = (top + shift * max(1, span_h // 5)) % (span_h + 1)
    return np.ascontiguousarray(arr[top : top + height, left : left + width])


def load_images(n: int, height: int, width: int, source: str = "auto"):
    """n uint8 crops [n,H,W,3] and a description: real BSDS500 photos (landscape ones, sorted,
    test split first) when present, else scikit-image's bundled photos."""
    import numpy as np

    from latentopt.images import read_rgb

    if source in ("auto", "bsds") and (BSDS_IMAGES / "test").is_dir():
        crops, ids = [], []
        for split in ("test", "val", "train"):
            for path in sorted((BSDS_IMAGES / split).glob("*.jpg")):
                arr = read_rgb(path)
                if arr.shape[1] < arr.shape[0]:  # keep the landscape ones: one batchable shape
                    continue
                crops.append(_crop_cover(arr, height, width))
                ids.append(f"{split}/{path.stem}")
                if len(crops) == n:
                    return np.stack(crops), {"source": f"BSDS500 ({BSDS_IMAGES})", "ids": ids,
                                             "crop": "centre crop of landscape photos"}
    if source == "bsds":
        raise FileNotFoundError(f"BSDS500 not found at {BSDS_IMAGES}")
    import skimage.data

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera"]
    crops, ids = [], []
    for i in range(n):
        name = names[i % len(names)]
        arr = np.asarray(getattr(skimage.data, name)())
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        crops.append(_crop_cover(arr[..., :3], height, width, shift=i // len(names)))
        ids.append(f"skimage.data.{name}#{i // len(names)}")
    return np.stack(crops), {"source": "scikit-image bundled photos (BSDS500 not found)", "ids": ids,
                             "crop": "centre crops (shifted for repeats)"}


def choose_model(arg: str, device: str) -> tuple[str, dict]:
    if arg == "auto":
        if device.startswith("cuda"):
            arg = "sd_vae"
        elif (TAEF2_DIR / "taef2_decoder.pth").is_file():
            arg = "taef2"
        else:
            arg = "synthetic_kl"
    if arg == "sd_vae":
        return "SD-VAE architecture (AutoencoderKL [128,256,512,512], latent 4), random weights", dict(SD_VAE_SPEC)
    if arg == "taef2":
        if not (TAEF2_DIR / "taef2_decoder.pth").is_file():
            raise FileNotFoundError(f"TAEF2 weights not found in {TAEF2_DIR}")
        return "TAEF2 (pretrained, ../shared/models/taef2)", {
            "kind": "taesd", "encoder": str(TAEF2_DIR / "taef2_encoder.pth"),
            "decoder": str(TAEF2_DIR / "taef2_decoder.pth"), "variant": "taef2"}
    if arg == "synthetic_kl":
        return "small synthetic AutoencoderKL [16,32,32,32] (random weights)", dict(SMALL_KL_SPEC)
    raise ValueError(f"unknown --model {arg!r}")


def _checkpointed_taesd_decode(model):
    """Per-residual-block activation checkpointing of a TAESD-family decoder (our nn.Sequential;
    mirrors diffusers' per-block checkpointing): activations inside each Block are recomputed."""
    import torch
    from torch.utils.checkpoint import checkpoint

    from latentopt.taesd import Block

    decoder = model.model.decoder

    def decode(z):
        x = z.to(model.dtype)
        for layer in decoder:
            if isinstance(layer, Block) and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x.clamp(0, 1)

    return decode


def make_variant(base, cfg: Config):
    """A copy of the frozen model set up for ``cfg``; returns (model, decode, checkpointing note)."""
    import torch

    model = copy.deepcopy(base)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    decode = model.decode
    note = None
    if cfg.checkpointing:
        if model.convention in ("kl", "tiny"):
            model.model.enable_gradient_checkpointing()
            note = ("diffusers enable_gradient_checkpointing(): non-reentrant torch.utils.checkpoint "
                    "of the mid block and each up block; active under torch.is_grad_enabled() even "
                    "in eval mode with frozen weights (the latent requires grad)")
        else:
            decode = _checkpointed_taesd_decode(model)
            note = "torch.utils.checkpoint (non-reentrant) around each TAESD residual block"
    if cfg.compile:
        decode = torch.compile(decode)
    return model, decode, note


# --------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(decode, z, target, loss_fn, precision, device) -> dict:
    """FLOPs (FlopCounterMode) of one optimizer step (decode + loss + backward to the latent) and
    of one forward-only evaluation, for the given batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from latentopt.precision import decode_precision, exact_fp32

    z = z.detach().clone().requires_grad_(True)
    counter = FlopCounterMode(display=False)
    with counter:
        with decode_precision(precision, device):
            out = decode(z)
        with exact_fp32():
            loss_fn(out.float(), target).sum().backward()
    step = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        with decode_precision(precision, device):
            out = decode(z)
        with exact_fp32():
            loss_fn(out.float(), target)
    return {"step": int(step), "forward": int(counter.get_total_flops())}


def _meta_sd_vae():
    """The full-size SD-VAE architecture on the meta device (no memory, no weights yet)."""
    import torch
    from diffusers import AutoencoderKL

    n = len(SD_VAE_SPEC["block_out_channels"])
    with torch.device("meta"):
        return AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(SD_VAE_SPEC["block_out_channels"]),
            latent_channels=SD_VAE_SPEC["latent_channels"],
            layers_per_block=SD_VAE_SPEC["layers_per_block"], norm_num_groups=SD_VAE_SPEC["norm_num_groups"])


def sd_vae_reference_flops(height: int = 320, width: int = 480) -> dict:
    """Decoder FLOPs of the full-size SD-VAE at height x width, counted on the meta device (no
    memory, no compute): forward, and forward+backward to the latent with frozen weights."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_sd_vae()
    model.requires_grad_(False).eval()
    z = torch.zeros(1, 4, height // 8, width // 8, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        model.decode(z)
    with FlopCounterMode(display=False) as both:
        model.decode(z).sample.float().square().mean().backward()
    return {"height": height, "width": width, "decoder_forward": int(fwd.get_total_flops()),
            "decoder_forward_backward_frozen": int(both.get_total_flops()),
            "method": "torch.utils.flop_counter.FlopCounterMode on the meta device, batch 1"}


def diffusers_checkpointing_check(height: int = 32, width: int = 48) -> dict:
    """Does diffusers' enable_gradient_checkpointing() act on a FROZEN model in eval mode?

    The SD-VAE architecture (random weights filled directly, no slow diffusers init) decodes a
    latent that requires grad; activation bytes saved for backward and the latent gradient are
    compared with and without checkpointing, on the CPU at a small size (device-independent facts).
    """
    import torch

    model = _meta_sd_vae()
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    model.eval().requires_grad_(False)
    z = torch.randn(1, SD_VAE_SPEC["latent_channels"], height // 8, width // 8, generator=gen)
    decode = lambda t: (model.decode(t).sample / 2 + 0.5).clamp(0, 1)  # noqa: E731
    target = torch.rand(1, 3, height, width, generator=gen)
    loss = lambda a, b: (a - b).square().mean(dim=(1, 2, 3))  # noqa: E731
    dev = torch.device("cpu")

    g0, g1 = [], []
    plain = saved_activation_bytes(decode, z, target, loss, "fp32", dev, model.parameters(), g0)
    model.enable_gradient_checkpointing()
    ckpt = saved_activation_bytes(decode, z, target, loss, "fp32", dev, model.parameters(), g1)
    g0, g1 = g0[0], g1[0]
    frac = ckpt / plain
    return {
        "model": "SD-VAE architecture (random weights), diffusers AutoencoderKL.decode",
        "size": f"{height}x{width}", "eval_mode": not model.training,
        "any_parameter_requires_grad": any(p.requires_grad for p in model.parameters()),
        "saved_activation_bytes_plain": plain, "saved_activation_bytes_checkpointed": ckpt,
        "saved_fraction": frac, "latent_grad_max_abs_diff": float((g0 - g1).abs().max()),
        "effective": frac < 0.9,
        "note": ("works with frozen weights: diffusers (0.42) checkpoints when torch.is_grad_enabled(), "
                 "not only in training mode, with non-reentrant torch.utils.checkpoint, which needs no "
                 "parameter to require grad (the latent does)") if frac < 0.9 else
                ("NO EFFECT on this frozen model: nothing is recomputed, no memory is saved"),
    }


def saved_activation_bytes(decode, z, target, loss_fn, precision, device, params, grad_out=None) -> int:
    """Bytes of the tensors autograd saves for backward in one step (weights excluded; storages
    counted once): the activation memory the backward pass needs, measurable on any device."""
    import torch

    from latentopt.precision import decode_precision, exact_fp32

    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in param_ptrs:
            seen[s.data_ptr()] = s.nbytes()
        return t

    z = z.detach().clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with decode_precision(precision, device):
            out = decode(z)
        with exact_fp32():
            loss = loss_fn(out.float(), target).sum()
    loss.backward()
    if grad_out is not None:
        grad_out.append(z.grad)
    return sum(seen.values())


def timed_optimize(decode, targets, z0, loss_fn, iterations, lr, precision, device):
    """One optimize_latents call with a fixed number of iterations (stopping rule 'none');
    returns (tracks, wall seconds, process CPU seconds)."""
    from latentopt.optimizer import AdamSettings, StopRule, optimize_latents

    settings = AdamSettings(iterations=iterations, lr=lr, stopping=StopRule("none"), checkpoint_interval=10**9)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    tracks = optimize_latents(decode, targets, z0, loss_fn, settings, precision=precision)
    _sync(device)
    return tracks, time.perf_counter() - t0, time.process_time() - c0


def measure_config(cfg: Config, base, targets_all, loss_fn, nets, ctx: dict) -> dict:
    import torch

    from latentopt.job import decode_exact, encode_exact
    from latentopt.metrics import tensor_metrics

    device = ctx["device"]
    x = targets_all[: cfg.batch]
    model, decode, note = make_variant(base, cfg)
    row: dict[str, Any] = {"name": cfg.name, **dataclasses.asdict(cfg), "checkpointing_method": note}
    z0 = encode_exact(model, x)
    if not cfg.compile:
        saved = saved_activation_bytes(decode, z0, x, loss_fn, cfg.precision, device, model.parameters())
        row["saved_activations_per_image_mb"] = saved / cfg.batch / 2**20
    else:
        row["saved_activations_per_image_mb"] = None
    if ctx["warmup"]:
        timed_optimize(decode, x, z0, loss_fn, ctx["warmup"], ctx["lr"], cfg.precision, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    tracks, wall, cpu = timed_optimize(decode, x, z0, loss_fn, ctx["iterations"], ctx["lr"], cfg.precision, device)
    if device.type == "cuda":
        peak_mem = torch.cuda.max_memory_allocated(device)
        row["peak_memory_mb"] = peak_mem / 2**20
        row["peak_memory_per_image_mb"] = (peak_mem - before) / cfg.batch / 2**20
    else:
        row["peak_memory_mb"] = row["peak_memory_per_image_mb"] = None
    steps = cfg.batch * ctx["iterations"]
    row.update(image_iterations=steps, wall_s=wall, cpu_s=cpu,
               image_iterations_per_s=steps / wall, image_iterations_per_cpu_s=steps / cpu if cpu > 0 else None)
    flops = ctx["flops_per_image"]
    model_flops = cfg.batch * (ctx["iterations"] * flops["step"] + flops["forward"])
    row["achieved_flops_per_s"] = model_flops / wall
    peak_flops = ctx["peak_flops"]
    row["mfu"] = row["achieved_flops_per_s"] / peak_flops[cfg.precision] if peak_flops else None
    row["mfu_vs_bf16_peak"] = row["achieved_flops_per_s"] / peak_flops["bf16"] if peak_flops else None
    # final quality, decoded as the pipeline's job does (exact fp32, whatever the run precision)
    best = torch.stack([t.best_z for t in tracks]).to(device)
    initial, final = decode_exact(model, z0), decode_exact(model, best)
    m0 = tensor_metrics(initial, x.float(), nets)
    m1 = tensor_metrics(final, x.float(), nets)
    lp = next((k for k in m1 if k.startswith("lpips_")), None)
    row["per_image"] = {
        "psnr_initial": m0["psnr"].cpu().tolist(),
        "psnr": m1["psnr"].cpu().tolist(),
        "ssim": m1["ssim"].cpu().tolist(),
        "lpips": m1[lp].cpu().tolist() if lp else None,
    }
    del model, decode, tracks, best
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def quality_deltas(row: dict, ref: dict, thresholds: dict) -> dict:
    n = min(row["batch"], ref["batch"])
    out: dict[str, Any] = {"images_compared": n}
    for key in ("psnr", "ssim", "lpips"):
        a, b = row["per_image"][key], ref["per_image"][key]
        if a is None or b is None:
            out[f"delta_{key}_mean"] = out[f"delta_{key}_max_abs"] = None
            continue
        d = [a[i] - b[i] for i in range(n)]
        out[f"delta_{key}_mean"] = statistics.fmean(d)
        out[f"delta_{key}_max_abs"] = max(abs(v) for v in d)
    out["psnr_initial_mean"] = _mean(row["per_image"]["psnr_initial"][:n])
    out["psnr_final_mean"] = _mean(row["per_image"]["psnr"][:n])
    out["ssim_final_mean"] = _mean(row["per_image"]["ssim"][:n])
    out["lpips_final_mean"] = _mean((row["per_image"]["lpips"] or [])[:n])
    ok = abs(out["delta_psnr_mean"]) <= thresholds["psnr_db"]
    ok = ok and abs(out["delta_ssim_mean"]) <= thresholds["ssim"]
    if out["delta_lpips_mean"] is not None:
        ok = ok and abs(out["delta_lpips_mean"]) <= thresholds["lpips"]
    out["matches_fp32"] = bool(ok)
    return out


def experiment_losses() -> dict:
    """The three arms of the seed experiment (repo config.yaml): loss spec and iterations."""
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    return {arm: {"loss": spec["loss"], "iterations": int(spec.get("iterations", 50)),
                  "lr": float(spec.get("lr", 0.05))} for arm, spec in cfg["losses"].items()}


def _loss_for_bench(spec: dict, device) -> tuple[Any, dict, str | None]:
    """build_loss; LPIPS falls back to a random trunk (same FLOPs) when the trunk weights are absent."""
    from latentopt.losses import build_loss, lpips_weight_files

    spec = dict(spec)
    note = None
    if spec.get("name") == "lpips" and not spec.get("random_trunk"):
        if not all(f.exists() for f in lpips_weight_files(spec.get("net", "alex"), False)):
            spec["random_trunk"] = True
            note = "LPIPS trunk weights absent: random trunk (same FLOPs, uncalibrated values)"
    return build_loss(spec, device=device), spec, note


def run_throughput(args, mode: dict, device, result: dict) -> None:
    import numpy as np
    import torch

    from latentopt.autoencoders import load_autoencoder
    from latentopt.job import encode_exact
    from latentopt.losses import lpips_network, lpips_weight_files

    # the pipeline leaves cuDNN autotuning off (PyTorch's default): every new batch shape (the batch
    # shrinks as images stop) would be autotuned again: 21-91 s per new shape on an H100
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    height, width = args.size or (mode["size_cuda"] if device.type == "cuda" else mode["size_cpu"])
    model_label, spec = choose_model(args.model, device.type)
    batches = args.batch_sizes or mode["batches"]
    configs = [Config(b) for b in batches]
    if args.configs:
        configs = list(args.configs)
    elif args.batch_sizes is None:
        configs += [Config(b, p, cl, comp, ck) for b, p, cl, comp, ck in mode["extra"]]
    if args.precisions:
        configs = [c for c in configs if c.precision in args.precisions or (c.precision == "fp32" and c.batch == 1)]
    if args.compile and not any(c.compile for c in configs):
        b = max(batches)
        configs.append(Config(b, "bf16" if device.type == "cuda" else "fp32", device.type == "cuda", True, False))
    if args.no_compile:
        configs = [c for c in configs if not c.compile]
    skipped = []
    kept = []
    for c in configs:
        if c.precision == "tf32" and device.type != "cuda":
            skipped.append({"name": c.name, "reason": "TF32 only changes CUDA matmul/cuDNN math; on CPU it is fp32"})
        else:
            kept.append(c)
    configs = kept
    if device.type == "cpu" and not any(c.compile for c in configs) and not args.compile:
        skipped.append({"name": "compile", "reason": "torch.compile not run on CPU by default (inductor "
                        "compile time exceeds the CI budget); --compile runs it"})
    if not any(c.batch == 1 and c.precision == "fp32" and not (c.channels_last or c.compile or c.checkpointing) for c in configs):
        configs.insert(0, Config(1))
    q = max(c.batch for c in configs)
    reference_cfg = Config(q)
    names = [c.name for c in configs]
    if reference_cfg.name not in names:
        configs.append(reference_cfg)

    images_u8, img_info = load_images(q, height, width, args.images)
    targets = torch.from_numpy(images_u8.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous().to(device)
    arms = experiment_losses()
    first_arm = next(iter(arms))
    loss_fn, loss_spec, loss_note = _loss_for_bench(arms[first_arm]["loss"], device)
    lpips_random = not all(f.exists() for f in lpips_weight_files("alex", False))
    nets = {"alex": lpips_network("alex", random_trunk=lpips_random, device=device)}

    t0 = time.perf_counter()
    base = load_autoencoder(spec, device=device)
    load_s = time.perf_counter() - t0
    # FLOPs per image, counted for this model and size (batch 1, plain fp32 decode = model FLOPs)
    z1 = encode_exact(base, targets[:1])
    flops = count_flops(base.decode, z1, targets[:1], loss_fn, "fp32", device)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak_key, peak = gpu_peak(gpu_name)
    lr = arms[first_arm]["lr"]
    ctx = {"device": device, "iterations": args.iterations or mode["iterations"],
           "warmup": mode["warmup"] if args.warmup is None else args.warmup, "lr": lr,
           "flops_per_image": flops, "peak_flops": peak}
    thresholds = {"psnr_db": args.max_dpsnr, "ssim": args.max_dssim, "lpips": args.max_dlpips}
    result["setup"] = {
        "model": {"label": model_label, "spec": spec, "load_s": load_s,
                  "parameters": sum(p.numel() for p in base.parameters())},
        "images": {**img_info, "n": q, "height": height, "width": width},
        "loss": {"arm": first_arm, "spec": loss_spec, "note": loss_note, "lr": lr},
        "iterations": ctx["iterations"], "warmup_iterations": ctx["warmup"],
        "stopping": "none (fixed iterations; the pipeline's per-image stopping only shortens runs)",
        "quality_metrics": {"lpips_net": "alex", "lpips_random_trunk": lpips_random,
                            "decode": "best latent decoded in exact fp32 (latentopt.job.decode_exact), as the pipeline publishes it"},
        "quality_thresholds": thresholds,
    }
    result["flops"] = {
        "per_image_iteration": flops["step"], "final_evaluation_per_image": flops["forward"],
        "method": "torch.utils.flop_counter.FlopCounterMode, batch 1, fp32 decode + loss + backward "
                  "to the latent (weights frozen), i.e. model FLOPs without checkpoint recomputation",
    }
    try:
        result["flops"]["sd_vae_reference_480x320"] = sd_vae_reference_flops(320, 480)
    except Exception as exc:  # noqa: BLE001 - informative only
        result["flops"]["sd_vae_reference_480x320"] = {"error": repr(exc)}
    result["peak_flops"] = ({"gpu": gpu_name, "table_key": peak_key, **peak} if peak else
                            {"gpu": gpu_name, "note": "no peak table entry (CPU or unlisted GPU): MFU not reported"})

    try:
        result["checkpointing_check"] = diffusers_checkpointing_check()
    except Exception as exc:  # noqa: BLE001 - informative only
        result["checkpointing_check"] = {"error": repr(exc)}

    rows = []
    for cfg in configs:
        log(f"throughput: {cfg.name} ({cfg.batch} x {ctx['iterations']} iterations at {height}x{width})")
        try:
            rows.append(measure_config(cfg, base, targets, loss_fn, nets, ctx))
        except Exception as exc:  # noqa: BLE001 - e.g. OOM or compile failure: report, go on
            if device.type == "cuda":
                torch.cuda.empty_cache()
            skipped.append({"name": cfg.name, "reason": f"failed: {type(exc).__name__}: {str(exc)[:300]}"})
            log(f"  {cfg.name} failed: {exc!r}")
        # rows so far, so that a run stopped at a time limit still leaves its measurements
        write_json({**result, "throughput_partial": {"configs": rows, "skipped": skipped}}, partial_path(args.out))
    by_name = {r["name"]: r for r in rows}
    baseline = by_name.get(Config(1).name)
    ref = by_name.get(reference_cfg.name)
    if ref is None:  # e.g. the largest fp32 batch ran out of memory: the largest fp32 batch that ran
        fp32 = [r for r in rows if r["precision"] == "fp32" and not (r["channels_last"] or r["compile"] or r["checkpointing"])]
        ref = max(fp32, key=lambda r: r["batch"]) if fp32 else None
    for r in rows:
        r["ratio_to_baseline"] = (r["image_iterations_per_s"] / baseline["image_iterations_per_s"]) if baseline else None
        r["cpu_time_ratio_to_baseline"] = (
            r["image_iterations_per_cpu_s"] / baseline["image_iterations_per_cpu_s"]
            if baseline and r["image_iterations_per_cpu_s"] and baseline["image_iterations_per_cpu_s"] else None)
        r["quality"] = quality_deltas(r, ref, thresholds) if ref else None
    if baseline:
        baseline["ratio_to_baseline"] = 1.0
        if baseline["cpu_time_ratio_to_baseline"] is not None:
            baseline["cpu_time_ratio_to_baseline"] = 1.0
    # checkpointing: does it do anything with frozen weights?
    ckpt_notes = []
    for r in rows:
        if r["checkpointing"]:
            twin = next((o for o in rows if o["batch"] == r["batch"] and o["precision"] == r["precision"]
                         and o["channels_last"] == r["channels_last"] and not o["checkpointing"]
                         and not o["compile"]), None)
            if twin and r["saved_activations_per_image_mb"] is not None and twin["saved_activations_per_image_mb"]:
                frac = r["saved_activations_per_image_mb"] / twin["saved_activations_per_image_mb"]
                r["checkpointing_effect"] = {
                    "saved_activations_fraction": frac,
                    "peak_memory_fraction": (r["peak_memory_per_image_mb"] / twin["peak_memory_per_image_mb"]
                                             if r["peak_memory_per_image_mb"] and twin["peak_memory_per_image_mb"] else None),
                    "throughput_fraction": r["image_iterations_per_s"] / twin["image_iterations_per_s"],
                    "effective": frac < 0.9,
                }
                ckpt_notes.append(f"{r['name']}: saved activations x{frac:.2f}, throughput "
                                  f"x{r['image_iterations_per_s'] / twin['image_iterations_per_s']:.2f} vs {twin['name']}")
    # precision defaults: a reduced precision is a default only if every measured config matches fp32
    verdicts = {}
    for prec in ("tf32", "bf16"):
        mine = [r for r in rows if r["precision"] == prec and r["quality"]]
        if mine:
            verdicts[prec] = {
                "all_match_fp32": all(r["quality"]["matches_fp32"] for r in mine),
                "worst_delta_psnr_mean": max((abs(r["quality"]["delta_psnr_mean"]) for r in mine)),
                "best_ratio_to_baseline": max(r["ratio_to_baseline"] or 0 for r in mine),
            }
    eligible = [r for r in rows if r["quality"] and (r["precision"] == "fp32" or r["quality"]["matches_fp32"])]
    recommended = max(eligible, key=lambda r: r["image_iterations_per_s"]) if eligible else None
    result["throughput"] = {
        "baseline": baseline["name"] if baseline else None,
        "quality_reference": ref["name"] if ref else None,
        "configs": rows,
        "skipped": skipped,
        "checkpointing": ckpt_notes,
        "precision_verdicts": verdicts,
        "recommended": ({"name": recommended["name"], "ratio_to_baseline": recommended["ratio_to_baseline"],
                         "image_iterations_per_s": recommended["image_iterations_per_s"]} if recommended else None),
    }

    # per-loss throughput at the recommended configuration (for the projection)
    per_loss = []
    if recommended:
        cfg = Config(recommended["batch"], recommended["precision"], recommended["channels_last"],
                     recommended["compile"], recommended["checkpointing"])
        x = targets[: cfg.batch]
        model, decode, _ = make_variant(base, cfg)
        z0 = encode_exact(model, x)
        n_it = args.loss_iterations or mode["loss_iterations"]
        for arm, a in arms.items():
            fn, used_spec, note = _loss_for_bench(a["loss"], device)
            log(f"per-loss throughput: {arm} at {cfg.name}")
            timed_optimize(decode, x, z0, fn, 1, a["lr"], cfg.precision, device)
            _, wall, _ = timed_optimize(decode, x, z0, fn, n_it, a["lr"], cfg.precision, device)
            per_loss.append({"arm": arm, "loss": used_spec, "note": note, "config": cfg.name,
                             "experiment_iterations": a["iterations"], "measured_iterations": n_it,
                             "image_iterations_per_s": cfg.batch * n_it / wall})
        del model, decode
    result["per_loss"] = per_loss


# --------------------------------------------------------------------------------------------
# orchestration: real snakemake runs
# --------------------------------------------------------------------------------------------


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = copy.deepcopy(v)
    return a


def _write_random_sd_vae(folder: Path) -> None:
    """A diffusers folder holding the SD-VAE architecture with random weights, so the pipeline
    loads a full-size model from disk exactly as it loads the real one."""
    from latentopt.autoencoders import load_autoencoder

    load_autoencoder(SD_VAE_SPEC).model.save_pretrained(str(folder))


def _orch_dataset(name: str, args, mode: dict, device_type: str, workdir: Path) -> dict:
    """The config overrides for one orchestration data set."""
    from latentopt.demo_data import write_demo_data

    if name == "demo":
        root = workdir / "demo_data"
        if not root.is_dir():
            write_demo_data(root)
        over: dict[str, Any] = {"data": {"root": str(root)}}
        if mode["orch_splits"]:
            over["data"]["splits"] = list(mode["orch_splits"])
        files = [REPO / "config.yaml", REPO / "demo" / "config.yaml"]
        label = "demo (demo/config.yaml: synthetic KL, 8 small skimage crops)"
        if mode["orch_splits"]:
            label += f", splits {mode['orch_splits']}"
        return {"name": "demo", "label": label, "configfiles": files, "overrides": over}
    n = args.n_images or mode["n_images"]
    per_split = math.ceil(n / 3)
    over = {"allow_synthetic": True, "metric_networks": {"lpips_random_trunk": True, "inception_synthetic": True},
            "data": {"limit_per_split": per_split}}
    if BSDS_IMAGES.is_dir():
        over["data"]["root"] = str(BSDS_IMAGES.parents[2])
        source = "BSDS500"
    else:
        import numpy as np
        from PIL import Image

        root = workdir / "n_images_data"
        imgs, _ = load_images(3 * per_split, 321, 481, "skimage")
        for i, arr in enumerate(imgs):
            split = ("train", "val", "test")[i % 3]
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(arr)).save(root / split / f"img{i:04d}.png")
        over["data"]["root"] = str(root)
        source = "skimage crops 481x321 (BSDS500 absent)"
    if device_type == "cuda":
        folder = workdir / "sd_vae_random"
        if not folder.is_dir():
            _write_random_sd_vae(folder)
        over["model"] = {"kind": "diffusers_kl", "source": str(folder), "subfolder": None}
        model = "SD-VAE architecture, random weights, loaded from a local diffusers folder"
    else:
        over["preprocess"] = {"crop_box": list(args.size or mode["size_cpu"])}
        _, spec = choose_model(args.model if args.model != "sd_vae" else "auto", "cpu")
        over["model"] = {k: v for k, v in spec.items()} if spec["kind"] != "synthetic_kl" else {"kind": "synthetic_kl", "seed": 0}
        model = spec["kind"] if spec["kind"] != "taesd" else "TAEF2"
        model += f", centre crop {over['preprocess']['crop_box']}"
    for arm in ("lpips",):  # LPIPS trunk weights are not needed for timing
        over.setdefault("losses", {})[arm] = {"loss": {"name": "lpips", "net": "alex", "random_trunk": True}}
    return {"name": f"n_images_{3 * per_split}", "label": f"{3 * per_split} images ({source}; {model})",
            "configfiles": [REPO / "config.yaml"], "overrides": over}


def _snakemake_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "snakemake"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "snakemake"]


def _read_tsv_s(path: Path) -> float | None:
    try:
        lines = path.read_text().splitlines()
        return float(lines[1].split("\t")[0])
    except (OSError, IndexError, ValueError):
        return None


def run_orchestration_once(ds: dict, ipj: int, args, mode: dict, device_type: str, workdir: Path,
                           repeat: int = 0) -> dict:
    import yaml

    from latentopt import layout
    from latentopt.config import validate_config
    from latentopt.plan import build_plan

    results = workdir / f"{ds['name']}_ipj{ipj}_r{repeat}"
    over = copy.deepcopy(ds["overrides"])
    run = {"images_per_job": ipj, "device": "cuda" if device_type == "cuda" else "cpu"}
    if args.orch_precision:
        run["precision"] = args.orch_precision
    if args.orch_batch_size:
        run["batch_size"] = args.orch_batch_size
    # no quality gate: job grouping and ordering as in the runs measured before it existed
    _merge(over, {"results_dir": str(results), "run": run, "quality_gate": {"images_per_loss": 0}})
    losses = args.orch_losses or mode["orch_losses"]
    if losses:
        over["use_losses"] = list(losses)
    config: dict = {}
    for f in ds["configfiles"]:
        _merge(config, yaml.safe_load(Path(f).read_text()))
    _merge(config, over)
    its = args.orch_iterations or mode["orch_iterations"]
    if its:
        for arm in config["losses"]:
            over.setdefault("losses", {}).setdefault(arm, {})["iterations"] = its
        _merge(config, over)
    cfg_file = workdir / f"{ds['name']}_ipj{ipj}_r{repeat}.yaml"
    cfg_file.write_text(yaml.safe_dump(over, sort_keys=False))
    validate_config(config)
    plan = build_plan(config)
    arms = [a for a in plan.arms if a != layout.BASELINE] if not args.orch_baseline else plan.arms
    targets = [str(layout.per_image(results, arm, s, e.image_id, "json"))
               for arm in arms for s, es in plan.splits.items() for e in es]
    snakefile = Path(args.snakefile) if args.snakefile else REPO / "Snakefile"
    # targets first: --quiet and --configfile take a variable number of values
    cmd = _snakemake_cmd() + targets + ["-s", str(snakefile), "--cores", str(args.snakemake_cores),
                                        "--nolock", "--retries", "0"]
    if device_type == "cuda":
        cmd += ["--resources", f"gpu={args.gpu_jobs}"]
    cmd += ["--quiet", "all", "--configfile", *map(str, ds["configfiles"]), str(cfg_file)]
    run_dir = workdir / f"wd_{ds['name']}_ipj{ipj}_r{repeat}"
    run_dir.mkdir(exist_ok=True)
    log(f"orchestration: {ds['name']} images_per_job={ipj}: {len(plan.chunks)} chunks x {len(arms)} arm(s)")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, timeout=args.snakemake_timeout)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"data": ds["name"], "images_per_job": ipj, "repeat": repeat, "arms": arms,
                           "gpu_jobs": args.gpu_jobs if device_type == "cuda" else None,
                           "n_images": plan.n_images, "loadavg_before": _loadavg(),
                           "pipeline": {"model": config["model"]["kind"], "precision": config["run"]["precision"],
                                        "batch_size": config["run"]["batch_size"],
                                        "iterations": {a: config["losses"][a]["iterations"] for a in arms}},
                           "wall_s": wall, "returncode": proc.returncode,
                           "n_prepare_jobs": len(plan.chunks), "n_optimize_jobs": len(plan.chunks) * len(arms)}
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout)[-3000:]
        return row
    opt_sum, n_ok, jobs = 0.0, 0, []
    for arm in arms:
        for chunk in plan.chunks:
            job_opt = 0.0
            for image_id in chunk.image_ids:
                rec = json.loads(layout.per_image(results, arm, chunk.split, image_id, "json").read_text())
                if rec["status"] == "ok":
                    n_ok += 1
                job_opt += float(rec.get("optimization_time_s") or 0.0)
            opt_sum += job_opt
            s = _read_tsv_s(results / "benchmarks" / "optimize" / arm / f"{chunk.name}.tsv")
            jobs.append({"arm": arm, "chunk": chunk.name, "images": len(chunk.image_ids), "job_s": s,
                         "optimization_s": job_opt})
    job_sum = sum(j["job_s"] for j in jobs if j["job_s"] is not None)
    row.update(
        images_ok=n_ok, image_records=len(arms) * plan.n_images,
        optimization_time_sum_s=opt_sum, optimize_job_time_sum_s=job_sum,
        efficiency=opt_sum / wall,
        overhead_per_optimize_job_s=(job_sum - opt_sum) / max(1, len(jobs)),
        driver_and_prepare_s=wall - job_sum,
        jobs=jobs,
    )
    if not args.keep_results:
        shutil.rmtree(results, ignore_errors=True)
    return row


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares y = a + b x with a, b >= 0 (b = 0 when x does not vary or the fit says b < 0,
    a = 0 when the fit says a < 0): timing noise must not produce negative overheads."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    if len(set(xs)) < 2:
        return max(0.0, my), 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    if b < 0:
        return max(0.0, my), 0.0
    a = my - b * mx
    if a < 0:
        b = max(0.0, sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs))
        a = 0.0
    return a, b


def overhead_model(runs: list[dict]) -> dict | None:
    """Per-job start-up a, per-image in-job extra b (encode, metrics, writing), driver d and per
    prepare-job p, fitted on the measured runs (sequential jobs: --cores 1)."""
    ok = [r for r in runs if r.get("returncode") == 0]
    if not ok:
        return None
    jobs = [j for r in ok for j in r["jobs"] if j["job_s"] is not None]
    a, b = _fit([j["images"] for j in jobs], [j["job_s"] - j["optimization_s"] for j in jobs])
    d, p = _fit([r["n_prepare_jobs"] for r in ok], [r["driver_and_prepare_s"] for r in ok])
    return {"optimize_job_startup_s": a, "per_image_in_job_extra_s": b, "driver_s": d, "per_prepare_job_s": p,
            "fitted_on": sorted({r["data"] for r in ok}),
            "model": "wall = driver_s + per_prepare_job_s*prepare_jobs + optimize_job_startup_s*optimize_jobs"
                     " + per_image_in_job_extra_s*image_records + sum(optimization_time_s)"}


def run_orchestration(args, mode: dict, device_type: str, result: dict) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="latentopt_bench_"))
    runs, sets, errors = [], [], []
    try:
        names = args.orch_sets or mode["orch_sets"]
        for name in names:
            ds = _orch_dataset(name, args, mode, device_type, workdir)
            sets.append({"name": ds["name"], "label": ds["label"]})
            values = list(args.images_per_job or mode["images_per_job"])
            # repeats alternate the order, so a drift of the machine's load hits every value alike
            order = [(rep, ipj) for rep in range(args.orch_repeats)
                     for ipj in (values if rep % 2 == 0 else values[::-1])]
            for rep, ipj in order:
                try:
                    row = run_orchestration_once(ds, ipj, args, mode, device_type, workdir, rep)
                except subprocess.TimeoutExpired:
                    row = {"data": ds["name"], "images_per_job": ipj, "returncode": None, "repeat": rep,
                           "error": f"snakemake exceeded {args.snakemake_timeout} s"}
                runs.append(row)
                write_json({**result, "orchestration_partial": runs}, partial_path(args.out))
                if row.get("error"):
                    errors.append(f"{ds['name']} images_per_job={ipj}: {row['error'][-500:]}")
                    log(f"  failed: {row['error'][-500:]}")
                else:
                    log(f"  wall {row['wall_s']:.1f} s, sum optimization {row['optimization_time_sum_s']:.1f} s, "
                        f"efficiency {row['efficiency']:.3f}")
    finally:
        if not args.keep_results:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = []
    for name in dict.fromkeys(r["data"] for r in runs):
        for ipj in dict.fromkeys(r["images_per_job"] for r in runs if r["data"] == name):
            ok = [r for r in runs if r["data"] == name and r["images_per_job"] == ipj and not r.get("error")]
            if ok:
                summary.append({"data": name, "images_per_job": ipj, "runs": len(ok),
                                "efficiency_median": statistics.median(r["efficiency"] for r in ok),
                                "wall_s_median": statistics.median(r["wall_s"] for r in ok),
                                "optimization_time_sum_s_median": statistics.median(r["optimization_time_sum_s"] for r in ok),
                                "jobs": f"{ok[0]['n_prepare_jobs']}+{ok[0]['n_optimize_jobs']}"})
    result["orchestration"] = {
        "summary": summary,
        "definition": "efficiency = sum of per-image optimization_time_s (records of the loss arms run) / "
                      "wall time of the snakemake command (DAG build, prepare and optimize jobs, each job's "
                      "python start-up + torch/diffusers import + model load)",
        "snakemake_cores": args.snakemake_cores,
        "data_sets": sets, "runs": runs, "errors": errors,
        "overhead_model": {},
    }
    for name in {r["data"] for r in runs}:
        m = overhead_model([r for r in runs if r["data"] == name])
        if m:
            result["orchestration"]["overhead_model"][name] = m


# --------------------------------------------------------------------------------------------
# projection
# --------------------------------------------------------------------------------------------


def projection(result: dict, device_type: str, mode_name: str, args) -> dict:
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    per_loss = result.get("per_loss") or []
    splits = dict(BSDS500_SPLIT_SIZES)  # the full experiment, whatever subset of images this machine holds
    n_images = sum(splits.values())
    ipj = int(cfg["run"]["images_per_job"])
    out: dict[str, Any] = {"n_images": n_images, "images_per_job": ipj, "splits": splits}
    if not per_loss:
        out["note"] = "no per-loss throughput measured"
        return out
    opt_s = sum(n_images * p["experiment_iterations"] / p["image_iterations_per_s"] for p in per_loss)
    out["per_loss"] = {p["arm"]: {"iterations": p["experiment_iterations"],
                                  "image_iterations_per_s": p["image_iterations_per_s"],
                                  "optimization_s": n_images * p["experiment_iterations"] / p["image_iterations_per_s"]}
                       for p in per_loss}
    out["optimization_s"] = opt_s
    flops = result.get("flops", {}).get("per_image_iteration")
    if flops:
        out["experiment_model_pflop"] = n_images * sum(p["experiment_iterations"] for p in per_loss) * flops / 1e15
    models = result.get("orchestration", {}).get("overhead_model", {})
    m = next((models[k] for k in models if k.startswith("n_images")), None) or models.get("demo")
    chunks = sum(math.ceil(n / ipj) for n in splits.values())
    arms = 1 + len(per_loss)
    if m:
        overhead = (m["driver_s"] + m["per_prepare_job_s"] * chunks + m["optimize_job_startup_s"] * chunks * arms
                    + m["per_image_in_job_extra_s"] * n_images * arms)
        out.update(orchestration_overhead_s=overhead, overhead_model_from=m["fitted_on"],
                   prepare_jobs=chunks, optimize_jobs=chunks * arms)
    else:
        overhead = None
        out["orchestration_overhead_s"] = None
    out["total_s"] = opt_s + (overhead or 0.0)
    out["total_min"] = out["total_s"] / 60
    out["upper_bound"] = "every image runs all its iterations (per-image early stopping only shortens it)"
    setup = result.get("setup", {})
    full_size = setup.get("model", {}).get("spec", {}).get("block_out_channels") == SD_VAE_SPEC["block_out_channels"] \
        and setup.get("model", {}).get("spec", {}).get("layers_per_block") == 2
    gpu = (result.get("peak_flops") or {}).get("gpu") or ""
    size_ok = (setup.get("images", {}).get("height"), setup.get("images", {}).get("width")) == (320, 480)
    if device_type == "cuda" and full_size and size_ok and "H100" in gpu.upper():
        out["meets_15_min_on_one_h100"] = out["total_s"] <= 15 * 60 and overhead is not None
        out["claim"] = "measured on an H100 with the full-size SD-VAE at 480x320"
    else:
        out["meets_15_min_on_one_h100"] = None
        out["claim"] = ("none: this projection is for the measured device/model/size "
                        f"({device_type}, {setup.get('model', {}).get('label')}, "
                        f"{setup.get('images', {}).get('height')}x{setup.get('images', {}).get('width')}); "
                        "the <= 15 min on one H100 question needs `--device cuda --full` on an H100")
    return out


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


def _fmt(v, spec=".2f", none="-"):
    if v is None:
        return none
    if isinstance(v, bool):
        return "yes" if v else "NO"
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def format_tables(result: dict) -> str:
    lines = []
    m = result["machine"]
    lines.append(f"Machine: {m['description']} | device {m['device']} | torch {m['torch']} | load avg "
                 f"{m.get('loadavg_start')} -> {m.get('loadavg_end')}")
    lines.append(f"GPU figures: {result['gpu_figures']}")
    load = m.get("loadavg_start") or [0.0]
    if m.get("cpu_count") and max(load[0], (m.get("loadavg_end") or [0.0])[0]) > 0.75 * m["cpu_count"]:
        lines.append(f"WARNING: the machine was busy (load average {load[0]} on {m['cpu_count']} cores): "
                     "absolute times are inflated and ratios noisier than on an idle machine")
    setup = result.get("setup")
    if setup:
        lines.append(f"Model: {setup['model']['label']}; images: {setup['images']['n']} x "
                     f"{setup['images']['height']}x{setup['images']['width']} from {setup['images']['source']}; "
                     f"loss {setup['loss']['arm']}; {setup['iterations']} iterations (+{setup['warmup_iterations']} warm-up)")
        fl = result.get("flops", {})
        ref = fl.get("sd_vae_reference_480x320", {})
        lines.append(f"FLOPs per image-iteration (counted): {fl.get('per_image_iteration', 0) / 1e9:.3f} GFLOP; "
                     f"SD-VAE decoder at 480x320 (counted on meta): forward {ref.get('decoder_forward', 0) / 1e12:.3f} TFLOP, "
                     f"fwd+bwd {ref.get('decoder_forward_backward_frozen', 0) / 1e12:.3f} TFLOP")
    tp = result.get("throughput")
    if tp:
        head = ["config", "img-it/s", "ratio", "cpu-ratio", "act MB/img", "peak MB/img", "MFU", "PSNR", "dPSNR",
                "dSSIM", "dLPIPS", "=fp32"]
        rows = []
        for r in tp["configs"]:
            q = r.get("quality") or {}
            rows.append([r["name"], _fmt(r["image_iterations_per_s"], ".3f"), _fmt(r["ratio_to_baseline"], ".3f"),
                         _fmt(r.get("cpu_time_ratio_to_baseline"), ".3f"),
                         _fmt(r.get("saved_activations_per_image_mb"), ".1f"),
                         _fmt(r.get("peak_memory_per_image_mb"), ".1f"), _fmt(r.get("mfu"), ".3f"),
                         _fmt(q.get("psnr_final_mean"), ".2f"), _fmt(q.get("delta_psnr_mean"), "+.3f"),
                         _fmt(q.get("delta_ssim_mean"), "+.4f"), _fmt(q.get("delta_lpips_mean"), "+.4f"),
                         _fmt(q.get("matches_fp32"))])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines.append("")
        lines.append("Throughput (ratio = img-it/s over the fp32 b1 baseline; deltas vs fp32 on the same images)")
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for row in rows:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        for s in tp["skipped"]:
            lines.append(f"  skipped {s['name']}: {s['reason']}")
        for note in tp["checkpointing"]:
            lines.append(f"  checkpointing {note}")
        cc = result.get("checkpointing_check") or {}
        if "saved_fraction" in cc:
            lines.append(f"  diffusers enable_gradient_checkpointing() on the frozen SD-VAE decoder ({cc['size']}, eval): "
                         f"saved activations x{cc['saved_fraction']:.2f}, latent-gradient max diff "
                         f"{cc['latent_grad_max_abs_diff']:.1e} -> {'works' if cc['effective'] else 'NO EFFECT'}")
        for prec, v in tp["precision_verdicts"].items():
            lines.append(f"  {prec}: matches fp32 in every config: {_fmt(v['all_match_fp32'])} "
                         f"(worst |mean dPSNR| {v['worst_delta_psnr_mean']:.3f} dB; best ratio {v['best_ratio_to_baseline']:.2f})")
        if tp.get("recommended"):
            lines.append(f"  fastest config that matches fp32: {tp['recommended']['name']} "
                         f"(x{tp['recommended']['ratio_to_baseline']:.2f})")
    if result.get("per_loss"):
        lines.append("")
        lines.append("Per-loss throughput at that config: " + "; ".join(
            f"{p['arm']} {p['image_iterations_per_s']:.3f} img-it/s" for p in result["per_loss"]))
    orch = result.get("orchestration")
    if orch:
        lines.append("")
        lines.append(f"Orchestration (snakemake --cores {orch['snakemake_cores']}; efficiency = sum optimization_time_s / wall)")
        head = ["data", "img/job", "jobs prep+opt", "wall s", "sum opt s", "efficiency", "overhead/opt job s",
                "load before"]
        rows = []
        for r in orch["runs"]:
            if r.get("error"):
                rows.append([r["data"], r["images_per_job"], "-", "-", "-", "FAILED", "-", "-"])
                continue
            rows.append([r["data"], r["images_per_job"], f"{r['n_prepare_jobs']}+{r['n_optimize_jobs']}",
                         _fmt(r["wall_s"], ".1f"), _fmt(r["optimization_time_sum_s"], ".1f"),
                         _fmt(r["efficiency"], ".3f"), _fmt(r["overhead_per_optimize_job_s"], ".1f"),
                         _fmt((r.get("loadavg_before") or [None])[0], ".1f")])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for row in rows:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        if any(sm["runs"] > 1 for sm in orch.get("summary", [])):
            lines.append("  medians: " + "; ".join(
                f"{sm['data']} ipj {sm['images_per_job']}: efficiency {sm['efficiency_median']:.3f} "
                f"(wall {sm['wall_s_median']:.0f} s, {sm['runs']} runs)" for sm in orch["summary"]))
        for name, mdl in orch["overhead_model"].items():
            lines.append(f"  {name}: job start-up {mdl['optimize_job_startup_s']:.1f} s, per image in job "
                         f"{mdl['per_image_in_job_extra_s']:.2f} s, driver {mdl['driver_s']:.1f} s, "
                         f"per prepare job {mdl['per_prepare_job_s']:.1f} s")
    pj = result.get("projection")
    if pj and pj.get("total_s") is not None:
        lines.append("")
        oh = pj.get("orchestration_overhead_s")
        lines.append(f"Projection ({pj['n_images']} images, losses {', '.join(pj.get('per_loss', {}))}, "
                     f"images_per_job {pj['images_per_job']}): optimization {pj['optimization_s'] / 60:.1f} min + "
                     f"orchestration {_fmt(oh / 60 if oh is not None else None, '.1f')} min = {pj['total_min']:.1f} min "
                     f"(upper bound); meets <= 15 min on one H100: {_fmt(pj['meets_15_min_on_one_h100'], none='not claimed')}")
        lines.append(f"  claim: {pj['claim']}")
    return "\n".join(lines)


def _finite(obj):
    """JSON-safe copy: non-finite floats (e.g. PSNR of an exact reconstruction) become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(result: dict, path: Path) -> None:
    """Atomically write the (JSON-safe) result to path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(result), indent=1, allow_nan=False, default=str))
    os.replace(tmp, path)


def partial_path(out) -> Path:
    """Where a run writes what it has measured so far (removed once the full JSON is written)."""
    return Path(out).with_suffix(".partial.json")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick", help="CI-sized run (default)")
    g.add_argument("--full", action="store_const", dest="mode", const="full", help="the full GPU run")
    g.add_argument("--smoke", action="store_const", dest="mode", const="smoke", help="seconds-long test run")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "benchmark.json"))
    p.add_argument("--machine", default=None, help="how to name the machine in the output (default: detected)")
    p.add_argument("--sections", default="throughput,orchestration", help="comma list: throughput, orchestration")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the throughput section (default on CPU: 1, as the "
                        "pipeline's jobs run: Snakemake sets OMP_NUM_THREADS to the rule's threads = 1; "
                        "0 = torch's default)")
    p.add_argument("--model", default="auto", choices=["auto", "sd_vae", "taef2", "synthetic_kl"])
    p.add_argument("--images", default="auto", choices=["auto", "bsds", "skimage"])
    p.add_argument("--size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=None,
                   help="crop HEIGHTxWIDTH (default by mode/device)")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="fp32 batch sizes only (drops the precision/layout extras)")
    p.add_argument("--configs", type=lambda s: [parse_config(v) for v in s.split(",")], default=None,
                   help="exactly these configs, e.g. fp32:b16,tf32:b16:compile,bf16:b8:cl:ckpt "
                        "(precision:bBATCH[:cl][:compile][:ckpt]); fp32 b1 and the fp32 quality "
                        "reference are added")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="torch.backends.cudnn.benchmark = True (autotuning; the pipeline leaves it off)")
    p.add_argument("--precisions", type=lambda s: s.split(","), default=None, help="keep only these precisions")
    p.add_argument("--iterations", type=int, default=None, help="timed Adam iterations per config")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--loss-iterations", type=int, default=None, help="timed iterations per loss (projection)")
    p.add_argument("--compile", action="store_true", help="add a torch.compile config (default only on --full)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--max-dpsnr", type=float, default=0.05, help="|mean dPSNR| (dB) for 'matches fp32'")
    p.add_argument("--max-dssim", type=float, default=0.001)
    p.add_argument("--max-dlpips", type=float, default=0.001)
    p.add_argument("--orch-sets", type=lambda s: s.split(","), default=None, help="demo,n_images")
    p.add_argument("--images-per-job", type=lambda s: [int(v) for v in s.split(",")], default=None)
    p.add_argument("--n-images", type=int, default=None, help="images of the N-image orchestration run")
    p.add_argument("--orch-losses", type=lambda s: s.split(","), default=None)
    p.add_argument("--orch-iterations", type=int, default=None, help="override every loss's iterations")
    p.add_argument("--orch-baseline", action="store_true", help="also run the baseline arm")
    p.add_argument("--orch-repeats", type=int, default=1, help="rounds over the images_per_job values (median reported)")
    p.add_argument("--orch-precision", choices=["fp32", "tf32", "bf16"], default=None,
                   help="run.precision of the pipeline runs (default: config.yaml's)")
    p.add_argument("--orch-batch-size", type=int, default=None, help="run.batch_size of the pipeline runs")
    p.add_argument("--merge", default=None,
                   help="an earlier benchmark JSON: sections this run skips are taken from it (e.g. a GPU "
                        "run split into --sections throughput and --sections orchestration)")
    p.add_argument("--snakefile", default=None)
    p.add_argument("--snakemake-cores", type=int, default=1)
    p.add_argument("--gpu-jobs", type=int, default=1,
                   help="--resources gpu=N of the GPU pipeline runs: 2 per GPU lets the next job start "
                        "up while the current one computes (the GPU lease keeps one computing)")
    p.add_argument("--snakemake-timeout", type=int, default=1800)
    p.add_argument("--keep-results", action="store_true")
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    mode = MODES[args.mode]
    started = time.perf_counter()
    import torch

    device_name = args.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but no CUDA device is available")
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    import diffusers

    try:
        from importlib.metadata import version
        snakemake_version = version("snakemake")
    except Exception:  # noqa: BLE001
        snakemake_version = None
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    desc = args.machine or (f"{gpu}" if gpu else f"{os.cpu_count()}-core CPU ({_cpu_model()})")
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION, "mode": args.mode,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"description": desc, "device": str(device), "gpu": gpu, "cpu_model": _cpu_model(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "diffusers": diffusers.__version__, "snakemake": snakemake_version,
                    "loadavg_start": _loadavg(), "git_commit": _git("rev-parse", "HEAD"),
                    "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))},
        "gpu_figures": ("measured on " + gpu) if gpu else
        "still to be measured: no GPU in this run (MFU, peak GPU memory, TF32, the 15-min H100 verdict "
        "need `python bench/benchmark.py --device cuda --full` on an H100)",
    }
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if "throughput" in sections:
        run_throughput(args, mode, device, result)
    if "orchestration" in sections:
        run_orchestration(args, mode, device.type, result)
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        taken = [k for k in ("setup", "flops", "peak_flops", "checkpointing_check", "throughput", "per_loss",
                             "orchestration") if k not in result and k in earlier]
        for k in taken:
            result[k] = earlier[k]
        result["merged_from"] = {"path": str(args.merge), "sections": taken, "created": earlier.get("created"),
                                 "machine": earlier.get("machine")}
    result["projection"] = projection(result, device.type, args.mode, args)
    result["machine"]["loadavg_end"] = _loadavg()
    result["elapsed_s"] = time.perf_counter() - started
    out = Path(args.out)
    write_json(result, out)
    partial_path(out).unlink(missing_ok=True)
    print(format_tables(result))
    print(f"\n(JSON: {out}; {result['elapsed_s']:.0f} s)")
    failed = result.get("orchestration", {}).get("errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
