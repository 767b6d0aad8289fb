"""Loading the autoencoders whose latents the pipeline optimises, behind one convention.

Every model is wrapped in :class:`Autoencoder`: ``encode(x)`` takes RGB ``[B,3,H,W]`` in [0, 1]
and returns a deterministic latent; ``decode(z)`` returns RGB in [0, 1] (clamped). Parameters
are frozen and the wrapped model stays in eval mode, so gradients flow only to ``z``.

Specs (dicts, e.g. from the pipeline config; unknown kinds or keys raise ``ValueError``):

* ``{"preset": <name>, "source": ..., "subfolder": ..., "revision": ..., "synthetic": False}``
  a published autoencoder (:data:`latentopt.models.families.PRESETS`); becomes one of the kinds below.
* ``{"kind": "diffusers", "class": <diffusers class>, "convention": None, "source": ...}``
  any diffusers class of a declared :class:`~latentopt.models.families.Family` (or one that follows a
  family's convention, named by ``convention``: checked by one encode/decode at load).
* ``{"kind": "diffusers_kl" | "diffusers_tiny", "source": <hub id or folder>, "subfolder", "revision"}``
  ``AutoencoderKL`` / ``AutoencoderTiny`` (families ``kl`` / ``tiny``).
* ``{"kind": "taesd", "encoder": <.pth>, "decoder": <.pth>, "variant": None}``
  our own TAESD-family network (:mod:`latentopt.models.taesd`); ``variant`` is ``taesd``/``taef1``/
  ``taef2``, guessed from the encoder's file name when omitted.
* ``{"kind": "synthetic_kl", "seed": 0, ...}`` a randomly initialised small ``AutoencoderKL``.
* ``{"kind": "demo_trained", "weights": <demo_autoencoder.pt>}`` the demo's tiny autoencoder
  (:mod:`latentopt.models.demo_model`; the pipeline's ``train_demo_model`` rule writes the file).

How each family's latent is taken and decoded is its declaration (``Family.convention()``, recorded
in ``info["latent_convention"]``): scaling/shift factors and pipeline-side normalisations are
recorded, never applied; the optimization works on the raw latent the decoder consumes.

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
from latentopt.models.families import FAMILIES, downsample_factor
from latentopt.models.taesd import TAESD
from latentopt.workflow import weights
from latentopt.workflow.model_specs import SYNTHETIC_KINDS, family_of, normalize_spec
from latentopt.workflow.weights import WeightFile, fetch_weights, required_weight_files

class Autoencoder(torch.nn.Module):
    """A frozen autoencoder: ``encode`` [0,1] images -> latents, ``decode`` latents -> [0,1].

    ``model`` is the wrapped network; ``convention`` is the name of its
    :class:`~latentopt.models.families.Family` (``"kl"``, ``"tiny"``, ``"taesd"``, ``"dc"``, ...);
    ``info`` describes it (kind, source, weights_sha256, weights_revision (the hub commit loaded, or
    why there is none: :func:`latentopt.workflow.weights.weights_revision`), synthetic (not research results: random or
    demo-trained, :data:`latentopt.workflow.model_specs.SYNTHETIC_KINDS`, or a synthetic preset), latent_channels,
    downsample_factor, latent_convention, dtype, ...). ``train()`` is a no-op: the model stays
    in eval mode.
    """

    def __init__(self, model: torch.nn.Module, convention: str, info: dict):
        super().__init__()
        if convention not in FAMILIES:
            raise ValueError(f"unknown convention {convention!r}; declared: {sorted(FAMILIES)}")
        self.model = model
        self.convention = convention
        self.family = FAMILIES[convention]
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
        fam = self.family
        if fam.diffusers_class is None:
            return self.model.encoder(x)
        x = x * 2 - 1 if fam.input_range == (-1.0, 1.0) else x
        out = self.model.encode(x.unsqueeze(2) if fam.frame_axis else x)
        z = out.latent_dist.mode() if fam.latent == "latent_dist.mode()" else getattr(out, fam.latent)
        return z.squeeze(2) if fam.frame_axis else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent [B,C,h,w] -> image [B,3,h*f,w*f] in [0,1] (clamped; differentiable in z)."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents [B,{self.latent_channels},h,w], got {tuple(z.shape)}"
            )
        z = z.to(self.dtype)
        fam = self.family
        if fam.diffusers_class is None:
            return self.model.decoder(z).clamp(0, 1)
        y = self.model.decode(z.unsqueeze(2) if fam.frame_axis else z).sample
        y = y.squeeze(2) if fam.frame_axis else y
        return (y if fam.output_range == (0.0, 1.0) else y / 2 + 0.5).clamp(0, 1)

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
        if s["kind"] in weights.DIFFUSERS_KINDS and weights.is_hf_repo_id(s["source"]):
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


def _diffusers_class(name: str, family):
    import diffusers  # slow to import: only where a diffusers model is built

    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "encode") or not hasattr(cls, "decode"):
        raise ValueError(f"diffusers {diffusers.__version__} has no autoencoder class {name!r}")
    return cls


def _from_pretrained_args(s: dict, dtype) -> tuple[str, dict]:
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
    return (s["source"] if hub else str(Path(s["source"]).expanduser())), kwargs


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
    elif kind == "taesd" and s["synthetic"]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s["seed"])
            model = TAESD(s["variant"])
        info["source"] = f"synthetic {s['variant']} network (seed {s['seed']}, random weights)"
        info["synthetic"] = True
        info["variant"] = s["variant"]
        info["weights_sha256"] = state_dict_sha256(model)
        info["weight_files"] = {}
        convention = "taesd"
    elif kind == "taesd":
        files = _ensure_files(s)
        model = TAESD.from_files(s["encoder"], s["decoder"], s["variant"])
        info["source"] = f"{s['encoder']} + {s['decoder']}"
        info["variant"] = s["variant"]
        info["weights_sha256"], info["weight_files"] = _file_hashes(files)
        convention = "taesd"
    else:
        family = family_of(s)
        cls = _diffusers_class(family.diffusers_class if kind != "diffusers" else s["class"], family)
        if s.get("synthetic"):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s["seed"])
                model = cls(**family.tiny_config)
            info["source"] = f"synthetic {cls.__name__} at a tiny config (seed {s['seed']}, random weights)"
            info["synthetic"] = True
            info["weights_sha256"] = state_dict_sha256(model)
            info["weight_files"] = {}
        else:
            files = _ensure_files(s)
            source, kwargs = _from_pretrained_args(s, dtype)
            model = cls.from_pretrained(source, **kwargs)
            info["source"] = s["source"]
            info["weights_sha256"], info["weight_files"] = _file_hashes(files)
        convention = family.name

    model = model.to(device=device)
    if next(model.parameters()).dtype != dtype:
        model = model.to(dtype=dtype)
    model = model.eval().requires_grad_(False)
    family = FAMILIES[convention]
    if family.diffusers_class is None:
        latent_channels, factor = model.latent_channels, 8
    else:
        latent_channels = model.config[family.channels_key]
        factor = downsample_factor(family, model.config)
    info["weights_revision"] = weights.weights_revision(s)
    recorded = {k: model.config.get(k) for k in family.factors} if family.diffusers_class else {}
    sf = recorded.get("scaling_factor")
    info.update(
        latent_channels=int(latent_channels),
        downsample_factor=int(factor),
        latent_convention=family.convention(),
        scaling_factor_not_applied=sf,
        factors_not_applied=recorded,
        dtype=_dtype_name(dtype),
        device=str(torch.device(device)),
    )
    autoencoder = Autoencoder(model, convention, info)
    if kind == "diffusers" and s["class"] != family.diffusers_class:
        _check_convention(autoencoder, s["class"])
    return autoencoder


def _check_convention(autoencoder: Autoencoder, cls_name: str) -> None:
    """A class named with another family's convention: one encode/decode of a small blank image
    must give the declared shapes, else ValueError saying what differs."""
    fam, f = autoencoder.family, autoencoder.downsample_factor
    x = torch.zeros(1, 3, 2 * f, 2 * f, device=autoencoder.device)
    try:
        with torch.no_grad():
            z = autoencoder.encode(x)
            y = autoencoder.decode(z)
    except Exception as exc:  # the class's own error, named with the convention it failed
        raise ValueError(f"diffusers class {cls_name!r} does not follow convention {fam.name!r} "
                         f"({fam.convention()}): {type(exc).__name__}: {exc}") from exc
    if tuple(z.shape) != (1, autoencoder.latent_channels, 2, 2) or tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"diffusers class {cls_name!r} does not follow convention {fam.name!r}: a [1,3,{2*f},{2*f}] "
                         f"image gave latent {tuple(z.shape)} and decoded {tuple(y.shape)}")
