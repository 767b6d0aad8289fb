"""Loading the autoencoders whose latents the pipeline optimises, behind one convention.

Every model is wrapped in :class:`Autoencoder`: ``encode(x)`` takes RGB ``[B,3,H,W]`` in [0, 1]
and returns a deterministic latent; ``decode(z)`` returns RGB in [0, 1] (clamped). Parameters
are frozen and the wrapped model stays in eval mode, so gradients flow only to ``z``.

Specs (dicts, e.g. from the pipeline config; unknown kinds or keys raise ``ValueError``):

* ``{"kind": "diffusers_kl", "source": <hub id or folder>, "subfolder": None, "revision": None}``
  diffusers ``AutoencoderKL``; latent = ``latent_dist.mode()`` of ``encode(2x-1)``, **not**
  multiplied by ``scaling_factor``; decode = ``(sample/2 + 0.5).clamp(0, 1)``.
* ``{"kind": "diffusers_tiny", "source": <hub id or folder>, "subfolder": None, "revision": None}``
  diffusers ``AutoencoderTiny``; latent = ``encode(2x-1).latents`` (``EncoderTiny`` maps [-1, 1]
  back to [0, 1] itself, so this is the raw TAESD latent: no ``scaling_factor``, no uint8
  quantisation); decode = ``(sample/2 + 0.5).clamp(0, 1)`` (``DecoderTiny`` returns ``2*y-1``).
* ``{"kind": "taesd", "encoder": <.pth>, "decoder": <.pth>, "variant": None}``
  our own TAESD-family network (:mod:`latentopt.models.taesd`); ``variant`` is ``taesd``/``taef1``/
  ``taef2``, guessed from the encoder's file name when omitted.
* ``{"kind": "synthetic_kl", "seed": 0, "block_out_channels": [16, 32, 32, 32],
  "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8}``
  a randomly initialised (under ``torch.manual_seed(seed)``) small ``AutoencoderKL`` for tests and
  dry runs; same convention as ``diffusers_kl``.
* ``{"kind": "demo_trained", "weights": <demo_autoencoder.pt>}``
  the demo's tiny autoencoder, trained by the project itself (:mod:`latentopt.models.demo_model`; the
  pipeline's ``train_demo_model`` rule writes the file); latent = ``encoder(x)`` for x in [0, 1]
  (4 channels at 1/8), decode = ``decoder(z).clamp(0, 1)``.

The specs' keys and defaults are :mod:`latentopt.workflow.model_specs`; the files each needs,
:func:`latentopt.workflow.weights.required_weight_files` (both torch-free: the Snakefile reads
them at parse time).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from latentopt.models.demo_model import load_network
from latentopt.models.taesd import TAESD
from latentopt.workflow import weights
from latentopt.workflow.model_specs import SYNTHETIC_KINDS, normalize_spec
from latentopt.workflow.weights import WeightFile, fetch_weights, required_weight_files

_CONVENTIONS = {
    "kl": "latent z = AutoencoderKL.encode(2*x - 1).latent_dist.mode() for x in [0,1] (posterior "
    "mean, NOT multiplied by scaling_factor={sf}); decode(z) = (AutoencoderKL.decode(z).sample/2 + "
    "0.5).clamp(0, 1).",
    "tiny": "latent z = AutoencoderTiny.encode(2*x - 1).latents for x in [0,1] (the raw TAESD "
    "latent: EncoderTiny maps back to [0,1] itself; scaling_factor={sf} not applied, no uint8 "
    "latent quantisation); decode(z) = (AutoencoderTiny.decode(z).sample/2 + 0.5).clamp(0, 1).",
    "taesd": "latent z = TAESD encoder(x) for x in [0,1] (raw: no scaling, no uint8 "
    "quantisation); decode(z) = decoder(z).clamp(0, 1), the decoder starting with the soft clamp "
    "tanh(z/3)*3.",
    "demo": "latent z = encoder(x) for x in [0,1] (the demo autoencoder, latentopt.models.demo_model); "
    "decode(z) = decoder(z).clamp(0, 1).",
}


class Autoencoder(torch.nn.Module):
    """A frozen autoencoder: ``encode`` [0,1] images -> latents, ``decode`` latents -> [0,1].

    ``model`` is the wrapped network; ``convention`` is ``"kl"``, ``"tiny"``, ``"taesd"`` or
    ``"demo"``;
    ``info`` describes it (kind, source, weights_sha256, synthetic (not research results: random or
    demo-trained, :data:`latentopt.workflow.model_specs.SYNTHETIC_KINDS`), latent_channels,
    downsample_factor, latent_convention, dtype, ...). ``train()`` is a no-op: the model stays
    in eval mode.
    """

    def __init__(self, model: torch.nn.Module, convention: str, info: dict):
        super().__init__()
        if convention not in _CONVENTIONS:
            raise ValueError(f"unknown convention {convention!r}")
        self.model = model
        self.convention = convention
        self.info = dict(info)
        self.latent_channels = int(info["latent_channels"])
        self.downsample_factor = int(info["downsample_factor"])
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):  # frozen: always eval
        return super().train(False)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        f = self.downsample_factor
        if height % f or width % f:
            raise ValueError(f"image size {height}x{width} is not a multiple of {f}")
        return self.latent_channels, height // f, width // f

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] (H, W multiples of downsample_factor) -> latent [B,C,H/f,W/f]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images [B,3,H,W], got {tuple(x.shape)}")
        self.latent_shape(x.shape[-2], x.shape[-1])
        x = x.to(self.dtype)
        if self.convention in ("taesd", "demo"):
            return self.model.encoder(x)
        if self.convention == "tiny":
            return self.model.encode(x * 2 - 1).latents
        return self.model.encode(x * 2 - 1).latent_dist.mode()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent [B,C,h,w] -> image [B,3,h*f,w*f] in [0,1] (clamped; differentiable in z)."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents [B,{self.latent_channels},h,w], got {tuple(z.shape)}"
            )
        z = z.to(self.dtype)
        if self.convention in ("taesd", "demo"):
            return self.model.decoder(z).clamp(0, 1)
        return (self.model.decode(z).sample / 2 + 0.5).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        return f"kind={self.info.get('kind')}, convention={self.convention}"


def decoder_parameters(autoencoder: Autoencoder) -> int:
    """Parameters of the decoding path z -> image: the decoder (with post_quant_conv for the KL
    autoencoders), the capacity a study compares."""
    net = autoencoder.model
    parts = [net.decoder] + ([net.post_quant_conv] if getattr(net, "post_quant_conv", None) is not None else [])
    return int(sum(p.numel() for part in parts for p in part.parameters()))


def state_dict_sha256(module) -> str:
    """sha256 over a module's state dict: each key, dtype, shape and raw tensor bytes, key-sorted."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _ensure_files(s: dict) -> list[WeightFile]:
    files = required_weight_files(s)
    if any(not f.exists() for f in files):
        if s["kind"] in ("diffusers_kl", "diffusers_tiny") and weights.is_hf_repo_id(s["source"]):
            files = fetch_weights(s)  # downloads, or MissingWeightsError when offline
        else:
            weights.require(files)
    return files


