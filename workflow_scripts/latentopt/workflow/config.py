"""Config access and the checks that need more than the JSON schema (pure Python, no torch).

The schema (config.schema.yaml, validated by the Snakefile) rejects unknown keys and ill-typed
values and fills defaults; :func:`check_config` then checks what a schema cannot express, so that a
bad config fails before any job runs with a message that names the key.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import jsonschema
import yaml
from jsonschema import validators
from jsonschema.exceptions import best_match

from latentopt.workflow import layout, sweeps
from latentopt.workflow.demo_model_spec import SUMMARY_NAME, WEIGHTS_NAME, TrainSettings
from latentopt.workflow.loss_specs import LOSS_PARAMS
from latentopt.workflow.metric_specs import DIRECTIONAL_METRICS
from latentopt.workflow.model_specs import config_spec, normalize_spec
from latentopt.workflow.plan import selected_losses
from latentopt.workflow.settings import ArmSettings
from latentopt.workflow.study import StudyError, check_study, is_study, model_configs
from latentopt.workflow.synthetic import SyntheticParts, study_parts

SCHEMA = Path(__file__).with_name("config.schema.yaml")
REPO_CONFIG = Path(__file__).resolve().parents[3] / "config.yaml"


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the key."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


NULL_WORDS = ("null", "Null", "NULL", "~")


def coerce_config(config: dict, schema: dict | None = None) -> dict:
    """Give string values the types the schema asks for, in place; return ``config``.

    Snakemake's ``--config key=value`` reads nested values with YAML's BaseLoader, so every scalar
    in ``data='{root: /data/BSR, limit_per_split: 10}'`` arrives as a string ('10'). Here such a
    string becomes what the same YAML in a config file would give: an integer, number, boolean,
    null, list or mapping, as the schema's ``type`` for that key allows (a key that allows strings
    keeps the string, except a null word where null is allowed too). Free-form mappings (loss
    specs) get YAML's reading of each string, numbers included. A string that fits none of the
    key's types raises ConfigError naming the key (e.g. ``data.limit_per_split: 'ten' is not an
    integer or null``). Values that are not strings are left for the schema validation.
    """
    return _coerce(config, load_schema() if schema is None else schema, "")


def _join(where: str, key) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))


def _coerce(value, schema: dict, where: str):
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        free = not props and not isinstance(extra, dict) and extra is not False
        for key in list(value):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = _coerce(value[key], sub, _join(where, key))
            elif free:
                value[key] = _yaml_value(value[key])
        return value
    if isinstance(value, list):
        items = schema.get("items")
        return [_coerce(v, items, _join(where, i)) for i, v in enumerate(value)] if isinstance(items, dict) else value
    if isinstance(value, str):
        return _coerce_string(value, schema, where)
    return value


def _yaml_value(value):
    """What YAML would make of the strings in a free-form value (numbers like 1e-5 included)."""
    if isinstance(value, dict):
        return {k: _yaml_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml_value(v) for v in value]
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text in NULL_WORDS:
        return None
    try:
        return int(text)
    except ValueError:
        return float(text) if _is_float(text) else value


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity")


def _coerce_string(value: str, schema: dict, where: str):
    types = schema.get("type")
    if types is None:  # enums and untyped keys: left to the validation
        return value
    types = [types] if isinstance(types, str) else list(types)
    if "string" in types:
        return None if "null" in types and value in NULL_WORDS else value
    text = value.strip()
    for t in types:
        if t == "null" and text in (*NULL_WORDS, ""):
            return None
        if t == "boolean" and text.lower() in ("true", "false", "yes", "no", "on", "off"):
            return text.lower() in ("true", "yes", "on")
        if t == "integer":
            try:
                return int(text)
            except ValueError:
                pass
        if t == "number" and _is_float(text):
            return float(text)
        if t in ("array", "object"):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(parsed, list if t == "array" else dict):
                return _coerce(parsed, schema, where)
    article = {"integer": "an integer", "array": "a list", "object": "a mapping", "null": "null"}
    wanted = " or ".join(article.get(t, f"a {t}") for t in types)
    raise ConfigError(f"{where}: {value!r} is not {wanted}")


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Schema validation with the schema's defaults filled in, in place (what Snakemake's
    ``validate(config, schema, set_default=True)`` does); return ``config``.

    Every problem raises together as one ConfigError, one short line each, naming the key path and
    the offending value, for an unknown key the closest valid names (never the schema itself,
    which Snakemake's own validate prints in full). ``LATENTOPT_VERBOSE=1`` adds jsonschema's full
    report of each problem."""
    problems = schema_problems(config, load_schema() if schema is None else schema)
    if problems:
        lines = [p for p, _ in problems]
        text = lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines)
        if os.environ.get("LATENTOPT_VERBOSE", "") not in ("", "0"):
            raise ConfigError(text + "\n\n" + "\n\n".join(str(e) for _, e in problems))
        raise ConfigError(text + (" " if len(lines) == 1 else "\n") + "(LATENTOPT_VERBOSE=1: jsonschema's full report)")
    return config


