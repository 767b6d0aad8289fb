"""The TAESD family of tiny autoencoders (madebyollin), as plain ``nn.Sequential`` networks.

Written from the published architecture so that the released ``*_encoder.pth`` /
``*_decoder.pth`` state dicts load with ``strict=True`` (keys are Sequential indices):

* ``taesd`` (Stable Diffusion 1/2/XL latents): 4 latent channels;
* ``taef1`` (FLUX.1): 16 latent channels;
* ``taef2`` (FLUX.2): 32 latent channels, and the three lowest-resolution blocks of the encoder
  (indices 11-13) and decoder (3-5) first add ``pool(x)``, a 1x1-conv / GroupNorm(4) / ReLU / 1x1-conv
  bottleneck, to their input ("mid-block GroupNorm").

All variants downsample by 8. The encoder takes RGB in [0, 1] and returns the raw latent (no
scaling, no uint8 quantisation); the decoder starts with the soft clamp ``tanh(z/3)*3`` and returns
RGB nominally in [0, 1] (clamp it). Diffusers' ``AutoencoderTiny`` holds the same ``taesd``/``taef1``
networks under ``encoder.layers.i`` / ``decoder.layers.i`` (the decoder's soft clamp is not a layer
there, so its indices are one lower); :func:`state_dicts_from_diffusers` converts.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from latentopt.workflow.model_specs import TAESD_VARIANTS
DOWNSAMPLE_FACTOR = 8
WIDTH = 64


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of the latent to (-3, 3): ``tanh(x / 3) * 3``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block ``relu(conv(x) + skip(x))``; with ``midblock_gn`` first ``x = x + pool(x)``."""

    def __init__(self, n_in: int, n_out: int, midblock_gn: bool = False):
        super().__init__()
        self.conv = nn.Sequential(
            conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out)
        )
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool: nn.Module | None = None
        if midblock_gn:
            n_gn = 4 * n_in
            self.pool = nn.Sequential(
                nn.Conv2d(n_in, n_gn, 1, bias=False),
                nn.GroupNorm(4, n_gn),
                nn.ReLU(inplace=True),
                nn.Conv2d(n_gn, n_in, 1, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def make_encoder(latent_channels: int = 4, midblock_gn: bool = False) -> nn.Sequential:
    w = WIDTH
    gn = {"midblock_gn": midblock_gn}
    return nn.Sequential(
        conv(3, w), Block(w, w),
        conv(w, w, stride=2, bias=False), Block(w, w), Block(w, w), Block(w, w),
        conv(w, w, stride=2, bias=False), Block(w, w), Block(w, w), Block(w, w),
        conv(w, w, stride=2, bias=False), Block(w, w, **gn), Block(w, w, **gn), Block(w, w, **gn),
        conv(w, latent_channels),
    )  # fmt: skip


def make_decoder(latent_channels: int = 4, midblock_gn: bool = False) -> nn.Sequential:
    w = WIDTH
    gn = {"midblock_gn": midblock_gn}
    return nn.Sequential(
        Clamp(), conv(latent_channels, w), nn.ReLU(),
        Block(w, w, **gn), Block(w, w, **gn), Block(w, w, **gn),
        nn.Upsample(scale_factor=2), conv(w, w, bias=False),
        Block(w, w), Block(w, w), Block(w, w),
        nn.Upsample(scale_factor=2), conv(w, w, bias=False),
        Block(w, w), Block(w, w), Block(w, w),
        nn.Upsample(scale_factor=2), conv(w, w, bias=False),
        Block(w, w), conv(w, 3),
    )  # fmt: skip


class TAESD(nn.Module):
    """Encoder and decoder of one TAESD-family variant (randomly initialised until loaded)."""

    def __init__(self, variant: str = "taesd"):
        super().__init__()
        if variant not in TAESD_VARIANTS:
            raise ValueError(f"unknown TAESD variant {variant!r}; expected one of {sorted(TAESD_VARIANTS)}")
        self.variant = variant
        self.latent_channels = TAESD_VARIANTS[variant]["latent_channels"]
        gn = TAESD_VARIANTS[variant]["midblock_gn"]
        self.encoder = make_encoder(self.latent_channels, gn)
        self.decoder = make_decoder(self.latent_channels, gn)

    @classmethod
    def from_files(cls, encoder_path: str | Path, decoder_path: str | Path, variant: str) -> TAESD:
        """Load the two released state dicts with ``strict=True``."""
        model = cls(variant)
        for part, path in (("encoder", encoder_path), ("decoder", decoder_path)):
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
            try:
                getattr(model, part).load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(
                    f"{path} is not a {variant} {part} state dict (wrong variant?): {exc}"
                ) from exc
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).clamp(0, 1)


def state_dicts_from_diffusers(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Split a diffusers ``AutoencoderTiny`` state dict into TAESD encoder/decoder state dicts."""
    enc, dec = {}, {}
    for key, value in state.items():
        m = re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(.+)", key)
        if m is None:
            raise ValueError(f"unexpected AutoencoderTiny key {key!r}")
        part, index, rest = m.group(1), int(m.group(2)), m.group(3)
        if part == "encoder":
            enc[f"{index}.{rest}"] = value
        else:
            dec[f"{index + 1}.{rest}"] = value
    return enc, dec
