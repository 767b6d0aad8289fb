"""FLOPs (counted with FlopCounterMode), the GPU peak table, and activation memory (bytes saved
for backward; whether diffusers' checkpointing acts on the frozen SD-VAE decoder)."""

from __future__ import annotations

from .models import SD_VAE_SPEC

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
#  FP16 tensor-core peaks equal the BF16 ones in each of these datasheets.
# NVL variants (different clocks/power) are not in the table: MFU is then reported as null.
PEAK_FLOPS = {
    "H100 SXM": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "H100 PCIe": {"fp32": 51.2e12, "tf32": 378.0e12, "bf16": 756.0e12, "fp16": 756.0e12},
    "H200 SXM": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156.0e12, "bf16": 312.0e12, "fp16": 312.0e12},
}


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



def count_flops(decode, z, target, loss_fn, precision, device) -> dict:
    """FLOPs (FlopCounterMode) of one optimizer step (decode + loss + backward to the latent) and
    of one forward-only evaluation, for the given batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from latentopt.compute.precision import decode_precision, exact_fp32

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



def saved_activation_bytes(decode, z, target, loss_fn, precision, device, params, grad_out=None) -> int:
    """Bytes of the tensors autograd saves for backward in one step (weights excluded; storages
    counted once): the activation memory the backward pass needs, measurable on any device."""
    import torch

    from latentopt.compute.precision import decode_precision, exact_fp32

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

