"""What a newcomer meets on the command line (issue 21): config mistakes in one short line each,
naming the key, the value and the closest valid names; no schema dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from latentopt.workflow.config import ConfigError, check_config, coerce_config, load_schema, validate_config

REPO = Path(__file__).resolve().parents[1]


def _seed(**overrides):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in overrides.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def _message(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        check_config(validate_config(coerce_config(cfg)))
    return str(err.value)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("use_loss", ["psnr"], "use_loss: unknown key (value ['psnr']); did you mean 'use_losses'?"),
        ("losses.psnr.iteratons", 20, "losses.psnr.iteratons: unknown key (value 20); did you mean 'iterations'?"),
        ("run.batchsize", 4, "run.batchsize: unknown key (value 4); did you mean 'batch_size'?"),
        ("run.batch_size", 4.5, "run.batch_size: 4.5 is not an integer"),
        ("losses.psnr.lr", [1, 2], "losses.psnr.lr: [1, 2] is not a number"),
        ("preprocess.mode", "center-crop", "preprocess.mode: 'center-crop' is not one of"),
        ("use_losses", ["psnrr"], "use_losses: ['psnrr'] not defined under losses"),
    ],
)
def test_each_mistake_is_one_short_line_naming_key_and_value(key, value, expected):
    text = _message(_seed(**{key: value}))
    first = text.splitlines()[0]
    assert len(text.splitlines()) == 1, text
    assert first.startswith(expected), first
    assert len(first) < 250 and "schema" not in first.lower().replace("jsonschema's", "")


def test_unknown_names_get_the_closest_valid_ones():
    assert "did you mean 'center_crop'?" in _message(_seed(**{"preprocess.mode": "center-crop"}))
    assert "did you mean 'psnr'?" in _message(_seed(use_losses=["psnrr"]))
    nothing_close = _message(_seed(zzzz=1))
    assert nothing_close.startswith("zzzz: unknown key (value 1); valid: ")
    assert "results_dir" in nothing_close  # the valid top-level names, not the schema


def test_unknown_loss_name_suggests_the_registered_one():
    cfg = _seed()
    cfg["losses"]["psnr"]["loss"] = {"name": "lpipz"}
    assert "did you mean 'lpips'?" in _message(cfg)


def test_several_problems_one_line_each():
    text = _message(_seed(use_loss=["psnr"], **{"losses.psnr.iteratons": 20, "run.batch_size": 4.5}))
    lines = text.splitlines()
    assert lines[0] == "3 problems:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:4]) == ["losses.psnr.iteratons", "run.batch_size", "use_loss"]
    assert len(lines) == 5 and "LATENTOPT_VERBOSE" in lines[4]


def test_verbose_escape_hatch_gives_jsonschemas_report(monkeypatch):
    monkeypatch.setenv("LATENTOPT_VERBOSE", "1")
    text = _message(_seed(use_loss=["psnr"]))
    assert text.splitlines()[0].startswith("use_loss: unknown key")
    assert "Failed validating 'additionalProperties'" in text


def test_defaults_are_filled_as_snakemakes_validate_does():
    from snakemake.utils import validate

    ours = validate_config(_seed(**{"data.limit_per_split": 2}))
    theirs = _seed(**{"data.limit_per_split": 2})
    validate(theirs, str(REPO / "workflow_scripts/latentopt/workflow/config.schema.yaml"), set_default=True)
    assert ours == theirs
    schema = load_schema()
    validate_config(_seed())
    assert load_schema() == schema  # filling defaults copies them, the schema is untouched


def _snakemake_dry(tmp_path, *args, configfiles=()):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENTOPT_VERBOSE": ""}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(REPO / "demo/config.yaml"), *configfiles, *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "how, expected",
    [
        ("--config", "use_loss: unknown key (value ['psnr']); did you mean 'use_losses'?"),
        ("yaml", "losses.psnr.iteratons: unknown key (value 20); did you mean 'iterations'?"),
    ],
)
def test_the_snakefile_validates_through_it(tmp_path, how, expected):
    """Before: 1,016 and 139 lines, the schema printed in full after the one useful line."""
    if how == "yaml":
        (tmp_path / "typo.yaml").write_text("losses:\n  psnr:\n    iteratons: 20\n")
        out = _snakemake_dry(tmp_path, configfiles=[str(tmp_path / "typo.yaml")])
    else:
        out = _snakemake_dry(tmp_path, "--config", "use_loss=[psnr]")
    assert f"invalid configuration: {expected}" in out
    assert len(out.splitlines()) <= 8, out
    assert "Failed validating" not in out and "'properties'" not in out
