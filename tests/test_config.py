"""A bad config fails before any job runs, naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from latentopt.workflow.config import ConfigError, check_config, validate_config

from conftest import seed_config

REPO = Path(__file__).resolve().parents[1]




def test_seed_config_is_valid_and_defaults_are_filled():
    cfg = validate_config(seed_config())
    assert cfg["losses"]["lpips"]["iterations"] == 150
    assert cfg["losses"]["ssim"]["stopping"]["threshold"] == 1e-5
    assert cfg["run"]["failure_policy"] == "record"
    assert cfg["preprocess"]["mode"] == "center_crop"


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("run.batchsize", 4, "batchsize"),
        ("losses.psnr.learning_rate", 0.1, "learning_rate"),
        ("losses.psnr.lr", "fast", "fast"),
        ("preprocess.mode", "stretch", "stretch"),
        ("run.device", "gpu0", "gpu0"),
        ("losses.psnr.iterations", 0, "0"),
    ],
)
def test_schema_names_the_bad_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate_config(seed_config(**{key: value}))


def _checked(**overrides):
    cfg = validate_config(seed_config(**overrides))
    check_config(cfg)
    return cfg


def test_synthetic_model_needs_explicit_permission():
    with pytest.raises(ConfigError, match="allow_synthetic"):
        _checked(**{"model.kind": "synthetic_kl"})
    _checked(**{"model.kind": "synthetic_kl", "allow_synthetic": True})


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"name": "psnrr"}, "losses.psnr.loss.name: unknown loss 'psnrr'"),
        ({"name": "improved_ssim", "window": 7}, "window"),
        ({"name": "weighted", "terms": [{"name": "mse"}]}, r"terms\[0\].weight"),
        ({"name": "weighted", "terms": [{"name": "mse", "weight": 1, "foo": 2}]}, "foo"),
    ],
)
def test_loss_spec_errors_name_the_key(spec, fragment):
    with pytest.raises(ConfigError, match=fragment):
        _checked(**{"losses.psnr.loss": spec})


def test_use_losses_must_exist():
    with pytest.raises(ConfigError, match="use_losses"):
        _checked(use_losses=["psnr", "nope"])


def test_taesd_needs_paths():
    with pytest.raises(ConfigError, match="model.encoder"):
        _checked(**{"model.kind": "taesd"})


def _metric_only_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return _checked(**{"model.kind": "synthetic_kl", "allow_synthetic": True})


def test_missing_weights_are_fetched_when_online(tmp_path, monkeypatch):
    from latentopt.workflow import weights
    from latentopt.workflow.weights import ensure_weights

    cfg = _metric_only_config(tmp_path, monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fetched = []

    def fake_download(url, path, timeout_s=60):
        fetched.append(Path(path).name)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"weights")

    monkeypatch.setattr(weights, "download_url", fake_download)
    ensure_weights(cfg)
    assert sorted(fetched) == ["alexnet-owt-7be5be79.pth", "pt_inception-2015-12-05-6726825d.pth", "vgg16-397923af.pth"]


def test_offline_never_downloads_and_names_each_file(tmp_path, monkeypatch):
    from latentopt.workflow import weights
    from latentopt.workflow.weights import ensure_weights

    cfg = _metric_only_config(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights, "download_url", lambda *a, **k: pytest.fail("downloaded while offline"))
    with pytest.raises(weights.MissingWeightsError) as err:
        ensure_weights(cfg)
    for name in ("alexnet-owt-7be5be79.pth", "vgg16-397923af.pth", "pt_inception-2015-12-05-6726825d.pth"):
        assert name in str(err.value) and str(tmp_path / "torch") in str(err.value)


def _from_command_line(*entries: str) -> dict:
    """The config as Snakemake builds it from config.yaml plus `--config` entries (its own parser:
    nested values arrive as strings)."""
    from snakemake.cli import parse_config

    from latentopt.workflow.config import merge_config

    cfg = seed_config()
    merge_config(cfg, parse_config(list(entries)))
    return cfg


def test_nested_command_line_values_get_the_schema_types():
    from latentopt.workflow.config import coerce_config

    entries = ("use_losses=[psnr]", "data={root: /data/BSR, limit_per_split: 10}",
               "run={images_per_job: 1, cpu_fallback: false, n_gpus: null}",
               "preprocess={crop_box: [64, 96]}", "model={source: 2024, subfolder: null}",
               "losses={psnr: {loss: {name: improved_ssim, window_size: 7, sigma: 1.5}, lr: 1e-3, betas: [0.9, 0.99]}}")
    raw = _from_command_line(*entries)
    assert raw["data"]["limit_per_split"] == "10"  # what Snakemake hands over
    with pytest.raises(ConfigError, match="is not an integer"):
        validate_config(copy.deepcopy(raw))
    cfg = validate_config(coerce_config(raw))
    assert cfg["data"] == {"root": "/data/BSR", "limit_per_split": 10, "splits": ["train", "val", "test"], "single_split_name": "all"}
    assert cfg["use_losses"] == ["psnr"]
    assert (cfg["run"]["images_per_job"], cfg["run"]["cpu_fallback"], cfg["run"]["n_gpus"]) == (1, False, None)
    assert cfg["preprocess"]["crop_box"] == [64, 96]
    assert cfg["model"]["source"] == "2024" and cfg["model"]["subfolder"] is None  # strings stay strings
    psnr = cfg["losses"]["psnr"]
    assert psnr["loss"] == {"name": "improved_ssim", "window_size": 7, "sigma": 1.5}  # free-form: YAML's reading
    assert psnr["lr"] == 1e-3 and psnr["betas"] == [0.9, 0.99]
    check_config(cfg)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("data={limit_per_split: ten}", "data.limit_per_split: 'ten' is not an integer or null"),
        ("run={batch_size: 4.5}", "run.batch_size: '4.5' is not an integer"),
        ("losses={psnr: {lr: fast}}", "losses.psnr.lr: 'fast' is not a number or a list"),  # a list: a sweep
        ("preprocess={crop_box: [64, wide]}", "preprocess.crop_box[1]: 'wide' is not an integer"),
        ("run={channels_last: maybe}", "run.channels_last: 'maybe' is not a boolean"),
    ],
)
def test_uncoercible_command_line_values_name_the_key(entry, message):
    from latentopt.workflow.config import coerce_config

    with pytest.raises(ConfigError) as err:
        coerce_config(_from_command_line(entry))
    assert str(err.value) == message


def test_typed_values_are_left_to_the_validation():
    from latentopt.workflow.config import coerce_config

    cfg = coerce_config(seed_config(**{"run.batch_size": 4.5, "data.limit_per_split": 3}))
    assert cfg["run"]["batch_size"] == 4.5 and cfg["data"]["limit_per_split"] == 3
    with pytest.raises(ConfigError, match="batch_size"):
        validate_config(cfg)


def test_resize_filter_only_with_resize_crop_and_absent_unless_given():
    with pytest.raises(ConfigError, match="preprocess.resize_filter"):
        _checked(**{"preprocess.resize_filter": "lanczos"})  # the seed config's mode is center_crop
    with pytest.raises(ConfigError, match="cubic"):
        validate_config(seed_config(**{"preprocess.mode": "resize_crop", "preprocess.resize_filter": "cubic"}))
    _checked(**{"preprocess.mode": "resize_crop", "preprocess.resize_filter": "lanczos"})
    # no default: a config without it keeps its preprocess params (the prepare jobs' rerun trigger)
    assert "resize_filter" not in validate_config(seed_config(**{"preprocess.mode": "resize_crop"}))["preprocess"]
