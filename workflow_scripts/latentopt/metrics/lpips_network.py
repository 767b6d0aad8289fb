"""The LPIPS network shared by the LPIPS loss (:mod:`latentopt.optimize.losses`) and the LPIPS
metric (:mod:`latentopt.metrics.image_metrics`): one cached, frozen LPIPS v0.1 network per
(net, random_trunk, device), and the per-image distance on images in [0, 1].

The network is the ``lpips`` package's (``lpips.LPIPS(net=..., version='0.1')``: scaling layer,
AlexNet / VGG16 trunk cut after each ReLU block, unit-normalised features, squared differences,
its calibrated 1x1 linear layers, spatial mean, sum over layers), built here from plain torch
layers so that a job does not import the package: ``lpips`` imports torchvision, whose ``ops``
import ``torch._dynamo`` (~2 s of CPU per job, more than ``import torch`` itself). The weights
are the same files: the linear layers from the lpips wheel (found without importing it), the trunk
from torchvision's hub checkpoint; a random trunk draws the same numbers in the same order as
torchvision's constructors under the same seed. tests/test_lpips_network.py checks the outputs
and gradients equal the package's, bit for bit.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

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


# Trunk layers as torchvision builds them ("M": max pool), and where LPIPS cuts the trunk (after
# these feature indices). VGG16 is torchvision's configuration "D".
_TRUNKS = {
    "alex": dict(layers=[(3, 64, 11, 4, 2), "R", ("M", 3), (64, 192, 5, 1, 2), "R", ("M", 3),
                         (192, 384, 3, 1, 1), "R", (384, 256, 3, 1, 1), "R", (256, 256, 3, 1, 1), "R"],
                 cuts=(2, 5, 8, 10, 12), channels=(64, 192, 384, 256, 256)),
    "vgg": dict(layers=[], cuts=(4, 9, 16, 23, 30), channels=(64, 128, 256, 512, 512),
                classifier=[(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]),
}
_in = 3
for _v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
    if _v == "M":
        _TRUNKS["vgg"]["layers"].append(("M", 2))
    else:
        _TRUNKS["vgg"]["layers"] += [(_in, _v, 3, 1, 1), "R"]
        _in = _v


def _lin_weights_file(net: str) -> Path:
    """The calibrated linear layers shipped inside the lpips wheel (located without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the lpips package (its calibrated linear layers) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / f"{net}.pth"


class _Scaling(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


class _Trunk(nn.Module):
    """The trunk's features cut into slice1..slice5, each layer under its torchvision index."""

    def __init__(self, layers: list[nn.Module], cuts: tuple[int, ...]):
        super().__init__()
        self.n_slices = len(cuts)
        for k, (a, b) in enumerate(zip((0, *cuts[:-1]), cuts), start=1):
            block = nn.Sequential()
            for i in range(a, b):
                block.add_module(str(i), layers[i])
            setattr(self, f"slice{k}", block)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for k in range(1, self.n_slices + 1):
            x = getattr(self, f"slice{k}")(x)
            outs.append(x)
        return outs


class _Lin(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, stride=1, padding=0, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPSNetwork(nn.Module):
    """LPIPS v0.1 (``lpips.LPIPS(pretrained=True, net=net, pnet_rand=random_trunk)``, eval mode),
    with the package's module names (its state_dict keys).

    A random trunk is initialised as torchvision's ``alexnet()`` / ``vgg16()`` do (layers drawn
    in construction order; VGG: its classifier too, then its own re-initialisation), so that under
    the same seed its weights are the package's."""

    def __init__(self, net: str, random_trunk: bool):
        super().__init__()
        spec = _TRUNKS[net]
        layers: list[nn.Module] = []
        for layer in spec["layers"]:
            if layer == "R":
                layers.append(nn.ReLU(inplace=True))
            elif layer[0] == "M":
                layers.append(nn.MaxPool2d(kernel_size=layer[1], stride=2))
            else:
                c_in, c_out, k, stride, pad = layer
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=k, stride=stride, padding=pad))
        if random_trunk and net == "vgg":
            # VGG.__init__ re-initialises its convolutions after building its classifier, whose
            # default initialisation draws from the same generator first (AlexNet's classifier
            # draws after its features: it cannot change them, and is not built here)
            classifier = [nn.Linear(a, b) for a, b in spec["classifier"]]
            for conv in (m for m in layers if isinstance(m, nn.Conv2d)):
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(conv.bias, 0)
            del classifier
        elif not random_trunk:
            trunk = torch.load(lpips_weight_files(net, False)[0].path, map_location="cpu", weights_only=True)
            for i, layer in enumerate(layers):
                if isinstance(layer, nn.Conv2d):
                    layer.weight.data.copy_(trunk[f"features.{i}.weight"])
                    layer.bias.data.copy_(trunk[f"features.{i}.bias"])
        self.scaling_layer = _Scaling()
        self.net = _Trunk(layers[: spec["cuts"][-1]], spec["cuts"])
        for k, c in enumerate(spec["channels"]):
            setattr(self, f"lin{k}", _Lin(c))
        self.lins = nn.ModuleList(getattr(self, f"lin{k}") for k in range(len(spec["channels"])))
        lin = torch.load(_lin_weights_file(net), map_location="cpu", weights_only=True)
        self.load_state_dict(lin, strict=False)

    @staticmethod
    def _unit(feat: Tensor, eps: float = 1e-10) -> Tensor:
        return feat / (torch.sqrt(torch.sum(feat ** 2, dim=1, keepdim=True)) + eps)

    def forward(self, in0: Tensor, in1: Tensor) -> Tensor:
        """Distance per image, [B, 1, 1, 1], for images in [-1, 1]: the package's operations in
        its order (so that the autograd graph, and the gradients' summation order, are its too)."""
        outs0, outs1 = self.net(self.scaling_layer(in0)), self.net(self.scaling_layer(in1))
        diffs = [(self._unit(a) - self._unit(b)) ** 2 for a, b in zip(outs0, outs1)]
        res = [lin(d).mean([2, 3], keepdim=True) for lin, d in zip(self.lins, diffs)]
        val: Any = 0
        for r in res:
            val += r
        return val


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
    with torch.random.fork_rng(devices=[]):  # built on the CPU: seed only its generator
        torch.default_generator.manual_seed(RANDOM_TRUNK_SEED)
        module = LPIPSNetwork(net, random_trunk)
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
