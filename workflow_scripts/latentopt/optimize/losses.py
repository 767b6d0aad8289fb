"""Reconstruction losses for latent optimisation (LPIPS through the network the metrics use too,
:mod:`latentopt.metrics.lpips_network`).

Every loss maps ``pred, target`` (tensors [B, 3, H, W], values in [0, 1]) to a per-image tensor
[B] (lower is better), so a batch of independent images is optimised with the SUM of the per-image
losses (each latent's gradient then depends only on its own image).

Definitions (per image; means over C x H x W):

* ``mse``            mean((pred - target)**2)
* ``l1``             mean(|pred - target|)
* ``psnr``           -PSNR with PSNR = -10 log10(mse + 1e-8), i.e. 10 log10(mse + 1e-8); the
                     reference implementation's definition (the 1e-8 keeps it finite at
                     pred == target). The evaluation PSNR in ``metrics`` has no epsilon.
* ``ssim``           1 - SSIM(pred, target), Gaussian window 11 / sigma 1.5 (``ssim.ssim``).
* ``improved_ssim``  1 - SSIM with explicit ``window_size`` and ``sigma`` (defaults 11, 1.5). The
                     reference repository had three conflicting definitions of its "improved SSIM"
                     (7 / 1.5, 15 / 2.0 and 11 / 1.5); ours takes the window as parameters, works
                     on all three RGB channels, and uses only valid window positions (no padding,
                     hence no zero-padding bias at the borders); see ``latentopt.metrics.ssim``.
* ``ms_ssim``        1 - MS-SSIM(pred, target) (``ssim.ms_ssim``, 5 scales, 11 / 1.5; images must
                     be at least 176 x 176).
* ``lpips``          LPIPS(2 pred - 1, 2 target - 1) (inputs mapped to [-1, 1] as the lpips package
                     expects), parameters ``net`` in {"alex", "vgg"} and ``random_trunk`` (a
                     randomly initialised trunk with the package's calibrated linear layers; the
                     random init is seeded, so it is the same network in every process).

Building losses from configuration: ``LOSSES`` maps a name to a factory ``factory(device=...,
**params)`` returning a callable loss; ``build_loss(spec)`` takes a dict such as
``{"name": "improved_ssim", "window_size": 11, "sigma": 1.5}`` or
``{"name": "weighted", "terms": [{"name": "mse", "weight": 1.0},
{"name": "lpips", "weight": 0.1, "net": "vgg"}]}`` (per-image sum of weight * term).

Adding a loss = its name, parameters and defaults in ``latentopt.workflow.loss_specs.LOSS_PARAMS``
(the only place a default is written), one function ``def name(pred, target, *, param, ...) ->
Tensor[B]`` here and one entry ``"name": loss_factory(name)`` in ``LOSSES``. Its keyword-only
parameters are the parameters a spec may set (``loss_factory`` gives them the spec's defaults and
refuses a function whose parameters differ from the spec's); anything else is rejected with a
ValueError.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


from latentopt.metrics import ssim as _ssim
from latentopt.metrics.image_metrics import per_image_mean
from latentopt.metrics.lpips_network import lpips_distance, lpips_network
from latentopt.workflow.metric_specs import SSIM_WINDOW
from latentopt.workflow.loss_specs import LOSS_PARAMS

LossFn = Callable[[Tensor, Tensor], Tensor]

_LPIPS = LOSS_PARAMS["lpips"]
PSNR_EPS = 1e-8

# ---------------------------------------------------------------------------------------------
# Loss functions: pred, target [B, 3, H, W] in [0, 1] -> [B]
# ---------------------------------------------------------------------------------------------


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per image (mean over C x H x W)."""
    return per_image_mean((pred - target) ** 2)


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image (mean over C x H x W)."""
    return per_image_mean((pred - target).abs())


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """-PSNR per image with the reference definition PSNR = -10 log10(mse + 1e-8)."""
    return 10.0 * torch.log10(mse(pred, target) + PSNR_EPS)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM per image (Gaussian window 11, sigma 1.5, RGB, valid positions)."""
    return 1.0 - _ssim.ssim(pred, target, window_size=SSIM_WINDOW[0], sigma=SSIM_WINDOW[1])


def improved_ssim(pred: Tensor, target: Tensor, *, window_size: int, sigma: float) -> Tensor:
    """1 - SSIM per image with an explicit Gaussian window.

    The reference repository defined its "improved SSIM" three conflicting ways (7 / 1.5,
    15 / 2.0, 11 / 1.5); here the window is a parameter (default 11 / 1.5), all three RGB channels
    are used and only valid window positions count (no zero-padding bias at the borders)."""
    return 1.0 - _ssim.ssim(pred, target, window_size=window_size, sigma=sigma)


def ms_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """1 - MS-SSIM per image (5 scales, window 11, sigma 1.5; images >= 176 x 176)."""
    return 1.0 - _ssim.ms_ssim(pred, target)


def lpips(pred: Tensor, target: Tensor, *, net: str, random_trunk: bool) -> Tensor:
    """LPIPS per image, inputs mapped from [0, 1] to [-1, 1]; network from ``lpips_network``."""
    return lpips_distance(lpips_network(net, random_trunk, pred.device), pred, target)