def _file_hashes(files: list[WeightFile]) -> tuple[str, dict[str, str]]:
    return weights.sha256_files([f.path for f in files])


def _synthetic_kl(s: dict):
    # diffusers only where a diffusers model is built (it is slow to import; TAESD/demo runs skip it)
    from diffusers import AutoencoderKL

    n = len(s["block_out_channels"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        model = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(s["block_out_channels"]),
            latent_channels=s["latent_channels"],
            layers_per_block=s["layers_per_block"],
            norm_num_groups=s["norm_num_groups"],
        )
    return model


def load_autoencoder(spec: dict, device="cpu", dtype=None):
    """Build the frozen :class:`Autoencoder` described by ``spec`` (see the module docstring).

    ``dtype`` defaults to torch.float32. Missing weight files raise MissingWeightsError (hub
    models are downloaded first when the network allows).
    """
    dtype = torch.float32 if dtype is None else dtype
    s = normalize_spec(spec)
    kind = s["kind"]
    info: dict[str, Any] = {"kind": kind, "synthetic": kind in SYNTHETIC_KINDS, "spec": s}

    if kind == "synthetic_kl":
        model = _synthetic_kl(s)
        info["source"] = f"synthetic AutoencoderKL (seed {s['seed']})"
        info["weights_sha256"] = state_dict_sha256(model)  # of the float32 initialisation
        info["weight_files"] = {}
        convention = "kl"
    elif kind == "demo_trained":
        path = Path(s["weights"]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"demo autoencoder weights {path} not found: the pipeline's train_demo_model rule "
                f"writes them, or run `PYTHONPATH=workflow_scripts python -m latentopt.models.demo_model {path.parent}`"
            )
        model, summary = load_network(path)
        info["source"] = f"{path}: {summary['description']}"
        info["trained_for_demo"] = summary["description"]
        info["training"] = {k: v for k, v in summary.items() if k not in ("versions", "psnr_history")}
        info["weights_sha256"] = state_dict_sha256(model)  # of the weights alone, not the file
        info["weight_files"] = weights.sha256_files([path])[1]
        convention = "demo"
    elif kind == "taesd":
        files = _ensure_files(s)
        model = TAESD.from_files(s["encoder"], s["decoder"], s["variant"])
        info["source"] = f"{s['encoder']} + {s['decoder']}"
        info["variant"] = s["variant"]
        info["weights_sha256"], info["weight_files"] = _file_hashes(files)
        convention = "taesd"
    else:
        from diffusers import AutoencoderKL, AutoencoderTiny  # as in _synthetic_kl: this path only

        cls = AutoencoderKL if kind == "diffusers_kl" else AutoencoderTiny
        files = _ensure_files(s)
        hub = weights.is_hf_repo_id(s["source"])
        kwargs: dict[str, Any] = {
            "torch_dtype": dtype,
            "local_files_only": True,
            "low_cpu_mem_usage": False,  # the default needs `accelerate`, which warns when absent
        }
        if s["subfolder"]:
            kwargs["subfolder"] = s["subfolder"]
        if hub:
            kwargs["cache_dir"] = str(weights.hf_hub_cache_dir())
            if s["revision"]:
                kwargs["revision"] = s["revision"]
        source = s["source"] if hub else str(Path(s["source"]).expanduser())
        model = cls.from_pretrained(source, **kwargs)
        info["source"] = s["source"]
        info["weights_sha256"], info["weight_files"] = _file_hashes(files)
        convention = "kl" if kind == "diffusers_kl" else "tiny"

    model = model.to(device=device)
    if next(model.parameters()).dtype != dtype:
        model = model.to(dtype=dtype)
    model = model.eval().requires_grad_(False)
    if convention in ("taesd", "demo"):
        latent_channels, factor = model.latent_channels, 8
    elif convention == "tiny":
        latent_channels = model.config.latent_channels
        factor = 2 ** (len(model.config.encoder_block_out_channels) - 1)
    else:
        latent_channels = model.config.latent_channels
        factor = 2 ** (len(model.config.block_out_channels) - 1)
    sf = getattr(model.config, "scaling_factor", None) if convention not in ("taesd", "demo") else None
    info.update(
        latent_channels=int(latent_channels),
        downsample_factor=int(factor),
        latent_convention=_CONVENTIONS[convention].format(sf=sf),
        scaling_factor_not_applied=sf,
        dtype=_dtype_name(dtype),
        device=str(torch.device(device)),
    )
    return Autoencoder(model, convention, info)
