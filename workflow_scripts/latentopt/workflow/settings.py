"""The run and per-arm settings, as typed objects built ONCE from the validated config (torch-free).

The schema (config.schema.yaml) owns every default: validation with ``set_default`` fills them in,
and these classes read the validated values without a default of their own. What the optimization
of an arm depends on (:meth:`ArmSettings.params`: the rule params and the job fingerprint) is derived
from here; the optimize job reads its settings back from those params (:meth:`ArmSettings.from_params`)
and its run settings from a param of their own (:meth:`RunSettings.from_config`, built once per run).

Tests and benchmarks that build a setting by hand take the schema's defaults for what they do not
give through the ``of()`` constructors (:func:`loss_defaults`, :func:`run_defaults`).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from latentopt import __version__
from latentopt.workflow.layout import BASELINE
from latentopt.workflow.sweeps import RECORD as SWEEP_RECORD

SCHEMA = Path(__file__).with_name("config.schema.yaml")


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _run_schema() -> dict:
    return _schema()["properties"]["run"]


def _defaults(schema: dict):
    """The value validation with set_default gives an empty block of ``schema``."""
    if schema.get("type") == "object" or "properties" in schema:
        out = copy.deepcopy(schema.get("default", {}))
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:  # what validation fills (not the sweep record)
                out[key] = _defaults(sub)
        return out
    return copy.deepcopy(schema["default"])


def loss_defaults() -> dict:
    """An arm block ``losses.<arm>`` with every schema default (the loss spec itself has none)."""
    return _defaults(_schema()["properties"]["losses"]["additionalProperties"])


def run_defaults() -> dict:
    """The ``run`` block with every schema default."""
    return _defaults(_run_schema())


def _choices(*path: str) -> tuple:
    node = _run_schema()
    for key in path:
        node = node["properties"][key]
    return tuple(node["enum"])


@dataclass(frozen=True)
class StopRule:
    rule: str
    threshold: float
    patience: int

    @classmethod
    def of(cls, rule: str, **fields) -> "StopRule":
        """``rule`` with the schema's threshold and patience unless given."""
        return replace(AdamSettings.from_block(loss_defaults()).stopping, rule=rule, **fields)


@dataclass(frozen=True)
class RetrySettings:
    """Non-convergence protocol: a second attempt with a smaller learning rate, more iterations."""

    enabled: bool
    lr_factor: float
    iterations_factor: float

    @classmethod
    def of(cls, **fields) -> "RetrySettings":
        return replace(AdamSettings.from_block(loss_defaults()).retry, **fields)


def in_use(block: dict) -> dict:
    """``block`` without the keys that are not in use: ``method`` at its schema default (backprop),
    ``schedule`` at its schema default (constant) together with ``warmup_fraction`` (which only a
    schedule reads). An arm that leaves them at their defaults keeps the rule params and the
    fingerprint it had before these keys existed (tests/test_methods.py)."""
    props = _schema()["properties"]["losses"]["additionalProperties"]["properties"]
    out = dict(block)
    if out.get("method") == props["method"]["default"]:
        del out["method"]
    if out.get("schedule") == props["schedule"]["default"]:
        del out["schedule"]
        out.pop("warmup_fraction", None)
    return out


