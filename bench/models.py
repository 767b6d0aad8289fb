"""Benchmark images (BSDS500 crops, else scikit-image photos) and models (SD-VAE architecture,
TAEF2, small synthetic KL), and the variants each configuration runs."""

from __future__ import annotations

import copy
import math

from .common import BSDS_IMAGES, TAEF2_DIR
from .configs import Config

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
SMALL_KL_SPEC = {"kind": "synthetic_kl", "seed": 0}  # latentopt's default tiny synthetic KL


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

    from latentopt.data.images import read_rgb

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

    from latentopt.models.taesd import Block

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
    if cfg.compile:  # what the pipeline runs: latentopt.optimize.decoder_step (padded batches, dynamic=False)
        if decode != model.decode:
            raise ValueError("compile with per-block checkpointing of a TAESD model is not supported")
        decode = cfg.step().decode(model, cfg.batch)
    return model, decode, note
