"""Which evaluation metrics a loss optimizes directly (its own objective), so that conclusions
can tell held-out evidence from an arm scoring well on what it was trained for."""

from __future__ import annotations

from collections.abc import Mapping


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
        return {"ssim"} if (spec.get("window_size", 11), float(spec.get("sigma", 1.5))) == (11, 1.5) else set()
    if name == "lpips":
        same_trunk = bool(spec.get("random_trunk", False)) == bool(config["metric_networks"]["lpips_random_trunk"])
        return {f"lpips_{spec.get('net', 'alex')}"} if same_trunk else set()
    return set()


def arm_objectives(config: Mapping, arms) -> dict[str, set[str]]:
    """{arm: optimized_metrics of its loss} for the loss arms of ``config`` among ``arms``."""
    return {a: optimized_metrics(config["losses"][a]["loss"], config) for a in arms if a in config.get("losses", {})}
