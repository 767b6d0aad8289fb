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


@pytest.mark.parametrize("overrides", [
    {},
    {"losses.psnr.method": "gradient_free"},
    {"losses.psnr.schedule": "cosine_warmup", "losses.psnr.warmup_fraction": 0.2},
    {"run.precision": "bf16", "run.final_precision_steps": 3, "run.final_precision": "tf32"},
    {"run.compile.enabled": True, "run.compile.mode": "max-autotune"},
])
def test_the_job_reads_its_settings_back_from_its_params(tmp_path, demo_data, overrides):
    """The optimize job's settings are its rule's params.settings (ArmSettings.from_params): what
    the params leave out is at its schema default, so reading them back gives the settings the
    config gives (the same Adam settings and decoder numerics, the same params: the fingerprint)."""
    config = make_config(tmp_path, demo_data, **overrides)
    for arm in ("baseline", *config["losses"]):
        built = ArmSettings.from_config(config, arm, {"kind": "synthetic_kl", "seed": 0})
        read = ArmSettings.from_params(built.params(), cache_dir=built.numerics.cache_dir)
        assert read.params() == built.params() and read.adam == built.adam and read.block == built.block
        if arm != "baseline":  # the baseline's encode and decode are exact fp32: no numerics in its params
            assert read.numerics == built.numerics


def test_the_job_rejects_settings_params_it_cannot_read_back(tmp_path, demo_data):
    config = make_config(tmp_path, demo_data)
    params = {**arm_settings(config, "psnr"), "method": "backprop"}  # at its default: params() leaves it out
    with pytest.raises(ValueError, match="psnr: settings params not read back exactly"):
        ArmSettings.from_params(params)


def test_bad_decoder_numerics_are_named_with_the_schema_choices():
    with pytest.raises(ValueError, match=r"run.precision must be one of \('fp32', 'tf32', 'bf16', 'fp16'\)"):
        DecoderNumerics.of(precision="fp8")
