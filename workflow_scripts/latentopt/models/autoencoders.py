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

:func:`required_weight_files` and :func:`normalize_spec` import neither torch nor diffusers (the
Snakefile calls them at parse time); this module imports torch only when a model is built, and
``Autoencoder`` itself is created on first access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from latentopt.workflow import weights
from latentopt.workflow.weights import MissingWeightsError, WeightFile

SPEC_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusers_kl": {"source": None, "subfolder": None, "revision": None},
    "diffusers_tiny": {"source": None, "subfolder": None, "revision": None},
    "taesd": {"encoder": None, "decoder": None, "variant": None},
    "synthetic_kl": {
        "seed": 0,
        "block_out_channels": [16, 32, 32, 32],
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
    },
    "demo_trained": {"weights": None},
}
REQUIRED_KEYS = {
    "diffusers_kl": ("source",),
    "diffusers_tiny": ("source",),
    "taesd": ("encoder", "decoder"),
    "synthetic_kl": (),
    "demo_trained": ("weights",),
}
TAESD_VARIANTS = {"taesd": 4, "taef1": 16, "taef2": 32}  # latent channels (mirrors taesd.VARIANTS)
TAESD_REPO = "https://github.com/madebyollin/taesd"


def normalize_spec(spec: dict) -> dict:
    """A copy of ``spec`` with defaults filled in; ValueError naming an unknown kind or key, or a
    missing required key."""
    if not isinstance(spec, dict):
        raise ValueError(f"autoencoder spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in SPEC_DEFAULTS:
        raise ValueError(
            f"unknown autoencoder kind {kind!r}; expected one of {sorted(SPEC_DEFAULTS)}"
        )
    defaults = SPEC_DEFAULTS[kind]
    unknown = sorted(set(spec) - set(defaults) - {"kind"})
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {kind} autoencoder spec; allowed: {sorted(defaults)}"
        )
    out = {"kind": kind, **defaults, **{k: v for k, v in spec.items() if k != "kind"}}
    for key in REQUIRED_KEYS[kind]:
        if out.get(key) in (None, ""):
            raise ValueError(f"{kind} autoencoder spec needs {key!r}")
    if kind == "taesd":
        variant = out["variant"] or _guess_taesd_variant(out["encoder"])
        if variant not in TAESD_VARIANTS:
            raise ValueError(
                f"taesd spec: variant {out['variant']!r} unknown or not guessable from "
                f"{out['encoder']!r}; set 'variant' to one of {sorted(TAESD_VARIANTS)}"
            )
        out["variant"] = variant
    if kind == "synthetic_kl":
        out["block_out_channels"] = [int(c) for c in out["block_out_channels"]]
        for key in ("seed", "latent_channels", "layers_per_block", "norm_num_groups"):
            out[key] = int(out[key])
    return out


def _guess_taesd_variant(path: str) -> str | None:
    import re  # same rule as taesd.guess_variant, without importing torch

    found = re.findall(r"tae(?:sd|f1|f2)(?![0-9a-z])", Path(str(path)).name.lower())
    return found[0] if len(set(found)) == 1 else None


def _taesd_url(variant: str, part: str) -> str:
    return f"{TAESD_REPO}/raw/main/{variant}_{part}.pth"


def required_weight_files(spec: dict) -> list[WeightFile]:
    """The pretrained files that must be on disk to load ``spec`` (torch-free). Synthetic models
    need nothing; a ``demo_trained`` model's weights are made by the pipeline itself (rule
    ``train_demo_model``), so they are not a prerequisite either."""
    s = normalize_spec(spec)
    kind = s["kind"]
    if kind in ("synthetic_kl", "demo_trained"):
        return []
    if kind == "taesd":
        return [
            WeightFile(
                Path(s[part]).expanduser(),
                f"{s['variant']} {part} state dict ({TAESD_REPO}, file {s['variant']}_{part}.pth)",
                _taesd_url(s["variant"], part),
            )
            for part in ("encoder", "decoder")
        ]
    what = "AutoencoderKL" if kind == "diffusers_kl" else "AutoencoderTiny"
    return weights.diffusers_model_files(s["source"], s["subfolder"], s["revision"], what)


def _raise_missing(files: list[WeightFile], reason: str, cause: BaseException | None = None):
    try:
        weights.require(files)
    except MissingWeightsError as err:
        raise MissingWeightsError(f"{reason}; {err}") from cause
    raise MissingWeightsError(f"{reason}; weight files still unusable: {[str(f.path) for f in files]}")


