"""Counted cost of a preset's decoder, from its published architecture alone (no weights).

The model is built on PyTorch's ``meta`` device (shapes, no memory, no arithmetic) from
:attr:`latentopt.models.families.Preset.published_config`, and one decode of a latent for a
``height`` x ``width`` image is counted with ``torch.utils.flop_counter.FlopCounterMode``: the
FLOPs of its matrix products and convolutions (2 per multiply-add; normalisations, activations
and resampling are not counted), forward alone and forward + backward to the latent (what one
Adam step of the latent optimization costs). ``python -m latentopt.models.cost`` prints the table.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentopt.models.families import FAMILIES, PRESETS, downsample_factor
from latentopt.models.taesd import TAESD


def _meta_model(name: str):
    p = PRESETS[name]
    if p.published_config is None:
        return None
    with torch.device("meta"):
        if p.variant is not None:  # the TAESD-format networks (AutoencoderTiny holds the same layers)
            return TAESD(p.variant), FAMILIES["taesd"]
        import diffusers

        family = FAMILIES[p.family]
        return getattr(diffusers, family.diffusers_class)(**p.published_config), family


def decode_cost(name: str, height: int = 320, width: int = 480) -> dict | None:
    """{"latent_shape", "decoder_parameters", "total_parameters", "fp32_megabytes", "tflop_forward",
    "tflop_forward_backward"} of one decode at height x width; None where the preset's
    published config is not known offline."""
    built = _meta_model(name)
    if built is None:
        return None
    model, family = built
    if family.diffusers_class is None:
        channels, f = model.latent_channels, 8
        decode = model.decoder
    else:
        channels, f = model.config[family.channels_key], downsample_factor(family, model.config)

        def decode(z):
            return model.decode(z.unsqueeze(2) if family.frame_axis else z).sample

    parts = [model.decoder] + ([model.post_quant_conv] if getattr(model, "post_quant_conv", None) is not None else [])
    z = torch.empty(1, channels, height // f, width // f, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        y = decode(z)
    with FlopCounterMode(display=False) as backward:
        y.float().sum().backward()
    total = sum(p.numel() for p in model.parameters())
    fwd, bwd = forward.get_total_flops(), backward.get_total_flops()
    return {
        "latent_shape": [channels, height // f, width // f],
        "decoder_parameters": int(sum(p.numel() for part in parts for p in part.parameters())),
        "total_parameters": int(total),
        "fp32_megabytes": round(total * 4 / 1e6, 1),
        "tflop_forward": fwd / 1e12,
        "tflop_forward_backward": (fwd + bwd) / 1e12,
    }


def main() -> None:
    print("| preset | class | latent (480x320) | decoder params | TFLOP fwd | TFLOP fwd+bwd | fp32 MB |")
    print("|---|---|---|---|---|---|---|")
    for name, p in PRESETS.items():
        cls = FAMILIES[p.family].diffusers_class or "TAESD (ours)"
        c = decode_cost(name)
        if c is None:
            print(f"| {name} | {cls} | | not counted: {p.config_from} | | | |")
            continue
        shape = "x".join(map(str, c["latent_shape"]))
        print(f"| {name} | {cls} | {shape} | {c['decoder_parameters']:,} | {c['tflop_forward']:.3f} | "
              f"{c['tflop_forward_backward']:.3f} | {c['fp32_megabytes']} |")


if __name__ == "__main__":
    main()
