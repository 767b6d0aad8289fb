"""The FID Inception-v3 network and its features (pytorch-fid's ``InceptionV3``, as pytorch-fid keeps
it apart from the statistic; FID and KID themselves: :mod:`latentopt.metrics.fid`).

Features
    phi(x) in R^2048 is the output of the final average pooling of the FID Inception-v3
    (``pytorch_fid.inception.InceptionV3`` block 3, ``use_fid_inception=True``: the TensorFlow
    FID weights ``pt_inception-2015-12-05-6726825d.pth``). Input images are RGB uint8, scaled to
    [0, 1]; the network bilinearly resizes every image to 299x299 (``resize_input=True``,
    align_corners=False, as pytorch-fid does) and maps [0, 1] to [-1, 1]
    (``normalize_input=True``). Images of different sizes/orientations are each resized
    directly, without cropping or padding.

Uncalibrated (synthetic) networks
    ``load_inception(synthetic=True)`` builds the same architecture with seeded random weights
    for tests and offline dry runs; ``calibrated`` is then False and any FID/KID computed with
    it is meaningless as an absolute number and must be labelled "uncalibrated" by callers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from pytorch_fid import inception as pfi

from latentopt.compute.precision import exact_fp32
from latentopt.data.images import read_rgb
from latentopt.workflow import weights

__all__ = ["load_inception", "inception_features", "FEATURE_DIM"]

FEATURE_DIM = 2048


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------

def load_inception(device: str = "cpu", synthetic: bool = False, seed: int = 0):
    """The FID Inception-v3 (2048-d pool features), in eval mode, and whether it is calibrated.

    Returns ``(model, calibrated)``. ``synthetic=False`` loads the TensorFlow-FID weights from
    torch hub's checkpoint cache and raises ``weights.MissingWeightsError`` (before any
    download could be attempted) when the file is absent. ``synthetic=True`` builds the same
    architecture with random weights seeded by ``seed`` (He-normal convolutions, unit
    batch-norm statistics), touching no file and no network; ``calibrated`` is then False.
    """
    block = [pfi.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]]
    kwargs = dict(resize_input=True, normalize_input=True, use_fid_inception=True)

    if not synthetic:
        checkpoint = weights.torch_hub_checkpoint("fid_inception")
        weights.require([checkpoint])

        def _load_local(url, *args, **kw):
            return torch.load(checkpoint.path, map_location="cpu", weights_only=True)

        with mock.patch.object(pfi, "load_state_dict_from_url", _load_local):
            model = pfi.InceptionV3(block, **kwargs)
        calibrated = True
    else:
        built = []
        original_builder = pfi._inception_v3

        def _record_builder(*args, **kw):
            net = original_builder(*args, **kw)
            built.append(net)
            return net

        def _own_state(url, *args, **kw):
            # fid_inception_v3 has replaced the Mixed_* blocks of the recorded network by the
            # FID variants before loading, so its own state dict has exactly the right keys.
            return built[-1].state_dict()

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with mock.patch.object(pfi, "_inception_v3", _record_builder), \
                    mock.patch.object(pfi, "load_state_dict_from_url", _own_state):
                model = pfi.InceptionV3(block, **kwargs)
            _init_synthetic(model)
        calibrated = False

    model.eval()
    model.to(device)
    return model, calibrated


def _init_synthetic(model) -> None:
    """Variance-preserving random init (inside the caller's seeded RNG context)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------

def _load_image(item) -> np.ndarray:
    if isinstance(item, (str, Path)):
        arr = read_rgb(item)
    else:
        arr = np.asarray(item)
        if arr.dtype != np.uint8:
            raise TypeError(f"images must be uint8 HxWx3 arrays or file paths, got {arr.dtype}")
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        elif arr.ndim == 3 and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    return arr


def _batches(images: Iterable, batch_size: int):
    """Consecutive same-shape images, at most batch_size per batch, in input order."""
    batch: list[np.ndarray] = []
    for item in images:
        arr = _load_image(item)
        if batch and (arr.shape != batch[0].shape or len(batch) >= batch_size):
            yield batch
            batch = []
        batch.append(arr)
    if batch:
        yield batch


def inception_features(images: Iterable, model, device: str = "cpu",
                       batch_size: int = 16) -> np.ndarray:
    """[N, 2048] float64 pool features of uint8 HxWx3 arrays or image files, in input order.

    Images may have different sizes (e.g. BSDS500's 481x321 and 321x481): consecutive images of
    the same shape are batched (up to ``batch_size``), every image is resized to 299x299 by the
    network itself.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    chunks = []
    with torch.no_grad(), exact_fp32():
        for batch in _batches(images, batch_size):
            x = torch.from_numpy(np.stack(batch)).to(device)
            x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
            pooled = model(x)[0]
            chunks.append(pooled.reshape(pooled.shape[0], -1).cpu().numpy().astype(np.float64))
    if not chunks:
        return np.zeros((0, FEATURE_DIM), dtype=np.float64)
    return np.concatenate(chunks, axis=0)