def _default_filling_validator(schema: dict):
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, sub):
        if isinstance(instance, dict):
            for key, spec in props.items():
                if "default" in spec:
                    instance.setdefault(key, copy.deepcopy(spec["default"]))
        yield from check_properties(validator, props, instance, sub)

    return validators.extend(base, {"properties": properties})(schema)


def schema_problems(config: dict, schema: dict) -> list[tuple[str, object]]:
    """(one-line message, jsonschema error) per problem of ``config``, defaults filled in place."""
    errors = sorted(_default_filling_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for error in errors:
        out.extend((line, error) for line in _describe(error))
    return out


def closest(word: str, valid) -> list[str]:
    """The valid names closest to ``word`` (difflib), best first."""
    return difflib.get_close_matches(str(word), [str(v) for v in valid], n=3, cutoff=0.6)


def _suggest(word: str, valid) -> str:
    near = closest(word, valid)
    if near:
        return "did you mean " + " or ".join(repr(n) for n in near) + "?"
    return "valid: " + ", ".join(sorted(str(v) for v in valid))


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...}" if isinstance(value, dict) else text[: limit - 4] + " ..."


def _where(error) -> str:
    where = ""
    for key in error.absolute_path:
        where = _join(where, key)
    return where or "(top level)"


def _describe(error) -> list[str]:
    where, value, rule = _where(error), error.instance, error.validator
    if rule == "additionalProperties" and isinstance(value, dict):
        props = error.schema.get("properties") or {}
        patterns = error.schema.get("patternProperties") or {}
        extra = [k for k in value if k not in props and not any(re.search(p, str(k)) for p in patterns)]
        prefix = "" if where == "(top level)" else where + "."
        return [f"{prefix}{k}: unknown key (value {_short(value[k])}); {_suggest(k, props)}" for k in extra]
    if rule == "type":
        types = [error.validator_value] if isinstance(error.validator_value, str) else list(error.validator_value)
        article = {"integer": "an integer", "array": "a list", "object": "a mapping", "null": "null"}
        return [f"{where}: {_short(value)} is not " + " or ".join(article.get(t, f"a {t}") for t in types)]
    if rule == "enum":
        return [f"{where}: {_short(value)} is not one of {', '.join(map(repr, error.validator_value))}"
                + (f"; {_suggest(value, error.validator_value)}" if isinstance(value, str) and closest(value, error.validator_value) else "")]
    if rule == "required":
        missing = [k for k in error.validator_value if not isinstance(value, dict) or k not in value]
        return [f"{where}: required key(s) {', '.join(missing)} missing"]
    types = error.schema.get("type") if isinstance(error.schema, dict) else None
    if rule in ("minItems", "uniqueItems") and isinstance(types, list) and "array" in types and len(types) > 1:
        # a key that takes one value or a list of them (a sweep, latentopt.workflow.sweeps)
        problem = "is empty" if rule == "minItems" else "lists a value twice"
        return [f"{where}: {_short(value)} {problem}; give one value or a non-empty list of distinct values (a sweep)"]
    if rule in ("anyOf", "oneOf") and error.context:
        return _describe(best_match(error.context))[:1] or [f"{where}: {_short(value)} fits none of the allowed forms"]
    message = error.message.replace(repr(value), _short(value)) if len(repr(value)) > 60 else error.message
    return [f"{where}: {message}"]


