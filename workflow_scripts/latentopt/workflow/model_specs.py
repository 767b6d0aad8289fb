"""Autoencoder specs (pure Python): the model kinds, their keys and defaults, and the presets.

A spec is a dict such as the pipeline config's ``model`` section builds (:func:`config_spec`):
``{"kind": <kind>, **keys}`` or ``{"preset": <name>, **overrides}``. :func:`normalize_spec` fills
in the defaults of :data:`SPEC_DEFAULTS` (a preset becomes the spec of its family's kind) and raises
``ValueError`` naming an unknown kind, preset or key, or a missing required key. Families, presets
and their conventions are declared once, in :mod:`latentopt.models.families`; the files a spec
needs are :func:`latentopt.workflow.weights.required_weight_files`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from latentopt.models.families import FAMILIES, FAMILY_BY_CLASS, PRESETS, TAESD_REPO, TAESD_VARIANTS

__all__ = ["SPEC_DEFAULTS", "CONFIG_DEFAULTS", "TAESD_VARIANTS", "TAESD_REPO", "normalize_spec", "config_spec",
           "family_of", "guess_taesd_variant", "taesd_url"]

SEED_VAE = {"source": "CompVis/stable-diffusion-v1-4", "subfolder": "vae", "revision": None}
SPEC_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusers_kl": {"source": None, "subfolder": None, "revision": None},
    "diffusers_tiny": {"source": None, "subfolder": None, "revision": None},
    "diffusers": {"class": None, "convention": None, "source": None, "subfolder": None, "revision": None,
                  "preset": None, "synthetic": False, "seed": 0},
    "taesd": {"encoder": None, "decoder": None, "variant": None, "preset": None, "synthetic": False, "seed": 0},
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
    "diffusers": ("class", "source"),
    "taesd": ("encoder", "decoder"),
    "synthetic_kl": (),
    "demo_trained": ("weights",),
}
KIND_FAMILY = {"diffusers_kl": "kl", "diffusers_tiny": "tiny", "taesd": "taesd", "synthetic_kl": "kl",
               "demo_trained": "demo"}
# What a config's `model` block gives each kind when a key is absent (the run's model spec and so
# its arms' fingerprints: unchanged since these kinds were introduced). demo_trained's weights are
# a path under results_dir (latentopt.workflow.config.model_spec).
CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusers_kl": dict(SEED_VAE),
    "diffusers_tiny": dict(SEED_VAE),
    "diffusers": {"class": None, "convention": None, "source": None, "subfolder": None, "revision": None},
    "taesd": {"encoder": None, "decoder": None, "variant": None},
    "synthetic_kl": {"seed": 0},
    "demo_trained": {},
}
DEFAULT_KIND = "diffusers_kl"
PRESET_OVERRIDES = ("source", "subfolder", "revision")


def family_of(spec: dict):
    """The :class:`~latentopt.models.families.Family` of a normalised spec."""
    if spec["kind"] == "diffusers":
        return FAMILIES[spec["convention"]]
    return FAMILIES[KIND_FAMILY[spec["kind"]]]


def config_spec(block: dict) -> dict:
    """The model spec of a validated config ``model`` block (absent keys: :data:`CONFIG_DEFAULTS`).

    ``preset`` wins; ``kind`` must then be absent. The TAESD variant is resolved here (given, or
    guessed from the encoder's file name), so that the spec every job gets says which network it is.
    """
    if block.get("preset"):
        if block.get("kind"):
            raise ValueError(f"model: give either 'preset' ({block['preset']!r}) or 'kind' ({block['kind']!r}), not both")
        if block.get("synthetic"):  # no files: where they would be is no part of the spec
            return {"preset": block["preset"], "synthetic": True, "seed": int(block.get("seed") or 0)}
        return {"preset": block["preset"], **{k: block[k] for k in PRESET_OVERRIDES if k in block}}
    kind = block.get("kind") or DEFAULT_KIND
    if kind not in CONFIG_DEFAULTS:
        raise ValueError(f"model.kind: unknown {kind!r}; expected one of {sorted(CONFIG_DEFAULTS)}")
    if block.get("synthetic"):
        raise ValueError("model.synthetic: only with a preset (model: {preset: <name>, synthetic: true})")
    spec = {"kind": kind, **{k: block.get(k, d) for k, d in CONFIG_DEFAULTS[kind].items()}}
    if kind == "taesd" and spec["encoder"]:
        spec["variant"] = _taesd_variant(spec)
    return spec


def _taesd_variant(s: dict) -> str:
    variant = s["variant"] or guess_taesd_variant(s["encoder"])
    if variant not in TAESD_VARIANTS:
        raise ValueError(
            f"taesd spec: variant {s['variant']!r} unknown or not guessable from "
            f"{s['encoder']!r}; set 'variant' to one of {sorted(TAESD_VARIANTS)}"
        )
    return variant


def _from_preset(spec: dict) -> dict:
    name = spec["preset"]
    if name not in PRESETS:
        raise ValueError(f"unknown autoencoder preset {name!r}; expected one of {sorted(PRESETS)}")
    allowed = {"preset", "synthetic", "seed", *PRESET_OVERRIDES}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in preset {name!r} spec; allowed: {sorted(allowed)}")
    p = PRESETS[name]
    synthetic = bool(spec.get("synthetic", False))
    common = {"preset": name, "synthetic": synthetic, "seed": int(spec.get("seed") or 0)}
    if p.family == "taesd":
        folder = spec.get("source")
        if not folder and not synthetic:
            raise ValueError(
                f"preset {name!r} needs 'source': the folder holding {p.variant}_encoder.pth and "
                f"{p.variant}_decoder.pth (from {TAESD_REPO})"
            )
        files = {part: (str(Path(folder) / f"{p.variant}_{part}.pth") if folder else None) for part in ("encoder", "decoder")}
        return {"kind": "taesd", **files, "variant": p.variant, **common}
    overridden = "source" in spec
    return {
        "kind": "diffusers",
        "class": FAMILIES[p.family].diffusers_class,
        "convention": p.family,
        "source": spec["source"] if overridden else p.hub_id,
        # a source of your own is the model folder itself unless you say otherwise
        "subfolder": spec.get("subfolder", None if overridden else p.subfolder),
        "revision": spec.get("revision", None if overridden else p.revision),
        **common,
    }


def normalize_spec(spec: dict) -> dict:
    """A copy of ``spec`` with defaults filled in; ValueError naming an unknown kind or key, or a
    missing required key."""
    if not isinstance(spec, dict):
        raise ValueError(f"autoencoder spec must be a dict, got {type(spec).__name__}")
    if spec.get("preset") is not None and "kind" not in spec:
        spec = _from_preset(spec)
    kind = spec.get("kind")
    if kind not in SPEC_DEFAULTS:
        raise ValueError(
            f"unknown autoencoder kind {kind!r}; expected one of {sorted(SPEC_DEFAULTS)}, or a preset: {sorted(PRESETS)}"
        )
    defaults = SPEC_DEFAULTS[kind]
    unknown = sorted(set(spec) - set(defaults) - {"kind"})
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {kind} autoencoder spec; allowed: {sorted(defaults)}"
        )
    out = {"kind": kind, **defaults, **{k: v for k, v in spec.items() if k != "kind"}}
    synthetic = bool(out.get("synthetic"))
    for key in REQUIRED_KEYS[kind]:
        if out.get(key) in (None, "") and not (synthetic and key in ("source", "encoder", "decoder")):
            raise ValueError(f"{kind} autoencoder spec needs {key!r}")
    if kind == "taesd":
        out["variant"] = _taesd_variant(out) if out["encoder"] else out["variant"]
        if out["variant"] not in TAESD_VARIANTS:
            raise ValueError(f"taesd spec: set 'variant' to one of {sorted(TAESD_VARIANTS)}")
    if kind == "diffusers":
        out["convention"] = _convention(out["class"], out["convention"])
    if kind == "synthetic_kl":
        out["block_out_channels"] = [int(c) for c in out["block_out_channels"]]
        for key in ("seed", "latent_channels", "layers_per_block", "norm_num_groups"):
            out[key] = int(out[key])
    return out


def _convention(cls: str, convention: str | None) -> str:
    """The family whose convention a diffusers class follows: its own declaration, or the one named."""
    declared = FAMILY_BY_CLASS.get(cls)
    if convention is None:
        if declared is None:
            raise ValueError(
                f"diffusers class {cls!r} has no declared family ({sorted(FAMILY_BY_CLASS)}); if it follows "
                f"one of their conventions, name it with 'convention' (one of {sorted(FAMILY_BY_CLASS[c].name for c in FAMILY_BY_CLASS)}), "
                f"else declare a family in latentopt/models/families.py (docs/autoencoders.md)"
            )
        return declared.name
    if convention not in FAMILIES or FAMILIES[convention].diffusers_class is None:
        raise ValueError(
            f"diffusers spec: convention {convention!r} unknown; expected one of "
            f"{sorted(f.name for f in FAMILY_BY_CLASS.values())}"
        )
    if declared is not None and declared.name != convention:
        raise ValueError(f"diffusers class {cls!r} is declared with convention {declared.name!r}, not {convention!r}")
    return convention


def guess_taesd_variant(path: str | Path) -> str | None:
    """The variant named in a checkpoint's file name (``taef2_encoder.pth`` -> ``taef2``), if any."""
    found = re.findall(r"tae(?:sd|f1|f2)(?![0-9a-z])", Path(str(path)).name.lower())
    return found[0] if len(set(found)) == 1 else None


def taesd_url(variant: str, part: str) -> str:
    """Where madebyollin/taesd publishes ``<variant>_<part>.pth`` (part: encoder or decoder)."""
    return f"{TAESD_REPO}/raw/main/{variant}_{part}.pth"
