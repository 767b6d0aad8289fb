"""Autoencoder specs (pure Python): the model kinds, their keys and defaults, and the TAESD variants.

A spec is a dict such as the pipeline config's ``model`` section builds (``config.model_spec``):
``{"kind": <kind>, **keys}``. :func:`normalize_spec` fills in the defaults of :data:`SPEC_DEFAULTS`
and raises ``ValueError`` naming an unknown kind or key, or a missing required key. What each kind
is, and its latent convention, is :mod:`latentopt.models.autoencoders`; the files a spec needs are
:func:`latentopt.workflow.weights.required_weight_files`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
# "synthetic", one meaning everywhere (model info, records, reports, the study): the model's numbers
# are not research results, because it is randomly initialised (synthetic_kl) or a tiny autoencoder
# the demo trains for itself (demo_trained), not a published one.
SYNTHETIC_KINDS = ("synthetic_kl", "demo_trained")
REQUIRED_KEYS = {
    "diffusers_kl": ("source",),
    "diffusers_tiny": ("source",),
    "taesd": ("encoder", "decoder"),
    "synthetic_kl": (),
    "demo_trained": ("weights",),
}
# The TAESD family (latentopt.models.taesd builds them from this table): latent channels, and
# whether the lowest-resolution blocks carry the pool/GroupNorm bottleneck (taef2).
TAESD_VARIANTS: dict[str, dict] = {
    "taesd": {"latent_channels": 4, "midblock_gn": False},
    "taef1": {"latent_channels": 16, "midblock_gn": False},
    "taef2": {"latent_channels": 32, "midblock_gn": True},
}
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
        variant = out["variant"] or guess_taesd_variant(out["encoder"])
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


def guess_taesd_variant(path: str | Path) -> str | None:
    """The variant named in a checkpoint's file name (``taef2_encoder.pth`` -> ``taef2``), if any."""
    found = re.findall(r"tae(?:sd|f1|f2)(?![0-9a-z])", Path(str(path)).name.lower())
    return found[0] if len(set(found)) == 1 else None


def taesd_url(variant: str, part: str) -> str:
    """Where madebyollin/taesd publishes ``<variant>_<part>.pth`` (part: encoder or decoder)."""
    return f"{TAESD_REPO}/raw/main/{variant}_{part}.pth"