@dataclass(frozen=True)
class AdamSettings:
    """How one arm moves its latents: ``method`` (:mod:`latentopt.optimize.methods`: backprop or
    gradient_free), Adam's lr/betas/eps, the learning-rate ``schedule`` (constant or cosine_warmup,
    :mod:`latentopt.optimize.schedules`), the stopping rule, checkpoints and the retry."""

    iterations: int
    lr: float
    betas: tuple[float, float]
    eps: float
    stopping: StopRule
    checkpoint_interval: int
    retry: RetrySettings
    method: str
    schedule: str
    warmup_fraction: float

    @property
    def reference(self) -> bool:
        return self.stopping.rule == "reference"

    @classmethod
    def from_block(cls, arm: dict) -> "AdamSettings":
        """From a validated ``losses.<arm>`` block (every key present: the schema filled them)."""
        stop = arm["stopping"]
        return cls(
            iterations=int(arm["iterations"]),
            lr=float(arm["lr"]),
            betas=tuple(float(b) for b in arm["betas"]),
            eps=float(arm["eps"]),
            stopping=StopRule(stop["rule"], float(stop["threshold"]), int(stop["patience"])),
            checkpoint_interval=int(arm["checkpoint_interval"]),
            retry=RetrySettings(**arm["retry"]),
            method=arm["method"],
            schedule=arm["schedule"],
            warmup_fraction=float(arm["warmup_fraction"]),
        )

    @classmethod
    def of(cls, **fields) -> "AdamSettings":
        """The schema's defaults for every field not given (tests, benchmarks)."""
        return replace(cls.from_block(loss_defaults()), **fields)

    def for_retry(self) -> "AdamSettings":
        """The second attempt's settings (non-convergence protocol)."""
        return replace(
            self,
            lr=self.lr * self.retry.lr_factor,
            iterations=max(1, math.ceil(self.iterations * self.retry.iterations_factor)),
        )


@dataclass(frozen=True)
class DecoderNumerics:
    """How the decoder runs inside the Adam loop (``run.precision``, ``run.final_precision(_steps)``,
    ``run.compile``); :class:`latentopt.optimize.decoder_step.DecoderStep` runs it."""

    precision: str
    final_precision: str
    final_precision_steps: int
    compile: bool
    compile_mode: str
    cache_dir: str | None

    def __post_init__(self):
        for name, value, valid in (
            ("run.precision", self.precision, _choices("precision")),
            ("run.final_precision", self.final_precision, _choices("final_precision")),
            ("run.compile.mode", self.compile_mode, _choices("compile", "mode")),
        ):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}")
        if self.final_precision_steps < 0:
            raise ValueError(f"run.final_precision_steps must be >= 0, got {self.final_precision_steps}")

    @classmethod
    def from_config(cls, config: dict) -> "DecoderNumerics":
        return cls.from_run(config["run"], config["results_dir"])

    @classmethod
    def from_run(cls, run: dict, results_dir: str) -> "DecoderNumerics":
        comp = run["compile"]
        return cls(
            precision=run["precision"],
            final_precision=run["final_precision"],
            final_precision_steps=int(run["final_precision_steps"]),
            compile=bool(comp["enabled"]),
            compile_mode=comp["mode"],
            cache_dir=comp["cache_dir"] or str(Path(results_dir) / ".inductor_cache"),
        )

    @classmethod
    def of(cls, **fields) -> "DecoderNumerics":
        """The schema's ``run`` defaults for every field not given (tests, benchmarks)."""
        return cls(**{**asdict(cls.from_run(run_defaults(), ".")), "cache_dir": None, **fields})

    def params(self) -> dict:
        """The settings that change results beyond run.precision, only those in use (a schedule,
        compilation): a config that uses neither keeps its fingerprint and rule params."""
        out = {}
        if self.final_precision_steps:
            out.update(final_precision=self.final_precision, final_precision_steps=self.final_precision_steps)
        if self.compile:
            out["compile"] = self.compile_mode
        return out


@dataclass(frozen=True)
class RunSettings:
    """The ``run`` settings of a job that do not change its results: how and where it runs
    (device and GPU lease, batching, time budget, failure policy, compile cache)."""

    device: str
    images_per_job: int
    batch_size: int
    channels_last: bool
    timeout_per_image_s: float
    failure_policy: str
    cpu_fallback: bool
    gpu_lock_dir: str
    n_gpus: int | None
    compile_cache_dir: str

    @classmethod
    def from_config(cls, config: dict) -> "RunSettings":
        run = config["run"]
        return cls(
            device=run["device"],
            images_per_job=int(run["images_per_job"]),
            batch_size=int(run["batch_size"]),
            channels_last=bool(run["channels_last"]),
            timeout_per_image_s=run["timeout_per_image_s"],
            failure_policy=run["failure_policy"],
            cpu_fallback=bool(run["cpu_fallback"]),
            gpu_lock_dir=run["gpu_lock_dir"] or str(Path(config["results_dir"]) / ".gpu_locks"),
            n_gpus=run["n_gpus"],
            compile_cache_dir=DecoderNumerics.from_config(config).cache_dir,
        )


