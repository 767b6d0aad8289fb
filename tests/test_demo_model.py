"""The demo's own autoencoder: trained deterministically on the CPU, it learns, it loads behind the
common Autoencoder interface, and every output names it (tiny training budgets here; the demo's
real budget is measured by `make demo`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_config
from latentopt.models.autoencoders import load_autoencoder, state_dict_sha256
from latentopt.workflow.config import (
    ConfigError,
    check_config,
    demo_model_summary,
    demo_model_weights,
    describe_synthetic,
    synthetic_parts,
    synthetic_spec,
)
from latentopt.models.demo_model import (
    TrainSettings,
    build_network,
    main,
    normalise_latent,
    random_crops,
    save,
    train,
    training_photos,
)

STEPS = 40


@pytest.fixture(scope="session")
def trained():
    return train(TrainSettings(steps=STEPS), log=lambda msg: None)


@pytest.fixture(scope="session")
def weights_file(trained, tmp_path_factory):
    net, summary = trained
    weights, _ = save(net, summary, tmp_path_factory.mktemp("demo_model"))
    return weights


def _psnr(net, x: torch.Tensor) -> float:
    with torch.no_grad():
        mse = torch.mean((net.decoder(net.encoder(x)).clamp(0, 1) - x) ** 2)
    return float(-10 * torch.log10(mse))


def test_training_is_deterministic_and_summarised(trained):
    net, summary = trained
    again, summary2 = train(TrainSettings(steps=STEPS), log=lambda msg: None)
    assert state_dict_sha256(net) == state_dict_sha256(again)
    other_seed, _ = train(TrainSettings(steps=2, seed=1), log=lambda msg: None)
    assert state_dict_sha256(other_seed) != state_dict_sha256(net)
    assert summary["n_crops"] == STEPS * TrainSettings().batch_size and summary["seed"] == 0
    assert summary["settings"]["steps"] == STEPS and summary["versions"]["torch"] and summary["versions"]["torch_threads"] == 1
    assert summary["train_cpu_time_s"] > 0 and summary["train_time_s"] > 0
    assert summary["final_training_psnr_db"] == summary2["final_training_psnr_db"]
    assert summary["description"].startswith(f"autoencoder trained for the demo on {STEPS * 16} crops in ")
    assert summary["description"].endswith(" s — not SD-VAE")


def test_training_improves_reconstruction_of_unseen_crops(trained):
    """PSNR on crops drawn with another seed than the training's: the trained network against the
    same architecture before training."""
    net, _ = trained
    x = torch.from_numpy(random_crops(training_photos(), np.random.default_rng(12345), 32, 64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = build_network()
    before, after = _psnr(untrained, x), _psnr(net, x)
    assert after > before + 2.0, (before, after)


def test_latent_normalisation_keeps_the_reconstruction(trained):
    net = build_network()
    x = torch.from_numpy(random_crops(training_photos(), np.random.default_rng(7), 16, 48))
    with torch.no_grad():
        before = net.decoder(net.encoder(x))
    scale = normalise_latent(net, x)
    with torch.no_grad():
        z = net.encoder(x)
        after = net.decoder(z)
    assert scale > 0 and abs(float(z.std()) - 1) < 1e-4
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    trained_net, summary = trained  # the trained model is normalised on other crops: std near 1 here
    with torch.no_grad():
        assert 0.7 < float(trained_net.encoder(x).std()) < 1.4, summary["latent_std_before_normalisation"]


def test_loads_behind_the_autoencoder_interface(weights_file, trained):
    model = load_autoencoder({"kind": "demo_trained", "weights": str(weights_file)})
    assert model.info["weights_sha256"] == state_dict_sha256(trained[0])
    assert model.info["trained_for_demo"] == trained[1]["description"] and model.info["synthetic"] is True  # demo-trained: not research results (SYNTHETIC_KINDS)
    x = torch.rand(2, 3, 64, 96)
    z = model.encode(x)
    assert z.shape == (2, 4, 8, 12) and model.latent_shape(64, 96) == (4, 8, 12)
    z = z.clone().requires_grad_(True)
    y = model.decode(z)
    assert y.shape == x.shape and float(y.detach().min()) >= 0 and float(y.detach().max()) <= 1
    torch.mean((y - x) ** 2).backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="multiple of 8"):
        model.encode(torch.rand(1, 3, 60, 96))


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_demo_model.*latentopt.models.demo_model"):
        load_autoencoder({"kind": "demo_trained", "weights": str(tmp_path / "none.pt")})


def test_every_output_label_names_it(tmp_path, demo_data, trained):
    cfg = make_config(tmp_path / "results", demo_data, **{"model.kind": "demo_trained", "model.train_steps": STEPS})
    assert synthetic_parts(cfg)[0] == f"autoencoder trained for the demo on {STEPS * 16} crops (not trained yet) — not SD-VAE"
    spec = synthetic_spec(cfg)  # a job's param, built when the workflow is parsed: before the training
    save(*trained, demo_model_weights(cfg).parent)
    assert demo_model_summary(cfg).is_file()
    assert synthetic_parts(cfg)[0] == trained[1]["description"]
    assert describe_synthetic(spec) == synthetic_parts(cfg)  # described in the job, after the training
    with pytest.raises(ConfigError, match="allow_synthetic: .*trained for the demo"):
        check_config({**cfg, "allow_synthetic": False}, losses=False)


def test_command_line_writes_weights_and_summary(tmp_path, capsys):
    assert main([str(tmp_path / "m"), "--steps", "2"]) == 0
    assert (tmp_path / "m" / "demo_autoencoder.pt").is_file() and (tmp_path / "m" / "demo_autoencoder.json").is_file()
    assert "autoencoder trained for the demo on 32 crops" in capsys.readouterr().out
