"""The settings of the jobs after the optimization (evaluation, analysis, report, study
comparison), as typed objects built ONCE from the validated config when the workflow is parsed
(pure Python).

A rule hands each job its settings as one untracked param (rules/common.smk ``untracked``: not a
rerun trigger), the dict :func:`dataclasses.asdict` makes of them; the job's script turns it back
into the object (``from_params``) and hands it to the library, which never reads the config. A
job's rerun triggers stay the params it had before (the evaluation settings, the category and
hypothesis settings, the study's params) and its inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from latentopt.workflow.config import load_schema, model_kind, model_spec, synthetic_of
from latentopt.workflow.model_specs import normalize_spec
from latentopt.workflow.objectives import arm_objectives, uncalibrated_metrics
from latentopt.workflow.plan import build_plan
from latentopt.workflow.settings import RunSettings
from latentopt.workflow.synthetic import SyntheticParts
from latentopt.workflow.weights import TORCH_HUB_FILES


def _from_params(cls, params: Mapping):
    """``cls`` from its asdict() form: SyntheticParts rebuilt, lists back to tuples, objectives
    back to sets."""
    out = {}
    for f in fields(cls):
        value = params[f.name]
        if f.name == "synthetic":
            value = SyntheticParts(**value)
        elif f.name == "objectives":
            value = {arm: frozenset(metrics) for arm, metrics in value.items()}
        elif isinstance(value, list):
            value = tuple(value)
        out[f.name] = value
    return cls(**out)


class _Params:
    @classmethod
    def from_params(cls, params: Mapping):
        """The settings from the dict a rule hands over (:meth:`params`)."""
        return _from_params(cls, params)

    def params(self) -> dict:
        """The dict a rule hands to the job (plain values, what pickling and printing take)."""
        out = asdict(self)
        if "objectives" in out:
            out["objectives"] = {arm: sorted(metrics) for arm, metrics in out["objectives"].items()}
        return out


def _objectives(config: Mapping) -> dict[str, frozenset[str]]:
    """The evaluation metrics each loss arm of the config optimizes directly (objectives.arm_objectives)."""
    return {arm: frozenset(metrics) for arm, metrics in arm_objectives(config, list(config["losses"])).items()}


def device_request(config: Mapping) -> dict:
    """What a job acquires its device with (latentopt.compute.devices.acquire_device): run.device,
    the GPU lock folder and run.n_gpus, as RunSettings reads them."""
    run = RunSettings.from_config(config)
    return {"requested": run.device, "lock_dir": run.gpu_lock_dir, "n_gpus": run.n_gpus}


# What SummarySettings takes from the evaluation block: summarize_evaluation's rule param
# `evaluation`, its rerun trigger, which its script reads (the rest comes untracked).
EVALUATION_FIELDS = ("n_boot", "fid_n_boot", "seed", "alpha", "min_success_rate", "min_fid_improvement", "time_budget_hours")


def _evaluation_fields(evaluation: Mapping) -> dict:
    crit = evaluation["success_criteria"]
    return {"n_boot": evaluation["n_boot"], "fid_n_boot": evaluation["fid_n_boot"], "seed": evaluation["seed"],
            **{k: crit[k] for k in ("alpha", "min_success_rate", "min_fid_improvement", "time_budget_hours")}}


@dataclass(frozen=True)
class SummarySettings(_Params):
    """What summarize_evaluation's statistics use: the evaluation block (bootstrap, seed, success
    criteria: EVALUATION_FIELDS), which metrics each loss optimizes and which come from an
    uncalibrated network, and the planned splits (the time budget's full plan)."""

    experiment_id: str
    synthetic: SyntheticParts
    n_boot: int
    fid_n_boot: int
    seed: int
    alpha: float
    min_success_rate: float
    min_fid_improvement: float
    time_budget_hours: float
    objectives: Mapping[str, frozenset[str]]
    uncalibrated: frozenset[str]
    lpips_calibrated: bool
    splits: tuple[str, ...]
    limit_per_split: int | None
    preprocess: Mapping  # images.preprocess: a cropped run's time projection scales by pixels

    def params(self) -> dict:
        """The untracked part: all but EVALUATION_FIELDS (the rule's ``evaluation`` param)."""
        return {k: v for k, v in super().params().items() if k not in EVALUATION_FIELDS}

    @classmethod
    def from_params(cls, params: Mapping, evaluation: Mapping) -> "SummarySettings":
        """From the untracked :meth:`params` and the evaluation block (the rule's ``evaluation``)."""
        return _from_params(cls, {**params, **_evaluation_fields(evaluation)})


def summary_settings(config: Mapping) -> SummarySettings:
    return SummarySettings(
        experiment_id=config["experiment_id"], synthetic=synthetic_of(config), **_evaluation_fields(config["evaluation"]),
        objectives=_objectives(config), uncalibrated=frozenset(uncalibrated_metrics(config)),
        lpips_calibrated=not config["metric_networks"]["lpips_random_trunk"],
        splits=tuple(config["data"].get("splits") or ()), limit_per_split=config["data"].get("limit_per_split"),
        preprocess=dict(config["preprocess"]),
    )


@dataclass(frozen=True)
class CategorySettings(_Params):
    """What analyze_categories uses beyond its rule's ``categories`` param: where the originals are,
    how they were cropped (images.preprocess: the BSDS500 boundary maps are cropped alike), and the
    evaluation's alpha, bootstrap and seed."""

    results: str
    experiment_id: str
    synthetic: SyntheticParts
    preprocess: Mapping
    alpha: float
    n_boot: int
    seed: int


def category_settings(config: Mapping) -> CategorySettings:
    ev = config["evaluation"]
    return CategorySettings(
        results=str(config["results_dir"]), experiment_id=config["experiment_id"], synthetic=synthetic_of(config),
        preprocess=dict(config["preprocess"]), alpha=ev["success_criteria"]["alpha"], n_boot=ev["n_boot"], seed=ev["seed"],
    )


def fid_not_comparable(config: Mapping) -> str | None:
    """Why measured FID cannot be compared with the seed's ranges at all (None: it can)."""
    reasons = []
    if config["metric_networks"]["inception_synthetic"]:
        reasons.append("FID from a randomly initialised Inception")
    if config["model"]["kind"] == "synthetic_kl" or config["model"].get("synthetic"):
        reasons.append("randomly initialised autoencoder")
    return "; ".join(reasons) or None


@dataclass(frozen=True)
class HypothesisSettings(_Params):
    """What test_hypotheses uses beyond its rule's ``hypotheses`` param."""

    experiment_id: str
    synthetic: SyntheticParts
    alpha: float
    seed: int
    model_kind: str
    not_comparable_reason: str | None
    uncalibrated: frozenset[str]


def hypothesis_settings(config: Mapping) -> HypothesisSettings:
    ev = config["evaluation"]
    return HypothesisSettings(
        experiment_id=config["experiment_id"], synthetic=synthetic_of(config), alpha=ev["success_criteria"]["alpha"],
        seed=ev["seed"], model_kind=model_kind(config), not_comparable_reason=fid_not_comparable(config),
        uncalibrated=frozenset(uncalibrated_metrics(config)),
    )


def config_diff(config: Mapping) -> dict:
    """The configuration as the report shows it: every value that differs from the schema's
    default (config.schema.yaml), plus the model's own keys (config.model_spec) in full."""
    def walk(value, schema):
        props = (schema or {}).get("properties")
        if isinstance(value, Mapping) and props is not None:
            out = {}
            for k, v in value.items():
                sub = props.get(k, {})
                if isinstance(v, Mapping) and sub.get("properties") is not None:
                    d = walk(v, sub)
                    if d:
                        out[k] = d
                elif "default" not in sub or sub["default"] != v:
                    out[k] = v
            return out
        return value

    out = walk(dict(config), load_schema())
    model = config["model"]
    own = {k: model[k] for k in ("seed", "train_steps") if model["kind"] == "demo_trained" and k in model}
    out["model"] = {**(out.get("model") or {}), **own, **model_spec(dict(config))}
    return out


def metric_networks(config: Mapping) -> list[str]:
    """What the LPIPS and FID networks were (weights identified by torchvision's file names,
    which carry the first hex digits of the file's sha256)."""
    mn = config["metric_networks"]
    nets = config["evaluation"]["lpips_nets"]
    out = []
    for net in nets:
        out.append(f"LPIPS-{net}: " + ("randomly initialised trunk (seeded) with the lpips package's linear layers — UNCALIBRATED" if mn["lpips_random_trunk"] else f"torchvision trunk `{TORCH_HUB_FILES[f'lpips_{net}'][0]}` + lpips v0.1 linear layers"))
    if config["evaluation"]["fid"]:
        out.append("FID/KID Inception: " + ("randomly initialised Inception-v3 — UNCALIBRATED" if mn["inception_synthetic"] else f"pytorch-fid FID-Inception `{TORCH_HUB_FILES['fid_inception'][0]}`"))
    else:
        out.append("FID/KID: not computed (evaluation.fid: false)")
    return out


@dataclass(frozen=True)
class ReportSettings(_Params):
    """What the report uses beyond the evaluation outputs. ``losses``: every loss arm of the config
    in its order (the report's arm order) with its loss spec, iteration limit and learning rate;
    ``shown_config``: the configuration as the report quotes it (:func:`config_diff`);
    ``metric_networks``: one line per metric network (:func:`metric_networks`)."""

    results: str
    experiment_id: str | None
    synthetic: SyntheticParts
    losses: Mapping[str, Mapping]
    objectives: Mapping[str, frozenset[str]]
    uncalibrated: frozenset[str]
    alpha: float
    fid: bool
    precision: str
    shown_config: Mapping
    metric_networks: tuple[str, ...]


def report_settings(config: Mapping) -> ReportSettings:
    return ReportSettings(
        results=str(config["results_dir"]), experiment_id=config.get("experiment_id"), synthetic=synthetic_of(config),
        losses={a: {"loss": b["loss"], "iterations": b.get("iterations"), "lr": b.get("lr")} for a, b in config["losses"].items()},
        objectives=_objectives(config), uncalibrated=frozenset(uncalibrated_metrics(config)),
        alpha=config["evaluation"]["success_criteria"]["alpha"], fid=bool(config["evaluation"]["fid"]),
        precision=config["run"]["precision"],
        shown_config=json.loads(json.dumps(config_diff(config), default=str)), metric_networks=tuple(metric_networks(config)),
    )


@dataclass(frozen=True)
class StudyModel(_Params):
    """One model of a study as its comparison describes it: ``spec`` (config.model_spec: what the
    decoder is loaded from to count its parameters); ``label`` (None for the demo autoencoder,
    whose label ``synthetic.demo_label()`` reads from its training summary); ``widths`` (the demo
    autoencoder's); ``losses``: the model's own loss arms (their config blocks) and ``batch_size``
    (run.batch_size), from which the comparison reads each arm's settings record."""

    kind: str
    spec: Mapping
    label: str | None
    widths: tuple[int, ...]
    synthetic: SyntheticParts
    losses: Mapping[str, Mapping]
    batch_size: int


def study_model(sub: Mapping) -> StudyModel:
    """``sub``: the model's own one-model config (latentopt.workflow.study.model_config)."""
    model = sub["model"]
    spec = normalize_spec(model_spec(dict(sub)))
    if model["kind"] == "demo_trained":
        label = None
    elif model["kind"] == "taesd":
        label = f"TAESD-format {spec['variant']} ({Path(model['decoder']).name})"
    elif model["kind"] == "synthetic_kl":
        label = f"random AutoencoderKL (seed {model['seed']})"
    elif spec.get("synthetic"):
        label = f"preset {spec['preset']}: {spec.get('class') or spec['variant']} at a tiny random config (synthetic)"
    else:
        label = (f"preset {spec['preset']}: " if spec.get("preset") else "") + f"{spec.get('class') or spec['kind']} "
        label += f"{spec.get('source') or spec.get('decoder')}" + (f"/{spec['subfolder']}" if spec.get("subfolder") else "")
    return StudyModel(kind=spec["kind"], spec=model_spec(dict(sub)), label=label, widths=tuple(model.get("widths") or ()),
                      synthetic=synthetic_of(sub), losses=dict(sub["losses"]), batch_size=int(sub["run"]["batch_size"]))


@dataclass(frozen=True)
class StudySettings:
    """What compare_models uses beyond its rule's ``study`` param: the models (:class:`StudyModel`,
    in the study's order), every loss arm's optimized metrics, the metric networks' calibration,
    and the quality gate's images (split, image id) of the plan."""

    models: Mapping[str, StudyModel]
    objectives: Mapping[str, frozenset[str]]
    calibrated: Mapping[str, bool]
    gate_images: tuple[tuple[str, str], ...]

    def params(self) -> dict:
        return {"models": {m: s.params() for m, s in self.models.items()},
                "objectives": {a: sorted(v) for a, v in self.objectives.items()}, "calibrated": dict(self.calibrated),
                "gate_images": [list(k) for k in self.gate_images]}

    @classmethod
    def from_params(cls, params: Mapping) -> "StudySettings":
        return cls(models={m: StudyModel.from_params(s) for m, s in params["models"].items()},
                   objectives={a: frozenset(v) for a, v in params["objectives"].items()}, calibrated=params["calibrated"],
                   gate_images=tuple(tuple(k) for k in params["gate_images"]))


def study_settings(model_configs: Mapping[str, Mapping]) -> StudySettings:
    """``model_configs``: {model: its one-model config} (latentopt.workflow.study.model_configs)."""
    first = next(iter(model_configs.values()))
    losses = {a: sub["losses"][a]["loss"] for sub in model_configs.values() for a in sub["losses"]}
    mn = first["metric_networks"]
    objectives = arm_objectives({"losses": {a: {"loss": spec} for a, spec in losses.items()}, "metric_networks": mn}, list(losses))
    return StudySettings(
        models={m: study_model(sub) for m, sub in model_configs.items()},
        objectives={a: frozenset(v) for a, v in objectives.items()},
        calibrated={"inception": not mn["inception_synthetic"], "lpips": not mn["lpips_random_trunk"]},
        gate_images=tuple((e.split, e.image_id) for e in build_plan(dict(first)).gate_entries),
    )