_COMMON_PARAMS = ("arm", "model", "preprocess", "channels_last", "library_version")
_NUMERIC_PARAMS = ("precision", "final_precision", "final_precision_steps", "compile")


@dataclass(frozen=True)
class ArmSettings:
    """Everything the optimization of one arm depends on. ``block`` is the validated
    ``losses.<arm>`` block as the config gives it, less a sweep's ``sweep`` record (None for the
    baseline): the rule params and the fingerprint hold it verbatim, except the method and
    schedule keys while at backprop/constant (:func:`in_use`), so that a finished result keeps
    its fingerprint; ``adam`` is the typed reading of the same block."""

    arm: str
    model: dict
    preprocess: dict
    channels_last: bool
    numerics: DecoderNumerics
    block: dict | None
    adam: AdamSettings | None

    @property
    def is_baseline(self) -> bool:
        return self.arm == BASELINE

    @property
    def loss(self) -> dict | None:
        return None if self.block is None else self.block["loss"]

    @classmethod
    def from_config(cls, config: dict, arm: str, model: dict) -> "ArmSettings":
        """``model``: the arm's model spec (latentopt.workflow.config.model_spec)."""
        # the job's, unshared; without a sweep's record of its origin (latentopt.workflow.sweeps),
        # so that an arm of a sweep has the settings of the same arm written by hand
        block = None if arm == BASELINE else {k: copy.deepcopy(v) for k, v in config["losses"][arm].items() if k != SWEEP_RECORD}
        return cls(
            arm=arm,
            model=copy.deepcopy(model),
            preprocess=copy.deepcopy(config["preprocess"]),
            channels_last=config["run"]["channels_last"],
            numerics=DecoderNumerics.from_config(config),
            block=block,
            adam=None if block is None else AdamSettings.from_block(block),
        )

    @classmethod
    def from_params(cls, params: dict, cache_dir: str | None = None) -> "ArmSettings":
        """The settings whose :meth:`params` are ``params`` (the optimize rule's ``settings`` param):
        what :meth:`params` leaves out is at its schema default (the method and schedule keys,
        :func:`in_use`; the decoder numerics not in use) and is filled in again; ``cache_dir``: the
        compile cache (where, not what: not in the params). Raises ValueError when the params are
        not read back exactly, so that a job never computes with other settings than it
        fingerprints."""
        given = dict(params)
        common = {k: given.pop(k) for k in _COMMON_PARAMS}
        numeric = {k: given.pop(k) for k in _NUMERIC_PARAMS if k in given}
        defaults = DecoderNumerics.of(cache_dir=cache_dir)
        numerics = replace(
            defaults,
            precision=numeric.get("precision", defaults.precision),
            final_precision=numeric.get("final_precision", defaults.final_precision),
            final_precision_steps=numeric.get("final_precision_steps", 0),
            compile="compile" in numeric,
            compile_mode=numeric.get("compile", defaults.compile_mode),
        )
        block = None
        if common["arm"] != BASELINE:
            unused = loss_defaults()  # the keys in_use() drops: at their defaults, or unread
            block = {**{k: unused[k] for k in ("method", "schedule", "warmup_fraction") if k not in given}, **given}
        settings = cls(
            arm=common["arm"],
            model=common["model"],
            preprocess=common["preprocess"],
            channels_last=common["channels_last"],
            numerics=numerics,
            block=block,
            adam=None if block is None else AdamSettings.from_block(block),
        )
        if settings.params() != dict(params):
            raise ValueError(f"{common['arm']}: settings params not read back exactly: {dict(params)} -> {settings.params()}")
        return settings

    def params(self) -> dict:
        """The rule params of the arm's jobs and the input of their fingerprint."""
        common = {
            "arm": self.arm,
            "model": self.model,
            "preprocess": self.preprocess,
            "channels_last": self.channels_last,
            "library_version": __version__,
        }
        if self.is_baseline:  # encode and decode are exact fp32: run.precision does not change it
            return {**common, "iterations": 0}
        return {**common, "precision": self.numerics.precision, **self.numerics.params(), **in_use(self.block)}
