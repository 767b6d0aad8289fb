"""Config access and the checks that need more than the JSON schema (pure Python, no torch).

The schema (config.schema.yaml, validated by the Snakefile) rejects unknown keys and ill-typed
values and fills defaults; :func:`check_config` then checks what a schema cannot express, so that a
bad config fails before any job runs with a message that names the key.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from . import __version__
from .layout import BASELINE
from .plan import selected_losses

SCHEMA = Path(__file__).with_name("config.schema.yaml")
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"

MODEL_KEYS = {
    "diffusers_kl": ("source", "subfolder", "revision"),
    "diffusers_tiny": ("source", "subfolder", "revision"),
    "taesd": ("encoder", "decoder", "variant"),
    "synthetic_kl": ("seed",),
}


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the key."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def validate_config(config: dict) -> dict:
    """Schema validation with defaults filled in (the same call the Snakefile makes)."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA), set_default=True)
    return config


def load_config(configfiles: list[str | Path] = (), overrides: dict | None = None) -> dict:
    """What Snakemake builds: the repository's config.yaml, each --configfile merged over it
    (nested dicts merge, other values replace), then dotted-key overrides; validated."""
    config: dict = {}
    for path in [REPO_CONFIG, *configfiles]:
        merge_config(config, yaml.safe_load(Path(path).read_text()) or {})
    for key, value in (overrides or {}).items():
        node = config
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return validate_config(config)


def merge_config(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = value


def model_spec(config: dict) -> dict:
    model = config["model"]
    return {"kind": model["kind"], **{k: model[k] for k in MODEL_KEYS[model["kind"]]}}


def is_baseline(arm: str) -> bool:
    return arm == BASELINE


def arm_settings(config: dict, arm: str) -> dict:
    """Everything the optimization of one arm depends on (used as rule params and fingerprint)."""
    common = {
        "arm": arm,
        "model": model_spec(config),
        "preprocess": config["preprocess"],
        "channels_last": config["run"]["channels_last"],
        "library_version": __version__,
    }
    if is_baseline(arm):  # encode and decode are exact fp32: run.precision does not change it
        return {**common, "iterations": 0}
    return {**common, "precision": config["run"]["precision"], **config["losses"][arm]}


def synthetic_parts(config: dict) -> list[str]:
    """Which models/metric networks are random (uncalibrated); every output must say so."""
    parts = []
    if config["model"]["kind"] == "synthetic_kl":
        parts.append(f"autoencoder: randomly initialised AutoencoderKL (seed {config['model']['seed']})")
    if config["metric_networks"]["lpips_random_trunk"]:
        parts.append("LPIPS: random AlexNet/VGG trunk (uncalibrated)")
    if config["metric_networks"]["inception_synthetic"]:
        parts.append("FID/KID: randomly initialised Inception (uncalibrated)")
    return parts


def check_config(config: dict, losses: bool = True) -> None:
    """Raise ConfigError for values the schema cannot rule out. ``losses=False`` skips the loss
    specs (checking them imports torch: the Snakefile does it once, in the main process)."""
    if synthetic_parts(config) and not config["allow_synthetic"]:
        raise ConfigError(
            "allow_synthetic: the config uses random models ("
            + "; ".join(synthetic_parts(config))
            + ") but allow_synthetic is false; set it to true to accept uncalibrated results"
        )
    model = config["model"]
    if model["kind"] == "taesd":
        for key in ("encoder", "decoder"):
            if not model[key]:
                raise ConfigError(f"model.{key}: required for model.kind 'taesd'")
    unknown = sorted(set(config.get("use_losses") or []) - set(config["losses"]))
    if unknown:
        raise ConfigError(f"use_losses: {unknown} not defined under losses (defined: {sorted(config['losses'])})")
    for arm in selected_losses(config) if losses else ():  # use_losses scopes every check
        check_loss_spec(config["losses"][arm]["loss"], f"losses.{arm}.loss")
    if "{" in config["results_dir"] or "}" in config["results_dir"]:
        raise ConfigError(f"results_dir: {config['results_dir']!r} contains '{{' or '}}', which Snakemake reads as wildcards in paths")
    crop = config["preprocess"]["crop_box"]
    if crop and config["preprocess"]["mode"] != "resize_crop":
        multiple = config["preprocess"]["multiple"]
        if min(crop) < multiple:
            raise ConfigError(f"preprocess.crop_box: {crop} is smaller than preprocess.multiple={multiple}")


def check_loss_spec(spec: dict, where: str) -> None:
    """Loss name and parameter names against the registry (builds no network)."""
    from . import losses

    name = spec.get("name")
    if name not in losses.LOSSES:
        raise ConfigError(f"{where}.name: unknown loss {name!r}; valid: {', '.join(sorted(losses.LOSSES))}")
    valid = set(losses.LOSSES[name].params)
    unknown = sorted(set(spec) - valid - {"name"})
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s) {unknown} for loss {name!r}; valid: {sorted(valid)}")
    if name == "weighted":
        terms = spec.get("terms")
        if not isinstance(terms, list) or not terms:
            raise ConfigError(f"{where}.terms: a non-empty list of loss specs with a weight is required")
        for i, term in enumerate(terms):
            weight = term.get("weight") if isinstance(term, dict) else None
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(f"{where}.terms[{i}].weight: a number is required, got {weight!r}")
            check_loss_spec({k: v for k, v in term.items() if k != "weight"}, f"{where}.terms[{i}]")


def _loss_names(spec: dict) -> list[dict]:
    if spec.get("name") == "weighted":
        return [t for term in spec.get("terms", []) for t in _loss_names(term)]
    return [spec]


def metric_weight_files(config: dict) -> list:
    """torch.hub checkpoints of the LPIPS trunks and the FID Inception this config needs."""
    from . import weights

    nets = set()
    for arm in selected_losses(config):
        for spec in _loss_names(config["losses"][arm]["loss"]):
            if spec["name"] == "lpips" and not spec.get("random_trunk", False):
                nets.add(spec.get("net", "alex"))
    if not config["metric_networks"]["lpips_random_trunk"]:
        nets.update(config["evaluation"]["lpips_nets"])
    files = [weights.torch_hub_checkpoint(f"lpips_{net}") for net in sorted(nets)]
    if config["evaluation"]["fid"] and not config["metric_networks"]["inception_synthetic"]:
        files.append(weights.torch_hub_checkpoint("fid_inception"))
    return files


def required_weights(config: dict) -> list:
    """Every pretrained file some job of this config will need (checked before any job runs)."""
    from .autoencoders import required_weight_files

    return [*required_weight_files(model_spec(config)), *metric_weight_files(config)]


def ensure_weights(config: dict) -> None:
    """Download what this config needs and lacks (unless offline, see weights.offline), then
    raise MissingWeightsError naming every file still missing and where it must go."""
    from . import weights
    from .autoencoders import fetch_weights

    files = required_weights(config)
    if all(f.exists() for f in files):
        return
    if not weights.offline():
        try:
            fetch_weights(model_spec(config))
        except weights.MissingWeightsError:
            pass  # reported below together with the rest
        for f in metric_weight_files(config):
            if not f.exists():
                try:
                    weights.download_url(f.url, f.path)
                except OSError:
                    pass
    weights.require(files)
