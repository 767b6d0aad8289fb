"""The torch-free spec registries (latentopt.workflow.*_specs) agree with the implementations."""

from __future__ import annotations

import numpy as np
import pytest

from latentopt.metrics.image_metrics import image_metrics
from latentopt.metrics.visual_quality import visual_metrics
from latentopt.models.taesd import TAESD
from latentopt.optimize import losses as L
from latentopt.workflow.loss_specs import LOSS_PARAMS, LPIPS_NETS, lpips_nets
from latentopt.workflow.metric_specs import EVALUATED_METRICS, HIGHER_IS_BETTER, METRIC_RANGES, TARGET_VALUE
from latentopt.workflow.model_specs import TAESD_VARIANTS


def test_loss_registry_and_loss_specs_agree():
    assert set(L.LOSSES) == set(LOSS_PARAMS)
    for name, factory in L.LOSSES.items():
        assert factory.params == LOSS_PARAMS[name], name
    # the functions called directly use the same defaults
    assert L.improved_ssim.__kwdefaults__ == LOSS_PARAMS["improved_ssim"]
    assert L.lpips.__kwdefaults__ == LOSS_PARAMS["lpips"]


def test_a_loss_whose_parameters_differ_from_its_spec_is_refused():
    def improved_ssim(pred, target, *, window: int = 11):
        return pred

    with pytest.raises(TypeError, match=r"improved_ssim.*\['window'\].*\['sigma', 'window_size'\]"):
        L.loss_factory(improved_ssim)


def test_lpips_nets_of_a_spec():
    assert lpips_nets({"name": "lpips"}) == {LOSS_PARAMS["lpips"]["net"]}
    assert lpips_nets({"name": "lpips", "net": "vgg", "random_trunk": True}) == set()
    weighted = {"name": "weighted", "terms": [{"name": "mse", "weight": 1}, {"name": "weighted", "weight": 1,
                "terms": [{"name": "lpips", "net": "vgg", "weight": 0.1}]}]}
    assert lpips_nets(weighted) == {"vgg"}


def test_metric_registry_names_what_the_metrics_compute():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    pred = np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    computed = {**image_metrics(pred, ref), **visual_metrics(pred, ref)}
    lpips = [m for m in EVALUATED_METRICS if m.startswith("lpips_")]
    assert lpips == [f"lpips_{net}" for net in LPIPS_NETS]
    assert sorted(computed) == sorted(m for m in EVALUATED_METRICS if m not in lpips)
    # every evaluated metric has a direction or a target, and the ranges name known metrics only
    assert set(EVALUATED_METRICS) <= set(HIGHER_IS_BETTER) | set(TARGET_VALUE)
    assert set(METRIC_RANGES) <= set(HIGHER_IS_BETTER)


@pytest.mark.parametrize("variant", sorted(TAESD_VARIANTS))
def test_taesd_networks_follow_the_variant_table(variant):
    net = TAESD(variant)
    assert net.latent_channels == TAESD_VARIANTS[variant]["latent_channels"]
