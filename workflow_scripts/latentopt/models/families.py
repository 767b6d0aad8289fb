"""The autoencoder families and presets: one declaration each (pure Python, no torch).

A :class:`Family` says how the pipeline's one convention (``encode``: RGB in [0, 1] -> the raw
latent the decoder consumes; ``decode``: latent -> RGB in [0, 1]) is reached for one class: what
the class takes and returns, where its latent sits in ``encode()``'s output, whether it has a frame
axis, and which normalisation factors it records. Factors are **recorded, never applied**: the
optimization works on the raw latent the class's own ``decode()`` consumes. Pipeline-side steps
(patchify, BatchNorm statistics, ``latents_mean``/``latents_std``) are outside ``decode()`` and
are listed as not applied too.

A :class:`Preset` is one published autoencoder: its family, hub id, subfolder and revision, and
the published architecture values that the counted cost (:mod:`latentopt.models.cost`) is computed
from. Spec normalisation (:mod:`latentopt.workflow.model_specs`), the config schema's enums, the
weights registry (:mod:`latentopt.workflow.weights`) and the loader
(:mod:`latentopt.models.autoencoders`) read these tables; ``tests/test_families.py`` asserts that
they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# what diffusers' from_pretrained reads in a model folder (weights: either name)
DIFFUSERS_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


@dataclass(frozen=True)
class Family:
    name: str
    diffusers_class: str | None  # None: a network of this project (latentopt.models.taesd / demo_model)
    latent: str  # where encode()'s latent is: "latent_dist.mode()", "latent", "latents" or "encoder(x)"
    input_range: tuple[float, float]  # what the class's encode() takes
    output_range: tuple[float, float]  # what decode() returns (mapped to [0, 1], then clamped)
    frame_axis: bool  # 3D (video) class: [B, C, T, H, W] with T = 1 for an image
    channels_key: str  # config key holding the latent channels
    downsample: tuple[str, str]  # (config key, rule): "len-1": 2**(len-1); "len": 2**len; "value"
    factors: tuple[str, ...]  # config keys recorded, not applied
    not_applied: str  # pipeline-side latent steps outside decode(), not applied
    weight_files: tuple[str, ...]
    tiny_config: dict = field(default_factory=dict)  # a tiny random config (tests, synthetic runs)

    def convention(self) -> str:
        """One line: how the latent is taken and decoded."""
        lo, hi = self.input_range
        x_in = "x" if (lo, hi) == (0.0, 1.0) else "2*x - 1"
        cls = self.diffusers_class or "the network"
        frames = " with a frame axis of length 1 ([B,C,1,H,W], squeezed)" if self.frame_axis else ""
        take = f"{cls}.encode({x_in}).{self.latent}" if self.diffusers_class else f"encoder({x_in})"
        lo, hi = self.output_range
        out = "y" if (lo, hi) == (0.0, 1.0) else "y/2 + 0.5"
        recorded = f"; recorded, not applied: {', '.join(self.factors)}" if self.factors else ""
        return (f"latent z = {take} for x in [0,1]{frames}; decode: y = {cls}.decode(z), image = "
                f"({out}).clamp(0, 1){recorded}; {self.not_applied}")


def _kl_tiny(latent_channels: int) -> dict:
    return {"block_out_channels": [16, 32, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
            "latent_channels": latent_channels, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4}


def _frames_tiny(extra: dict | None = None) -> dict:
    return {"base_dim": 8, "z_dim": 4, "dim_mult": [1, 2, 2, 2], "num_res_blocks": 1,
            "temperal_downsample": [False, True, True], "latents_mean": [0.0] * 4,
            "latents_std": [1.0] * 4, **(extra or {})}


_NONE = "no pipeline-side latent steps"
_SD = ("scaling_factor", "shift_factor")
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("kl", "AutoencoderKL", "latent_dist.mode()", (-1.0, 1.0), (-1.0, 1.0), False, "latent_channels",
           ("block_out_channels", "len-1"), _SD, _NONE, DIFFUSERS_FILES, _kl_tiny(4)),
    Family("kl_flux2", "AutoencoderKLFlux2", "latent_dist.mode()", (-1.0, 1.0), (-1.0, 1.0), False,
           "latent_channels", ("block_out_channels", "len-1"), ("patch_size", "batch_norm_eps"),
           "not applied: the FLUX.2 pipeline's 2x2 patchify and BatchNorm (bn running statistics) normalisation",
           DIFFUSERS_FILES, _kl_tiny(8)),
    Family("dc", "AutoencoderDC", "latent", (-1.0, 1.0), (-1.0, 1.0), False, "latent_channels",
           ("encoder_block_out_channels", "len-1"), ("scaling_factor",), "deterministic: no posterior",
           DIFFUSERS_FILES,
           {"latent_channels": 8, "attention_head_dim": 8, "encoder_block_types": "ResBlock",
            "decoder_block_types": "ResBlock", "encoder_block_out_channels": [8, 16, 16],
            "decoder_block_out_channels": [8, 16, 16], "encoder_layers_per_block": [1, 1, 1],
            "decoder_layers_per_block": [1, 1, 1], "encoder_qkv_multiscales": [[], [], []],
            "decoder_qkv_multiscales": [[], [], []]}),
    Family("qwen_image", "AutoencoderKLQwenImage", "latent_dist.mode()", (-1.0, 1.0), (-1.0, 1.0), True, "z_dim",
           ("temperal_downsample", "len"), ("latents_mean", "latents_std"),
           "not applied: the pipeline's per-channel (z - latents_mean) / latents_std", DIFFUSERS_FILES,
           _frames_tiny()),
    Family("wan", "AutoencoderKLWan", "latent_dist.mode()", (-1.0, 1.0), (-1.0, 1.0), True, "z_dim",
           ("temperal_downsample", "len"), ("latents_mean", "latents_std"),
           "not applied: the pipeline's per-channel (z - latents_mean) / latents_std", DIFFUSERS_FILES,
           _frames_tiny({"scale_factor_spatial": 8})),
    Family("hunyuan_image", "AutoencoderKLHunyuanImage", "latent_dist.mode()", (-1.0, 1.0), (-1.0, 1.0), False,
           "latent_channels", ("spatial_compression_ratio", "value"), ("scaling_factor",), _NONE, DIFFUSERS_FILES,
           {"in_channels": 3, "out_channels": 3, "latent_channels": 8, "block_out_channels": [32, 32, 32, 32],
            "layers_per_block": 1, "spatial_compression_ratio": 8, "sample_size": 32}),
    Family("cosmos", "AutoencoderKLCosmos", "latent_dist.mode()", (-1.0, 1.0), (-1.0, 1.0), True, "latent_channels",
           ("spatial_compression_ratio", "value"), ("scaling_factor", "latents_mean", "latents_std"),
           "not applied: the pipeline's latents_mean/latents_std normalisation", DIFFUSERS_FILES,
           {"latent_channels": 4, "encoder_block_out_channels": [8, 16, 16], "decode_block_out_channels": [16, 16, 16],
            "attention_resolutions": [], "resolution": 32, "num_layers": 1, "patch_size": 4,
            "spatial_compression_ratio": 8, "temporal_compression_ratio": 4,
            "latents_mean": None, "latents_std": None}),
    Family("tiny", "AutoencoderTiny", "latents", (-1.0, 1.0), (-1.0, 1.0), False, "latent_channels",
           ("encoder_block_out_channels", "len-1"), ("scaling_factor",),
           "raw TAESD latent: EncoderTiny maps [-1,1] back to [0,1] itself; no uint8 latent quantisation",
           DIFFUSERS_FILES,
           {"encoder_block_out_channels": [8, 8, 8, 8], "decoder_block_out_channels": [8, 8, 8, 8],
            "num_encoder_blocks": [1, 1, 1, 1], "num_decoder_blocks": [1, 1, 1, 1], "latent_channels": 4}),
    Family("taesd", None, "encoder(x)", (0.0, 1.0), (0.0, 1.0), False, "latent_channels", ("", "value"), (),
           "raw latent: no scaling, no uint8 quantisation; the decoder starts with the soft clamp tanh(z/3)*3",
           ("<variant>_encoder.pth", "<variant>_decoder.pth")),
    Family("demo", None, "encoder(x)", (0.0, 1.0), (0.0, 1.0), False, "latent_channels", ("", "value"), (),
           "the demo autoencoder (latentopt.models.demo_model), trained by the pipeline itself", ()),
)}
FAMILY_BY_CLASS = {f.diffusers_class: f for f in FAMILIES.values() if f.diffusers_class}

# The TAESD family's own networks (latentopt.models.taesd builds them from this table): latent
# channels, and whether the lowest-resolution blocks carry the pool/GroupNorm bottleneck (taef2).
TAESD_VARIANTS: dict[str, dict] = {
    "taesd": {"latent_channels": 4, "midblock_gn": False},
    "taef1": {"latent_channels": 16, "midblock_gn": False},
    "taef2": {"latent_channels": 32, "midblock_gn": True},
}
TAESD_REPO = "https://github.com/madebyollin/taesd"


def downsample_factor(family: Family, class_config: dict) -> int:
    """The spatial downsampling factor of a diffusers model of ``family`` built with ``class_config``
    (its ``model.config``, the class's own config.json; not the workflow's config)."""
    key, rule = family.downsample
    value = class_config[key]
    return int(2 ** (len(value) - 1) if rule == "len-1" else 2 ** len(value) if rule == "len" else value)


# --- presets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    hub_id: str | None  # None: files by path only (source: a folder)
    subfolder: str | None
    revision: str  # "main" where no commit could be determined offline (see docs/autoencoders.md)
    description: str
    published_config: dict | None  # architecture values for the counted cost; None: not known offline
    config_from: str  # where published_config comes from
    variant: str | None = None  # TAESD-format presets (family taesd)
    kind_spec: dict | None = None  # a preset that IS an older spec kind (same fingerprint as before)


# Architecture of the SD-family AutoencoderKL (SD v1/2, SDXL, SD3, FLUX.1 share it; latent width
# and quant convs differ): diffusers' AutoencoderKL with these values is the published model.
_SD_KL = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
          "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4}
_SD_FROM = "the LDM f8 KL architecture (ch 128, ch_mult 1,2,4,4, 2 res blocks) of the published model cards"
_CLASS_DEFAULTS = "diffusers 0.42.1 class defaults, which are the published model's config"
_WAN_FROM = ("; diffusers' scripts/convert_wan_to_diffusers.py (commit 7d5682739a1ee5b25bb9f5a81c573ea7e38d8e22) "
             "loads Wan2.1_VAE.pth with strict=True into AutoencoderKLWan() at these defaults")
_DC_FROM = ("get_ae_config of diffusers' scripts/convert_dcae_to_diffusers.py "
            "(commit f7c4706f7992142a8afe61a6d7e1349527c41cce), the script that wrote the -diffusers repos")


def _dc_ae(levels: int, latent_channels: int, scaling_factor: float) -> dict:
    """A published DC-AE "in-1.0" config: ResBlock x3 then EfficientViTBlock stages, 128..2048
    channels, layers (0, 4, 8, 2, ...) / (0, 5, 10, 2, ...), no multiscale attention, BatchNorm+ReLU
    in the first three decoder stages and RMSNorm+SiLU after (pixel (un)shuffle resampling: the
    class defaults)."""
    n = levels - 3
    return {"latent_channels": latent_channels,
            "encoder_block_types": ["ResBlock"] * 3 + ["EfficientViTBlock"] * n,
            "decoder_block_types": ["ResBlock"] * 3 + ["EfficientViTBlock"] * n,
            "encoder_block_out_channels": [128, 256, 512, 512, 1024, 1024, 2048][:levels],
            "decoder_block_out_channels": [128, 256, 512, 512, 1024, 1024, 2048][:levels],
            "encoder_layers_per_block": [0, 4, 8] + [2] * n, "decoder_layers_per_block": [0, 5, 10] + [2] * n,
            "encoder_qkv_multiscales": [[]] * levels, "decoder_qkv_multiscales": [[]] * levels,
            "decoder_norm_types": ["batch_norm"] * 3 + ["rms_norm"] * n,
            "decoder_act_fns": ["relu"] * 3 + ["silu"] * n, "scaling_factor": scaling_factor}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("sd14", "kl", "CompVis/stable-diffusion-v1-4", "vae", "main",
           "Stable Diffusion v1 VAE (the seed's), f8, 4 ch", {**_SD_KL, "latent_channels": 4}, _SD_FROM,
           kind_spec={"kind": "diffusers_kl", "source": "CompVis/stable-diffusion-v1-4", "subfolder": "vae",
                      "revision": None}),
    Preset("sd_vae_ft_mse", "kl", "stabilityai/sd-vae-ft-mse", None, "main",
           "SD v1 VAE, decoder fine-tuned (MSE-heavy), f8, 4 ch", {**_SD_KL, "latent_channels": 4}, _SD_FROM),
    Preset("sd_vae_ft_ema", "kl", "stabilityai/sd-vae-ft-ema", None, "main",
           "SD v1 VAE, decoder fine-tuned (EMA), f8, 4 ch", {**_SD_KL, "latent_channels": 4}, _SD_FROM),
    Preset("sdxl", "kl", "stabilityai/sdxl-vae", None, "main", "SDXL VAE, f8, 4 ch",
           {**_SD_KL, "latent_channels": 4}, _SD_FROM),
    Preset("sd35", "kl", "stabilityai/stable-diffusion-3.5-large", "vae", "main",
           "SD3.5 VAE, f8, 16 ch (gated repository)",
           {**_SD_KL, "latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False},
           _SD_FROM + "; SD3 has 16 latent channels and no quant convs"),
    Preset("flux1", "kl", "black-forest-labs/FLUX.1-schnell", "vae", "main", "FLUX.1 VAE, f8, 16 ch",
           {**_SD_KL, "latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False},
           _SD_FROM + "; FLUX.1 has 16 latent channels and no quant convs"),
    Preset("flux2", "kl_flux2", "black-forest-labs/FLUX.2-dev", "vae", "main",
           "FLUX.2 VAE, f8, 32 ch (gated repository)", {}, _CLASS_DEFAULTS),
    Preset("qwen_image", "qwen_image", "Qwen/Qwen-Image", "vae", "main",
           "Qwen-Image VAE (Wan 2.1 architecture, 3D causal, one frame), f8, 16 ch", {}, _CLASS_DEFAULTS),
    Preset("wan21", "wan", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "vae", "main",
           "Wan 2.1 VAE (3D causal, one frame), f8, 16 ch", {}, _CLASS_DEFAULTS + _WAN_FROM),
    Preset("hunyuan_image21", "hunyuan_image", "hunyuanvideo-community/HunyuanImage-2.1-Diffusers", "vae", "main",
           "HunyuanImage 2.1 VAE, f32, 64 ch",
           {"in_channels": 3, "out_channels": 3, "latent_channels": 64,
            "block_out_channels": [128, 256, 512, 512, 1024, 1024], "layers_per_block": 2,
            "spatial_compression_ratio": 32, "sample_size": 384, "scaling_factor": 0.75289,
            "downsample_match_channel": True, "upsample_match_channel": True},
           "the hunyuanimage2.1 VAE config of diffusers' scripts/convert_hunyuan_image_to_diffusers.py "
           "(commit 99e56e33fdd3f7321b097e88eca975491bc044cd), which writes the hub's vae/"),
    Preset("cosmos1", "cosmos", "nvidia/Cosmos-1.0-Diffusion-7B-Text2World", "vae", "main",
           "Cosmos 1.0 tokenizer CV8x8x8 (3D causal, one frame), f8, 16 ch",
           {"in_channels": 3, "out_channels": 3, "latent_channels": 16,
            "encoder_block_out_channels": [128, 256, 512, 512], "decode_block_out_channels": [256, 512, 512, 512],
            "attention_resolutions": [32], "resolution": 1024, "num_layers": 2, "patch_size": 4,
            "patch_type": "haar", "scaling_factor": 1.0, "spatial_compression_ratio": 8,
            "temporal_compression_ratio": 8, "latents_mean": None, "latents_std": None},
           "the CV8x8x8-1.0 entry of VAE_CONFIGS in diffusers' scripts/convert_cosmos_to_diffusers.py; "
           "not checked against the hub's vae/config.json"),
    Preset("dc_ae_f32c32", "dc", "mit-han-lab/dc-ae-f32c32-in-1.0-diffusers", None, "main",
           "DC-AE f32, 32 ch (ImageNet)", _dc_ae(6, 32, 0.3189), _DC_FROM + ", dc-ae-f32c32-in-1.0"),
    Preset("dc_ae_f64c128", "dc", "mit-han-lab/dc-ae-f64c128-in-1.0-diffusers", None, "main",
           "DC-AE f64, 128 ch (ImageNet)", _dc_ae(7, 128, 0.2889), _DC_FROM + ", dc-ae-f64c128-in-1.0"),
    Preset("taesd", "tiny", "madebyollin/taesd", None, "main", "TAESD (SD v1/2 latents), f8, 4 ch",
           {"latent_channels": 4}, "TAESD architecture (latentopt.models.taesd, strict-loads the released files)",
           variant="taesd"),
    Preset("taesdxl", "tiny", "madebyollin/taesdxl", None, "main", "TAESDXL (SDXL latents), f8, 4 ch",
           {"latent_channels": 4}, "TAESD architecture", variant="taesd"),
    Preset("taesd3", "tiny", "madebyollin/taesd3", None, "main", "TAESD3 (SD3 latents), f8, 16 ch",
           {"latent_channels": 16}, "TAESD architecture", variant="taef1"),
    Preset("taef1", "tiny", "madebyollin/taef1", None, "main", "TAEF1 (FLUX.1 latents), f8, 16 ch",
           {"latent_channels": 16}, "TAESD architecture", variant="taef1"),
    Preset("taef2", "taesd", None, None, "main",
           f"TAEF2 (FLUX.2 latents), f8, 32 ch; .pth files from {TAESD_REPO} (source: their folder)",
           {}, "TAESD architecture with the taef2 mid-block GroupNorm", variant="taef2"),
)}
