"""The settings objects read the schema's defaults (no copy of their own) and are built once per job."""

from dataclasses import replace

import pytest

from conftest import make_config
from latentopt.workflow.config import arm_settings, validate_config
from latentopt.workflow.settings import (
    AdamSettings,
    ArmSettings,
    DecoderNumerics,
    RunSettings,
    StopRule,
    loss_defaults,
    run_defaults,
)


def _minimal(**extra) -> dict:
    """A config with one loss given only its spec, validated by Snakemake's validate(set_default)."""
    return validate_config({"losses": {"psnr": {"loss": {"name": "psnr"}}}, **extra})


def test_the_defaults_are_what_schema_validation_fills():
    config = _minimal()
    block = config["losses"]["psnr"]
    assert {k: v for k, v in block.items() if k != "loss"} == loss_defaults()
    assert config["run"] == run_defaults()
    # the of() constructors of tests and benchmarks take those same values
    assert AdamSettings.of() == AdamSettings.from_block(block)
    assert AdamSettings.of(lr=0.5).lr == 0.5 and AdamSettings.of(lr=0.5).eps == block["eps"]
    assert StopRule.of("none") == StopRule("none", block["stopping"]["threshold"], block["stopping"]["patience"])
    assert DecoderNumerics.of() == replace(DecoderNumerics.from_config(config), cache_dir=None)


def test_settings_read_the_validated_values(tmp_path, demo_data):
    config = make_config(tmp_path, demo_data, **{"losses.psnr.betas": [0.8, 0.99], "losses.psnr.retry": {"lr_factor": 0.5},
                                                 "run.batch_size": 3, "run.final_precision_steps": 2})
    block = config["losses"]["psnr"]
    adam = AdamSettings.from_block(block)
    assert (adam.iterations, adam.lr, adam.betas, adam.eps) == (block["iterations"], block["lr"], (0.8, 0.99), block["eps"])
    assert adam.stopping == StopRule(**block["stopping"]) and adam.retry.lr_factor == 0.5
    assert adam.retry.iterations_factor == loss_defaults()["retry"]["iterations_factor"]
    assert RunSettings.from_config(config).batch_size == 3
    numerics = DecoderNumerics.from_config(config)
    assert numerics.final_precision_steps == 2 and numerics.precision == config["run"]["precision"]


def test_the_fingerprint_input_holds_the_validated_block_verbatim(tmp_path, demo_data):
    """A finished result keeps its fingerprint: the params carry the config's values as given
    (an int stays an int), except the method and schedule keys at their defaults (backprop,
    constant), which are left out so that results from before those keys keep their fingerprint
    (tests/test_methods.py), and the baseline does not depend on the loss or run numerics."""
    config = make_config(tmp_path, demo_data)
    for arm in config["losses"]:
        params = arm_settings(config, arm)
        block = config["losses"][arm]
        assert {k: params[k] for k in block if k in params} == {k: v for k, v in block.items() if k in params}
        assert {k for k in block if k not in params} == {"method", "schedule", "warmup_fraction"}
        assert params["precision"] == config["run"]["precision"] and params["arm"] == arm
    base = arm_settings(config, "baseline")
    assert base["iterations"] == 0 and "precision" not in base and "loss" not in base


def test_a_built_setting_does_not_follow_later_config_changes(tmp_path, demo_data):
    config = make_config(tmp_path, demo_data)
    settings = ArmSettings.from_config(config, "psnr", {"kind": "synthetic_kl", "seed": 0})
    before, lr = settings.params(), config["losses"]["psnr"]["lr"]
    config["losses"]["psnr"]["lr"] = 9.0
    config["preprocess"]["multiple"] = 16
    assert ArmSettings.from_config(config, "psnr", settings.model).adam.lr == 9.0
    assert settings.adam.lr == lr and settings.params() == before


def test_the_job_rejects_params_that_differ_from_its_config(tmp_path, demo_data):
    from latentopt.optimize.job import job_settings

    config = make_config(tmp_path, demo_data)
    assert job_settings(config, "psnr", arm_settings(config, "psnr")).adam.lr == config["losses"]["psnr"]["lr"]
    stale = {**arm_settings(config, "psnr"), "lr": 1.0}
    with pytest.raises(ValueError, match="params.settings"):
        job_settings(config, "psnr", stale)


def test_bad_decoder_numerics_are_named_with_the_schema_choices():
    with pytest.raises(ValueError, match=r"run.precision must be one of \('fp32', 'tf32', 'bf16', 'fp16'\)"):
        DecoderNumerics.of(precision="fp8")
