"""The LPIPS network shared by the LPIPS loss (:mod:`latentopt.optimize.losses`) and the LPIPS
metric (:mod:`latentopt.metrics.image_metrics`): one cached, frozen ``lpips.LPIPS`` per
(net, random_trunk, device), and the per-image distance on images in [0, 1]."""

from __future__ import annotations

import warnings
from typing import Any

import lpips as lpips_pkg
import torch
from torch import Tensor

from latentopt.workflow import weights
from latentopt.workflow.loss_specs import LOSS_PARAMS, LPIPS_NETS

_LPIPS = LOSS_PARAMS["lpips"]
RANDOM_TRUNK_SEED = 0

_LPIPS_CACHE: dict[tuple[str, bool, str], torch.nn.Module] = {}


def _canonical_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type != "cpu" and device.index is None:
        device = torch.empty(0, device=device).device  # "cuda" -> "cuda:0"
    return device


def lpips_weight_files(net: str = _LPIPS["net"], random_trunk: bool = _LPIPS["random_trunk"]) -> list[weights.WeightFile]:
    """The torchvision trunk checkpoint LPIPS(net) needs ([] for a random trunk)."""
    _check_lpips_args(net, random_trunk)
    return [] if random_trunk else [weights.torch_hub_checkpoint(f"lpips_{net}")]


def _check_lpips_args(net: Any, random_trunk: Any) -> None:
    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net must be one of {list(LPIPS_NETS)}, got {net!r}")
    if not isinstance(random_trunk, bool):
        raise ValueError(f"LPIPS random_trunk must be a bool, got {random_trunk!r}")


def lpips_network(
    net: str = _LPIPS["net"], random_trunk: bool = _LPIPS["random_trunk"], device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """The lpips.LPIPS module for (net, random_trunk) on ``device``: eval mode, no parameter
    requires grad, one cached instance per (net, random_trunk, device).

    The calibrated linear layers ship inside the lpips wheel. The trunk (AlexNet / VGG16 ImageNet
    weights) comes from torchvision's torch.hub cache; when ``random_trunk`` is False and that
    file is missing, ``weights.MissingWeightsError`` is raised before torchvision could try to
    download it. A random trunk is initialised under a fixed seed (the global RNG is untouched).
    """
    _check_lpips_args(net, random_trunk)
    dev = _canonical_device(device)
    key = (net, random_trunk, str(dev))
    cached = _LPIPS_CACHE.get(key)
    if cached is not None:
        return cached
    weights.require(lpips_weight_files(net, random_trunk))
    with warnings.catch_warnings():
        # torchvision's deprecation notices about lpips' `pretrained=` argument.
        warnings.simplefilter("ignore", UserWarning)
        with torch.random.fork_rng(devices=[]):  # built on the CPU: seed only its generator
            torch.default_generator.manual_seed(RANDOM_TRUNK_SEED)
            module = lpips_pkg.LPIPS(
                pretrained=True, net=net, pnet_rand=random_trunk, verbose=False
            )
    module = module.to(dev).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    _LPIPS_CACHE[key] = module
    return module


def lpips_distance(network: torch.nn.Module, pred: Tensor, target: Tensor) -> Tensor:
    """LPIPS per image, [B], for images in [0, 1]: ``network(2 pred - 1, 2 target - 1)``.

    Inputs are cast to the network's dtype and device; the result comes back in pred's."""
    p = next(network.parameters())
    a = (2 * pred - 1).to(dtype=p.dtype, device=p.device)
    b = (2 * target - 1).to(dtype=p.dtype, device=p.device)
    return network(a, b).reshape(pred.shape[0]).to(dtype=pred.dtype, device=pred.device)
