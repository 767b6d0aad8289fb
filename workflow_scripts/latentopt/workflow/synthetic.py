"""What of a run is random or demo-only (every output must say so), as one typed value built from
the config when the workflow is parsed (pure Python).

The demo autoencoder's label names its training time, known only once its training job has run:
:meth:`SyntheticParts.demo_label` reads the training summary when asked, so a job that asks when it
writes its outputs names the model as trained, whatever existed when the workflow was parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from latentopt.workflow.demo_model_spec import describe, read_summary


@dataclass(frozen=True)
class SyntheticParts:
    """Which models and metric networks of a run are random (uncalibrated) or demo-only.
    ``model_seed``: a randomly initialised AutoencoderKL's seed (model.kind synthetic_kl);
    ``demo_summary``/``demo_crops``: the demo's own autoencoder (model.kind demo_trained), its
    training summary and planned number of training crops."""

    model_seed: int | None = None
    demo_summary: str | None = None
    demo_crops: int | None = None
    synthetic_preset: str | None = None  # a preset's class at a tiny random config (model.synthetic)
    lpips_random_trunk: bool = False
    inception_synthetic: bool = False

    def demo_label(self) -> str | None:
        """"autoencoder trained for the demo on N crops in T s — not SD-VAE", from the training
        summary once the model is trained (before: the planned number of crops, no time); None
        without the demo autoencoder."""
        if self.demo_summary is None:
            return None
        summary = read_summary(self.demo_summary)
        if summary is None:
            return f"autoencoder trained for the demo on {self.demo_crops} crops (not trained yet) — not SD-VAE"
        return describe(summary["n_crops"], summary["train_time_s"])

    def parts(self) -> list[str]:
        """One line per random or demo-only part, the model first."""
        parts = []
        if self.model_seed is not None:
            parts.append(f"autoencoder: randomly initialised AutoencoderKL (seed {self.model_seed})")
        if self.demo_summary is not None:
            parts.append(self.demo_label())
        if self.synthetic_preset is not None:
            parts.append(f"autoencoder: {self.synthetic_preset}")
        if self.lpips_random_trunk:
            parts.append("LPIPS: random AlexNet/VGG trunk (uncalibrated)")
        if self.inception_synthetic:
            parts.append("FID/KID: randomly initialised Inception (uncalibrated)")
        return parts


def study_parts(by_model: Mapping[str, SyntheticParts]) -> list[str]:
    """The parts of a study ({model: its parts}): each model's own part named by the model, the
    metric networks' once."""
    out: list[str] = []
    for name, parts in by_model.items():
        own = replace(parts, lpips_random_trunk=False, inception_synthetic=False).parts()
        out += [f"{name}: {p}" for p in own]
        out += [p for p in parts.parts() if p not in own and p not in out]
    return out
