"""Loss specs (pure Python): the loss names a config may use, with their parameters and defaults.

A loss spec is a dict ``{"name": <name>, **params}`` (config ``losses.<arm>.loss``). This table is
the one place a parameter's default is written: the torch implementations in
:mod:`latentopt.optimize.losses` take their keyword defaults from it (and refuse to register with
parameter names that differ), and :func:`latentopt.workflow.config.check_loss_spec` checks specs
against it at parse time. ``weighted`` is ``{"name": "weighted", "terms": [{"name": ..., "weight":
w, **params}, ...]}``; its ``terms`` have no default.
"""

from __future__ import annotations

from typing import Any

LOSS_PARAMS: dict[str, dict[str, Any]] = {
    "mse": {},
    "l1": {},
    "psnr": {},
    "ssim": {},
    "improved_ssim": {"window_size": 11, "sigma": 1.5},
    "ms_ssim": {},
    "lpips": {"net": "alex", "random_trunk": False},
    "weighted": {"terms": None},
}
LPIPS_NETS = ("alex", "vgg")


def loss_terms(spec: dict) -> list[dict]:
    """The plain (non-weighted) specs a spec is made of: itself, or a weighted spec's terms, nested."""
    if spec.get("name") == "weighted":
        return [t for term in spec.get("terms", []) for t in loss_terms(term)]
    return [spec]


def lpips_nets(spec: dict) -> set[str]:
    """The LPIPS trunks with pretrained weights that a loss spec needs (random trunks need none)."""
    defaults = LOSS_PARAMS["lpips"]
    return {
        term.get("net", defaults["net"])
        for term in loss_terms(spec)
        if term["name"] == "lpips" and not term.get("random_trunk", defaults["random_trunk"])
    }