def load_config(configfiles: list[str | Path] = (), overrides: dict | None = None) -> dict:
    """What Snakemake builds: the repository's config.yaml, each --configfile merged over it
    (nested dicts merge, other values replace), then dotted-key overrides; coerced by the
    schema's types, validated and its sweeps expanded, as the Snakefile does."""
    config: dict = {}
    for path in [REPO_CONFIG, *configfiles]:
        merge_config(config, yaml.safe_load(Path(path).read_text()) or {})
    for key, value in (overrides or {}).items():
        node = config
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        merge_config(node, {last: value})  # a nested value merges, as Snakemake's --config does
    return expand_sweeps(validate_config(coerce_config(config)))


def expand_sweeps(config: dict) -> dict:
    """After validation: each ``losses`` entry that lists values becomes its arms, in place
    (:func:`latentopt.workflow.sweeps.expand_sweeps`, idempotent); return ``config``. Its errors
    raise as ConfigError naming the key."""
    try:
        return sweeps.expand_sweeps(config)
    except sweeps.SweepError as exc:
        raise ConfigError(str(exc)) from None


def merge_config(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = value


def model_spec(config: dict) -> dict:
    """The autoencoder spec of the config's ``model`` block (latentopt.workflow.model_specs.config_spec)."""
    try:
        spec = config_spec(config["model"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if spec.get("kind") == "demo_trained":
        spec["weights"] = str(demo_model_weights(config))
    return spec


def model_kind(config: dict) -> str:
    """The kind of the config's autoencoder (``model.kind``, or its default or preset's: e.g.
    ``diffusers_kl`` for an empty block, ``diffusers`` for ``preset: flux2``)."""
    return normalize_spec(model_spec(config))["kind"]


def demo_model_weights(config: dict) -> Path:
    """Where the train_demo_model rule writes the demo autoencoder (kind demo_trained)."""
    return layout.demo_model_dir(config["results_dir"]) / WEIGHTS_NAME


def demo_model_summary(config: dict) -> Path:
    """The training summary (JSON) written next to :func:`demo_model_weights`."""
    return layout.demo_model_dir(config["results_dir"]) / SUMMARY_NAME


def demo_model_settings(config: dict):
    """The demo autoencoder's training settings: model.seed, model.train_steps and model.widths,
    the rest fixed."""
    model = config["model"]
    return TrainSettings(seed=model["seed"], steps=model["train_steps"], widths=tuple(int(w) for w in model["widths"]))


def arm_settings(config: dict, arm: str) -> dict:
    """Everything the optimization of one arm depends on (used as rule params and fingerprint):
    :meth:`latentopt.workflow.settings.ArmSettings.params`."""
    return ArmSettings.from_config(config, arm, model_spec(config)).params()


def synthetic_of(config: dict) -> SyntheticParts:
    """Which models/metric networks of ``config`` are random (uncalibrated) or demo-only."""
    kind = config["model"]["kind"]
    return SyntheticParts(
        model_seed=config["model"]["seed"] if kind == "synthetic_kl" else None,
        demo_summary=str(demo_model_summary(config)) if kind == "demo_trained" else None,
        demo_crops=demo_model_settings(config).n_crops if kind == "demo_trained" else None,
        synthetic_preset=(f"preset {config['model'].get('preset')}'s class at a tiny randomly initialised config "
                          f"(seed {config['model'].get('seed') or 0})") if config["model"].get("synthetic") else None,
        lpips_random_trunk=bool(config["metric_networks"]["lpips_random_trunk"]),
        inception_synthetic=bool(config["metric_networks"]["inception_synthetic"]),
    )


def synthetic_parts(config: dict) -> list[str]:
    """Which models/metric networks are random (uncalibrated) or demo-only; every output must say so."""
    return synthetic_of(config).parts()


def synthetic_spec(config: dict) -> dict:
    """What :func:`synthetic_parts` says, as plain values known when the workflow is parsed (a
    job's param: :class:`latentopt.workflow.synthetic.SyntheticParts` as a dict); the demo
    autoencoder's part names its training, read from the training summary when described
    (:func:`describe_synthetic`, in a job that runs after the training)."""
    return asdict(synthetic_of(config))


def describe_synthetic(spec: Mapping) -> list[str]:
    """The lines of :func:`synthetic_parts` from its :func:`synthetic_spec`."""
    return SyntheticParts(**spec).parts()


def study_synthetic_parts(model_configs: dict[str, dict]) -> list[str]:
    """:func:`synthetic_parts` of a study ({model: its one-model config}): each model's own part
    named by the model, the metric networks' once."""
    return study_parts({name: synthetic_of(sub) for name, sub in model_configs.items()})


def check_config(config: dict, losses: bool = True) -> None:
    """Raise ConfigError for values the schema cannot rule out. ``losses=False`` skips the loss
    specs (the Snakefile checks them once, in the main process)."""
    try:
        check_study(config)
        if is_study(config):  # every model's own config, its keys named as the study's
            for name, sub in model_configs(config).items():
                try:
                    check_config(sub, losses=losses)
                except ConfigError as exc:
                    raise ConfigError(re.sub(r"^model\.", f"models.{name}.", str(exc))) from None
            return
    except StudyError as exc:
        raise ConfigError(str(exc)) from None
    if synthetic_parts(config) and not config["allow_synthetic"]:
        raise ConfigError(
            "allow_synthetic: the config uses random or demo-only models ("
            + "; ".join(synthetic_parts(config))
            + ") but allow_synthetic is false; set it to true to accept uncalibrated results"
        )
    model = config["model"]
    if model.get("kind") == "taesd":
        for key in ("encoder", "decoder"):
            if not model[key]:
                raise ConfigError(f"model.{key}: required for model.kind 'taesd'")
    try:
        normalize_spec(model_spec(config))
    except ValueError as exc:
        raise ConfigError(f"model.{'preset' if model.get('preset') else 'kind'}: {exc}") from None
    unknown = sorted(set(config.get("use_losses") or []) - set(config["losses"]))
    if unknown:
        near = sorted({n for u in unknown for n in closest(u, config["losses"])})
        raise ConfigError(f"use_losses: {unknown} not defined under losses (defined: {sorted(config['losses'])})"
                          + (f"; did you mean {' or '.join(map(repr, near))}?" if near else ""))
    for arm in selected_losses(config) if losses else ():  # use_losses scopes every check
        check_loss_spec(config["losses"][arm]["loss"], f"losses.{arm}.loss")
    if "{" in config["results_dir"] or "}" in config["results_dir"]:
        raise ConfigError(f"results_dir: {config['results_dir']!r} contains '{{' or '}}', which Snakemake reads as wildcards in paths")
    if "resize_filter" in config["preprocess"] and config["preprocess"]["mode"] != "resize_crop":
        raise ConfigError("preprocess.resize_filter: only resize_crop resizes "
                          f"(preprocess.mode is {config['preprocess']['mode']!r})")
    crop = config["preprocess"]["crop_box"]
    if crop and config["preprocess"]["mode"] != "resize_crop":
        multiple = config["preprocess"]["multiple"]
        if min(crop) < multiple:
            raise ConfigError(f"preprocess.crop_box: {crop} is smaller than preprocess.multiple={multiple}")
    check_analysis(config)


def check_analysis(config: dict) -> None:
    cats = config["analysis"]["categories"]
    # per-image metrics with a direction of "better" (the category gains need one); lpips_<net>
    # counts when evaluation.lpips_nets scores <net>
    valid = [*DIRECTIONAL_METRICS, *(f"lpips_{n}" for n in config["evaluation"]["lpips_nets"])]
    bad = [m for m in cats["metrics"] if m not in valid]
    if bad:
        raise ConfigError(f"analysis.categories.metrics: {bad} not scored per image with a direction of 'better'; valid: {valid}")
    if cats["csv"] and not Path(cats["csv"]).is_file():
        relative = "" if Path(cats["csv"]).is_absolute() else f" (relative to {os.getcwd()})"
        raise ConfigError(f"analysis.categories.csv: file {cats['csv']} does not exist{relative}")
    for arm, e in config["analysis"]["hypotheses"]["expected_fid"].items():
        if e["low"] > e["high"]:
            raise ConfigError(f"analysis.hypotheses.expected_fid.{arm}: low {e['low']} > high {e['high']}")


def check_loss_spec(spec: dict, where: str) -> None:
    """Loss name and parameter names against the registry (builds no network)."""
    name = spec.get("name")
    if name not in LOSS_PARAMS:
        near = closest(name, LOSS_PARAMS) if isinstance(name, str) else []
        raise ConfigError(f"{where}.name: unknown loss {name!r}; valid: {', '.join(sorted(LOSS_PARAMS))}"
                          + (f"; did you mean {' or '.join(map(repr, near))}?" if near else ""))
    valid = set(LOSS_PARAMS[name])
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
