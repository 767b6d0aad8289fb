"""What each loss arm is: its loss in words and the evaluation metrics it optimizes directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from latentopt.workflow.objectives import optimized_metrics  # noqa: F401 - re-exported
from latentopt.workflow.layout import BASELINE


def loss_description(spec: Mapping) -> str:
    """Compact text of a loss spec: ``improved_ssim(window_size=11, sigma=1.5)``,
    ``1·mse + 0.1·lpips(net=vgg)``."""
    if spec.get("name") == "weighted":
        return " + ".join(f"{t.get('weight')}·{loss_description({k: v for k, v in t.items() if k != 'weight'})}" for t in spec.get("terms") or [])
    params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec.get('name')}({params})" if params else str(spec.get("name"))



def arm_order(losses: Sequence[str], names) -> list[str]:
    """THE order of the datasets in every table and figure of the report: the baseline, then the
    loss arms in the config's ``losses`` order (``losses``), then any other dataset in the order
    given. Colours follow it (plots.dataset_colors), so they are the same in every figure."""
    names = list(dict.fromkeys(names))
    losses = [a for a in losses if a in names]
    rest = [d for d in names if d != BASELINE and d not in losses]
    return ([BASELINE] if BASELINE in names else []) + losses + rest
