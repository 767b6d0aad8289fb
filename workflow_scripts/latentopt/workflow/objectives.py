"""Which evaluation metrics a loss optimizes directly (its own objective), so that conclusions
can tell held-out evidence from an arm scoring well on what it was trained for."""

from __future__ import annotations

from collections.abc import Mapping

from latentopt.workflow.loss_specs import LOSS_PARAMS
from latentopt.workflow.metric_specs import SSIM_WINDOW


def optimized_metrics(spec: Mapping, config: Mapping) -> set[str]:
    """Evaluation metrics that the loss ``spec`` optimizes directly (the same quantity, or a
    monotone transform of it, on the same network): the 'optimized metric' flag of the tables.
    An SSIM loss counts only with the evaluation window (11 taps, sigma 1.5); an LPIPS loss only
    with the same trunk as the evaluation (calibrated vs. random)."""
    name = spec.get("name")
    if name == "weighted":
        out: set[str] = set()
        for term in spec.get("terms") or []:
            if term.get("weight", 0):
                out |= optimized_metrics({k: v for k, v in term.items() if k != "weight"}, config)
        return out
    if name in ("psnr", "mse"):
        return {"psnr", "mse"}
    if name == "l1":
        return {"mae"}
    if name in ("ssim", "improved_ssim"):
        window = {**LOSS_PARAMS.get(name, {}), **spec}  # plain ssim: the evaluation window itself
        return {"ssim"} if name == "ssim" or (window["window_size"], float(window["sigma"])) == SSIM_WINDOW else set()
    if name == "lpips":
        lpips = {**LOSS_PARAMS["lpips"], **spec}
        same_trunk = bool(lpips["random_trunk"]) == bool(config["metric_networks"]["lpips_random_trunk"])
        return {f"lpips_{lpips['net']}"} if same_trunk else set()
    return set()


def arm_objectives(config: Mapping, arms) -> dict[str, set[str]]:
    """{arm: optimized_metrics of its loss} for the loss arms of ``config`` among ``arms``."""
    return {a: optimized_metrics(config["losses"][a]["loss"], config) for a in arms if a in config.get("losses", {})}


# Evaluation metrics that are monotone or near-monotone relatives of one another: a loss that
# optimizes one of them improves the others on (almost) every image, so none of them is
# independent ("held-out") evidence for it. PSNR = -10·log10(MSE) is a monotone transform of MSE;
# MAE and MSE are both pixel-error norms of the same residual (near-monotone across images).
RELATED_METRICS: tuple[frozenset[str], ...] = (frozenset({"mse", "psnr", "mae"}),)


def with_relatives(metrics) -> set[str]:
    """``metrics`` plus every metric declared related to one of them (RELATED_METRICS)."""
    out = set(metrics)
    for group in RELATED_METRICS:
        if out & group:
            out |= group
    return out


# The evaluation metrics computed with each metric network.
NETWORK_METRICS = {"lpips": ("lpips_alex", "lpips_vgg"), "inception": ("fid", "kid", "kid_unpaired")}
NOT_JUDGED = "not judged: uncalibrated network"


def uncalibrated_metrics(config: Mapping) -> set[str]:
    """Metrics computed with a randomly initialised (uncalibrated) network: their numbers may be
    listed, labelled, but no criterion, recommendation or hypothesis may rest on them."""
    mn = config.get("metric_networks") or {}
    out: set[str] = set()
    if mn.get("lpips_random_trunk"):
        out |= set(NETWORK_METRICS["lpips"])
    if mn.get("inception_synthetic"):
        out |= set(NETWORK_METRICS["inception"])
    return out