# ---------------------------------------------------------------------------------------------
# Registry and spec parsing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """A loss function with its parameters bound: ``loss(pred, target) -> Tensor[B]``."""

    name: str
    fn: Callable[..., Tensor]
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.fn(pred, target, **self.params)


@dataclass(frozen=True)
class WeightedLoss:
    """Per-image sum of weight * term(pred, target)."""

    terms: tuple[tuple[float, LossFn], ...]
    name: str = "weighted"

    def components(self, pred: Tensor, target: Tensor) -> list[Tensor]:
        """The unweighted per-image value of each term, in order."""
        return [term(pred, target) for _, term in self.terms]

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        total = None
        for weight, term in self.terms:
            value = weight * term(pred, target)
            total = value if total is None else total + value
        return total


def _loss_params(fn: Callable[..., Tensor]) -> dict[str, Any]:
    """Keyword-only parameters of a loss function and their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _take_spec_defaults(fn: Callable[..., Tensor]) -> None:
    """Give a registered loss function the defaults of its entry in ``loss_specs.LOSS_PARAMS``
    (written there only); TypeError when its keyword-only parameters are not the spec's."""
    spec = LOSS_PARAMS[fn.__name__]
    names = list(_loss_params(fn))
    if sorted(names) != sorted(spec):
        raise TypeError(
            f"loss {fn.__name__!r}: keyword-only parameters {names} differ from the spec's "
            f"{sorted(spec)} (latentopt.workflow.loss_specs.LOSS_PARAMS)"
        )
    fn.__kwdefaults__ = dict(spec) or None


def _check_params(
    name: str, given: Mapping[str, Any], valid: Mapping[str, Any] | list[str]
) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        valid_list = ", ".join(sorted(valid)) or "none"
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss {name!r}; valid parameters: {valid_list}"
        )


def loss_factory(
    fn: Callable[..., Tensor],
    prepare: Callable[..., Any] | None = None,
) -> Callable[..., Loss]:
    """Factory ``(device="cpu", **params) -> Loss`` for a loss function whose keyword-only
    parameters are its configurable parameters. ``prepare(device=..., **params)``, if given, runs
    at build time (to validate values and load networks early). A function named in
    ``loss_specs.LOSS_PARAMS`` takes its defaults from there."""
    if fn.__name__ in LOSS_PARAMS:
        _take_spec_defaults(fn)
    defaults = _loss_params(fn)

    def factory(device: torch.device | str = "cpu", **params: Any) -> Loss:
        _check_params(fn.__name__, params, defaults)
        bound = {**defaults, **params}
        if prepare is not None:
            prepare(device=device, **bound)
        return Loss(fn.__name__, fn, bound)

    factory.params = defaults  # type: ignore[attr-defined]
    return factory


def _prepare_window(device: Any, window_size: int, sigma: float) -> None:
    _ssim.gaussian_window(window_size, sigma)


def _prepare_lpips(device: Any, net: str, random_trunk: bool) -> None:
    lpips_network(net, random_trunk, device)


def _weighted_factory(device: torch.device | str = "cpu", **params: Any) -> WeightedLoss:
    _check_params("weighted", params, ["terms"])
    terms = params.get("terms")
    if not isinstance(terms, (list, tuple)) or not terms:
        raise ValueError("loss 'weighted' needs 'terms': a non-empty list of loss specs")
    built = []
    for i, term in enumerate(terms):
        if not isinstance(term, Mapping) or "weight" not in term:
            raise ValueError(
                f"loss 'weighted' term {i} must be a dict with 'name', 'weight' and the term's "
                f"parameters, got {term!r}"
            )
        weight = term["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"loss 'weighted' term {i}: weight must be a number, got {weight!r}")
        rest = {k: v for k, v in term.items() if k != "weight"}
        built.append((float(weight), build_loss(rest, device=device)))
    return WeightedLoss(tuple(built))


_weighted_factory.params = dict(LOSS_PARAMS["weighted"])  # type: ignore[attr-defined]

LOSSES: dict[str, Callable[..., LossFn]] = {
    "mse": loss_factory(mse),
    "l1": loss_factory(l1),
    "psnr": loss_factory(psnr),
    "ssim": loss_factory(ssim),
    "improved_ssim": loss_factory(improved_ssim, prepare=_prepare_window),
    "ms_ssim": loss_factory(ms_ssim),
    "lpips": loss_factory(lpips, prepare=_prepare_lpips),
    "weighted": _weighted_factory,
}


def build_loss(spec: Mapping[str, Any], device: torch.device | str = "cpu") -> LossFn:
    """Callable loss from a spec dict ``{"name": ..., **params}`` (see module docstring)."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a loss spec must be a dict with a 'name' key, got {spec!r}")
    if "name" not in spec:
        raise ValueError(f"loss spec {dict(spec)!r} has no 'name'; valid names: {sorted(LOSSES)}")
    name = spec["name"]
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    params = {k: v for k, v in spec.items() if k != "name"}
    return LOSSES[name](device=device, **params)


def loss_uses_lpips(spec: Mapping[str, Any]) -> bool:
    """Whether a loss spec (possibly weighted, nested) contains an LPIPS term."""
    if not isinstance(spec, Mapping):
        return False
    if spec.get("name") == "lpips":
        return True
    if spec.get("name") == "weighted":
        return any(loss_uses_lpips(t) for t in spec.get("terms") or [])
    return False
