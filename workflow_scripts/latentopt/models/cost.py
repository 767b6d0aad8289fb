"""Counted cost of a preset's decoder, from its published architecture alone (no weights).

The model is built on PyTorch's ``meta`` device (shapes, no memory, no arithmetic) from
:attr:`latentopt.models.families.Preset.published_config`, and one decode of a latent for a
``height`` x ``width`` image is counted with ``torch.utils.flop_counter.FlopCounterMode``: the
FLOPs of its matrix products and convolutions (2 per multiply-add; normalisations, activations
and resampling are not counted), forward alone and forward + backward to the latent (what one
Adam step of the latent optimization costs: the model is frozen, as the loader freezes it, so the
backward pass computes gradients for the latent only, none for the weights). An image side that
is no multiple of the preset's downsampling factor is centre-cropped to the largest multiple
(``preprocess.center_crop``'s rule: 480x320 -> 448x320 at f64); the cost says which size it counted.

``python -m latentopt.models.cost`` prints the presets table of docs/autoencoders.md (between its
``cost-table`` markers; tests/test_zoo.py checks that the page shows what this prints).
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


def _frozen(model):
    """eval mode (BatchNorm uses its running statistics) and no weight gradients: the loader's model."""
    return model.eval().requires_grad_(False)


def decode_cost(name: str, height: int = 320, width: int = 480) -> dict | None:
    """{"image", "latent_shape", "decoder_parameters", "total_parameters", "weights_fp32_megabytes",
    "tflop_forward", "tflop_forward_backward"} of one decode at height x width (cropped to a multiple
    of the downsampling factor: "image" is the size counted); None where the preset's published
    config is not known offline. "weights_fp32_megabytes" is total_parameters x 4 bytes / 1e6: the
    weights' size at fp32, not the size of the hub's file (fp16/bf16 files are half of it)."""
    built = _meta_model(name)
    if built is None:
        return None
    model, family = built
    model = _frozen(model)
    if family.diffusers_class is None:
        channels, f = model.latent_channels, 8
        decode = model.decoder
    else:
        channels, f = model.config[family.channels_key], downsample_factor(family, model.config)

        def decode(z):
            return model.decode(z.unsqueeze(2) if family.frame_axis else z).sample

    parts = [model.decoder] + ([model.post_quant_conv] if getattr(model, "post_quant_conv", None) is not None else [])
    h, w = height // f, width // f
    z = torch.empty(1, channels, h, w, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        y = decode(z)
    with FlopCounterMode(display=False) as backward:
        y.float().sum().backward()
    total = sum(p.numel() for p in model.parameters())
    fwd, bwd = forward.get_total_flops(), backward.get_total_flops()
    return {
        "image": [h * f, w * f],
        "latent_shape": [channels, h, w],
        "decoder_parameters": int(sum(p.numel() for part in parts for p in part.parameters())),
        "total_parameters": int(total),
        "weights_fp32_megabytes": round(total * 4 / 1e6, 1),
        "tflop_forward": fwd / 1e12,
        "tflop_forward_backward": (fwd + bwd) / 1e12,
    }


TABLE_HEADER = ("| preset | hub id (subfolder) | class | latent at 480×320 | decoder params | TFLOP fwd | "
                "TFLOP fwd+bwd | weights at fp32 (params × 4 B), MB |")


def _hub(p) -> str:
    if p.hub_id is None:
        return "`.pth` files of github.com/madebyollin/taesd (`source:` their folder)"
    gated = ", gated" if "gated" in p.description else ""
    return f"{p.hub_id}{f' ({p.subfolder})' if p.subfolder else ''}{gated}"


def table() -> str:
    """The presets table of docs/autoencoders.md, every number counted here."""
    lines = [TABLE_HEADER, "|" + "---|" * 8]
    for name, p in PRESETS.items():
        cls = FAMILIES[p.family].diffusers_class or f"ours ({p.variant})"
        c = decode_cost(name)
        if c is None:
            lines.append(f"| {name} | {_hub(p)} | {cls} | | not counted: {p.config_from} | | | |")
            continue
        shape = "×".join(map(str, c["latent_shape"]))
        if c["image"] != [320, 480]:
            shape += f" (image cropped to {c['image'][1]}×{c['image'][0]})"
        lines.append(f"| {name} | {_hub(p)} | {cls} | {shape} | {c['decoder_parameters']:,} | "
                     f"{c['tflop_forward']:.3f} | {c['tflop_forward_backward']:.3f} | {c['weights_fp32_megabytes']} |")
    return "\n".join(lines)


def main() -> None:
    print(table())


if __name__ == "__main__":
    main()