def fetch_weights(spec: dict) -> list[WeightFile]:
    """Download whatever :func:`required_weight_files` reports missing; return the file list.

    Hub models go through ``huggingface_hub.snapshot_download`` into the hub cache (only the
    config and weights of the needed subfolder); TAESD checkpoints come from madebyollin/taesd on
    GitHub. With no network (or HF_HUB_OFFLINE=1) it raises MissingWeightsError listing each
    missing file and where to put it. Local diffusers folders cannot be fetched.
    """
    s = normalize_spec(spec)
    files = required_weight_files(s)
    missing = [f for f in files if not f.exists()]
    if not missing:
        return files
    kind = s["kind"]
    if kind in ("diffusers_kl", "diffusers_tiny") and not weights.is_hf_repo_id(s["source"]):
        _raise_missing(files, f"local folder {s['source']!r} is incomplete (nothing to download)")
    if weights.offline():
        _raise_missing(files, "offline (HF_HUB_OFFLINE set), not downloading")

    if kind == "taesd":
        for f in missing:
            part = "encoder" if f.path == Path(s["encoder"]).expanduser() else "decoder"
            url = _taesd_url(s["variant"], part)
            try:
                weights.download_url(url, f.path)
            except (OSError, ValueError) as exc:
                _raise_missing(files, f"download of {url} failed ({type(exc).__name__}: {exc})", exc)
        weights.require(files)
        return files

    sub = (s["subfolder"] or "").strip("/")
    prefix = f"{sub}/" if sub else ""
    try:
        from huggingface_hub import snapshot_download

        for pattern in weights.DIFFUSERS_WEIGHTS_NAMES:  # safetensors first; .bin only if absent
            snapshot_download(
                s["source"],
                revision=s["revision"],
                cache_dir=str(weights.hf_hub_cache_dir()),
                allow_patterns=[
                    prefix + weights.DIFFUSERS_CONFIG_NAME,
                    prefix + pattern,
                    prefix + pattern + ".index.json",
                    prefix + "diffusion_pytorch_model-*" + Path(pattern).suffix,
                ],
            )
            files = required_weight_files(s)
            if all(f.exists() for f in files):
                return files
    except Exception as exc:  # network, auth, offline-mode and not-found errors alike
        _raise_missing(
            required_weight_files(s),
            f"could not download {s['source']} from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            exc,
        )
    _raise_missing(files, f"{s['source']} downloaded but incomplete")


# --- models (torch from here on) ----------------------------------------------------------------

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

_AUTOENCODER_CLASS = None


def _autoencoder_class():
    """Define :class:`Autoencoder` (a torch.nn.Module) on first use, keeping imports torch-free."""
    global _AUTOENCODER_CLASS
    if _AUTOENCODER_CLASS is not None:
        return _AUTOENCODER_CLASS
    import torch

    class Autoencoder(torch.nn.Module):
        """A frozen autoencoder: ``encode`` [0,1] images -> latents, ``decode`` latents -> [0,1].

        ``model`` is the wrapped network; ``convention`` is ``"kl"``, ``"tiny"``, ``"taesd"`` or
        ``"demo"``;
        ``info`` describes it (kind, source, weights_sha256, synthetic, latent_channels,
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

    Autoencoder.__module__ = __name__
    Autoencoder.__qualname__ = "Autoencoder"
    _AUTOENCODER_CLASS = Autoencoder
    return Autoencoder


def __getattr__(name: str):
    if name == "Autoencoder":
        return _autoencoder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def state_dict_sha256(module) -> str:
    """sha256 over a module's state dict: each key, dtype, shape and raw tensor bytes, key-sorted."""
    import hashlib

    import torch

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
    import torch
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
    import torch

    dtype = torch.float32 if dtype is None else dtype
    s = normalize_spec(spec)
    kind = s["kind"]
    info: dict[str, Any] = {"kind": kind, "synthetic": False, "spec": s}

    if kind == "synthetic_kl":
        model = _synthetic_kl(s)
        info["source"] = f"synthetic AutoencoderKL (seed {s['seed']})"
        info["synthetic"] = True
        info["weights_sha256"] = state_dict_sha256(model)  # of the float32 initialisation
        info["weight_files"] = {}
        convention = "kl"
    elif kind == "demo_trained":
        from latentopt.models.demo_model import load_network

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
        from latentopt.models.taesd import TAESD

        files = _ensure_files(s)
        model = TAESD.from_files(s["encoder"], s["decoder"], s["variant"])
        info["source"] = f"{s['encoder']} + {s['decoder']}"
        info["variant"] = s["variant"]
        info["weights_sha256"], info["weight_files"] = _file_hashes(files)
        convention = "taesd"
    else:
        from diffusers import AutoencoderKL, AutoencoderTiny

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
    return _autoencoder_class()(model, convention, info)
