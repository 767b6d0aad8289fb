"""Autoencoder loading: TAEF2 (real weights, optional), synthetic KL, diffusers folders and hub
cache, missing-file reporting. Kept small: 64x96 images, tiny randomly initialised models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from latentopt.workflow import model_specs, weights
from latentopt.models.autoencoders import load_autoencoder
from latentopt.workflow.weights import fetch_weights, required_weight_files
from latentopt.models.taesd import TAESD, state_dicts_from_diffusers
from latentopt.workflow.weights import MissingWeightsError

TAEF2_ENCODER_PARAMS = 1_338_528
TAEF2_DECODER_PARAMS = 1_338_499


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def file_sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


@pytest.fixture()
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 96, generator=g)


# --- TAEF2 (real pretrained weights from ../shared) ---------------------------------------------


@pytest.fixture(scope="module")
def taef2_spec(taef2_dir) -> dict:
    return {
        "kind": "taesd",
        "encoder": str(taef2_dir / "taef2_encoder.pth"),
        "decoder": str(taef2_dir / "taef2_decoder.pth"),
        "variant": "taef2",
    }


@pytest.fixture(scope="module")
def taef2(taef2_spec):
    return load_autoencoder(taef2_spec)


@pytest.fixture(scope="module")
def bsds_crop(bsds_root) -> torch.Tensor:
    from PIL import Image

    path = bsds_root / "BSDS500" / "data" / "images" / "test" / "100007.jpg"
    arr = np.asarray(Image.open(path).convert("RGB"))[:160, :240]  # top-left 240x160
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0


def test_taef2_strict_load_and_parameter_counts(taef2_dir, taef2_spec, taef2):
    enc_path, dec_path = taef2_dir / "taef2_encoder.pth", taef2_dir / "taef2_decoder.pth"
    net = TAESD("taef2")
    for part, path in (("encoder", enc_path), ("decoder", dec_path)):
        state = torch.load(path, map_location="cpu", weights_only=True)
        result = getattr(net, part).load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.encoder.parameters()) == TAEF2_ENCODER_PARAMS
    assert sum(p.numel() for p in net.decoder.parameters()) == TAEF2_DECODER_PARAMS
    # The wrong variant must not load silently.
    with pytest.raises(ValueError, match="taef1"):
        TAESD.from_files(enc_path, dec_path, "taef1")

    info = taef2.info
    assert info["kind"] == "taesd" and info["variant"] == "taef2" and info["synthetic"] is False
    assert info["latent_channels"] == 32 and info["downsample_factor"] == 8
    assert info["dtype"] == "float32" and "tanh" in info["latent_convention"]
    assert info["weights_sha256"] == file_sha256(enc_path, dec_path)
    assert not any(p.requires_grad for p in taef2.parameters())
    assert not taef2.training and not taef2.model.training
    # variant guessed from the file name when omitted
    spec = {k: v for k, v in taef2_spec.items() if k != "variant"}
    assert model_specs.normalize_spec(spec)["variant"] == "taef2"


def test_taef2_reconstruction_and_latent_optimisation(taef2, bsds_crop):
    x = bsds_crop
    assert x.shape == (1, 3, 160, 240)
    with torch.no_grad():
        z0 = taef2.encode(x)
        y0 = taef2.decode(z0)
    assert z0.shape == (1, 32, 20, 30)
    assert y0.shape == x.shape and 0 <= float(y0.min()) and float(y0.max()) <= 1
    before = psnr(y0, x)
    assert before > 33.0, before  # the pretrained decoder reconstructs the crop well

    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(taef2.decode(z), x)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = psnr(taef2.decode(z), x)
    print(f"TAEF2 240x160: PSNR {before:.2f} dB -> {after:.2f} dB after 20 Adam steps")
    assert after > before + 1.0, (before, after)
    assert not any(p.grad is not None for p in taef2.parameters())


# --- our TAESD network == diffusers AutoencoderTiny ---------------------------------------------


def test_taesd_network_matches_diffusers_tiny(tmp_path, images):
    from diffusers import AutoencoderTiny

    torch.manual_seed(1)
    tiny = AutoencoderTiny().eval()  # released taesd architecture, random weights
    enc_sd, dec_sd = state_dicts_from_diffusers(tiny.state_dict())
    torch.save(enc_sd, tmp_path / "taesd_encoder.pth")
    torch.save(dec_sd, tmp_path / "taesd_decoder.pth")
    tiny.save_pretrained(tmp_path / "tiny")

    ours = load_autoencoder(
        {
            "kind": "taesd",
            "encoder": str(tmp_path / "taesd_encoder.pth"),
            "decoder": str(tmp_path / "taesd_decoder.pth"),
        }
    )
    theirs = load_autoencoder({"kind": "diffusers_tiny", "source": str(tmp_path / "tiny")})
    assert ours.info["variant"] == "taesd" and ours.latent_channels == 4
    images = images[:, :, :32, :48]  # full-width (64-channel) networks: keep the images small
    with torch.no_grad():
        z_ours, z_theirs = ours.encode(images), theirs.encode(images)
        torch.testing.assert_close(z_ours, z_theirs, rtol=1e-5, atol=1e-5)
        assert z_ours.shape == (2, 4, 4, 6)
        # raw decoder outputs (before the [0,1] clamp) agree under the convention
        raw_ours = ours.model.decoder(z_ours)
        raw_theirs = tiny.decode(z_ours).sample / 2 + 0.5
        torch.testing.assert_close(raw_ours, raw_theirs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.decode(z_ours), theirs.decode(z_ours), rtol=1e-5, atol=1e-5)


# --- synthetic KL ---------------------------------------------------------------------------------


def test_synthetic_kl_deterministic_and_seed_dependent(images):
    rng_state = torch.random.get_rng_state()
    a = load_autoencoder({"kind": "synthetic_kl", "seed": 0})
    b = load_autoencoder({"kind": "synthetic_kl"})  # defaults: seed 0
    c = load_autoencoder({"kind": "synthetic_kl", "seed": 1})
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # global RNG untouched

    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.info["weights_sha256"] == b.info["weights_sha256"] != c.info["weights_sha256"]
    with torch.no_grad():
        za, zb, zc = a.encode(images), b.encode(images), c.encode(images)
        assert torch.equal(za, zb) and not torch.equal(za, zc)
        assert torch.equal(a.decode(za), b.decode(zb))
        assert not torch.equal(a.decode(za), c.decode(za))


def test_synthetic_kl_shapes_range_frozen_and_gradients(images):
    ae = load_autoencoder({"kind": "synthetic_kl", "seed": 3})
    info = ae.info
    assert info["synthetic"] is True and info["kind"] == "synthetic_kl"
    assert info["latent_channels"] == 4 and info["downsample_factor"] == 8
    assert info["dtype"] == "float32" and "scaling_factor" in info["latent_convention"]
    assert not any(p.requires_grad for p in ae.parameters())
    ae.train()
    assert not ae.training and not ae.model.training

    z = ae.encode(images)
    assert z.shape == (2, 4, 8, 12) and not z.requires_grad
    # deterministic: the posterior mode, twice the same
    torch.testing.assert_close(z, ae.encode(images), rtol=0, atol=0)
    with torch.no_grad():
        expected = ae.model.encode(images * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(z, expected, rtol=0, atol=0)

    z = z.detach().requires_grad_(True)
    y = ae.decode(z)
    assert y.shape == images.shape
    assert float(y.detach().min()) >= 0.0 and float(y.detach().max()) <= 1.0
    torch.nn.functional.mse_loss(y, images).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in ae.parameters())

    with pytest.raises(ValueError, match="multiple of 8"):
        ae.encode(torch.rand(1, 3, 60, 96))


# --- diffusers models saved to a folder ---------------------------------------------------------


def _small_kl():
    from diffusers import AutoencoderKL

    torch.manual_seed(5)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
    ).eval()


def _small_tiny():
    from diffusers import AutoencoderTiny

    torch.manual_seed(6)
    return AutoencoderTiny(
        encoder_block_out_channels=(16, 16, 16, 16),
        decoder_block_out_channels=(16, 16, 16, 16),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    ).eval()


def test_diffusers_kl_from_local_folder(tmp_path, images):
    model = _small_kl()
    model.save_pretrained(tmp_path / "vae")
    spec = {"kind": "diffusers_kl", "source": str(tmp_path), "subfolder": "vae"}

    files = required_weight_files(spec)
    assert [f.path.name for f in files] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert all(f.exists() for f in files)
    weights.require(files)

    ae = load_autoencoder(spec)
    assert ae.info["weights_sha256"] == file_sha256(*(f.path for f in files))
    assert ae.info["synthetic"] is False and ae.info["downsample_factor"] == 8
    assert not any(p.requires_grad for p in ae.parameters())
    with torch.no_grad():
        z = ae.encode(images)
        torch.testing.assert_close(z, model.encode(images * 2 - 1).latent_dist.mode())
        y = ae.decode(z)
        torch.testing.assert_close(y, (model.decode(z).sample / 2 + 0.5).clamp(0, 1))
    assert z.shape == (2, 4, 8, 12) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_diffusers_tiny_from_local_folder(tmp_path, images):
    model = _small_tiny()
    model.save_pretrained(tmp_path)
    spec = {"kind": "diffusers_tiny", "source": str(tmp_path)}

    files = required_weight_files(spec)
    assert [f.path.name for f in files] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert all(f.exists() for f in files)

    ae = load_autoencoder(spec)
    assert ae.info["weights_sha256"] == file_sha256(*(f.path for f in files))
    assert ae.info["latent_channels"] == 4 and ae.info["downsample_factor"] == 8
    with torch.no_grad():
        z = ae.encode(images)
        # AutoencoderTiny takes [-1,1]; its EncoderTiny maps back to [0,1] internally
        torch.testing.assert_close(z, model.encoder.layers(images))
        torch.testing.assert_close(z, model.encode(images * 2 - 1).latents)
        y = ae.decode(z)
        torch.testing.assert_close(y, (model.decode(z).sample / 2 + 0.5).clamp(0, 1))
        torch.testing.assert_close(y, model.decoder.layers(torch.tanh(z / 3) * 3).clamp(0, 1))
    assert z.shape == (2, 4, 8, 12)


def test_diffusers_kl_from_hub_cache_offline(tmp_path, monkeypatch, images):
    model = _small_kl()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-vae"
    model.save_pretrained(repo / "snapshots" / commit / "vae")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    spec = {"kind": "diffusers_kl", "source": "acme/tiny-vae", "subfolder": "vae"}
    files = required_weight_files(spec)
    assert all(f.exists() for f in files)
    assert files[0].path == repo / "snapshots" / commit / "vae" / "config.json"
    assert fetch_weights(spec) == files  # nothing to download
    ae = load_autoencoder(spec)
    with torch.no_grad():
        z = ae.encode(images)
        torch.testing.assert_close(ae.decode(z), (model.decode(z).sample / 2 + 0.5).clamp(0, 1))
    # the run records the snapshot commit that `main` resolved to, not just "main"
    assert ae.info["weights_revision"] == {"from": "hub", "requested": "main", "commit": commit,
                                           "text": f"acme/tiny-vae@{commit} (main)"}
    # a pinned 40-hex revision is its own snapshot folder
    pinned = load_autoencoder({**spec, "revision": commit})
    assert pinned.info["weights_revision"]["commit"] == commit
    assert pinned.info["weights_revision"]["text"] == f"acme/tiny-vae@{commit}"


def test_weights_revision_of_a_local_folder_says_there_is_no_commit(tmp_path):
    _small_kl().save_pretrained(tmp_path / "vae")  # save_pretrained: no hub commit anywhere
    ae = load_autoencoder({"kind": "diffusers_kl", "source": str(tmp_path / "vae")})
    rev = ae.info["weights_revision"]
    assert rev["from"] == "local folder" and rev["commit"] is None
    assert rev["text"].startswith("local folder: no hub commit")
    assert ae.info["weight_files"]  # what identifies them instead: each file's sha256
    synthetic = load_autoencoder({"kind": "synthetic_kl"})
    assert synthetic.info["weights_revision"]["text"] == "synthetic: no weights"


def test_report_provenance_names_the_hub_commit_of_each_model(tmp_path):
    import json

    import pandas as pd

    from latentopt.report.provenance import model_provenance
    from latentopt.workflow import layout

    commit = "0123456789abcdef0123456789abcdef01234567"
    revisions = {"1": {"text": f"acme/vae@{commit} (main)"}, "2": None}  # the second: a record from before
    for image_id, rev in revisions.items():
        path = layout.per_image(tmp_path, "baseline", "val", image_id, "json")
        path.parent.mkdir(parents=True, exist_ok=True)
        model = {"kind": "diffusers", "source": "acme/vae", "weights_sha256": "ab" * 32, "dtype": "float32"}
        path.write_text(json.dumps({"model": {**model, **({"weights_revision": rev} if rev else {})}}))
    df = pd.DataFrame({"dataset": ["baseline"] * 2, "split": ["val"] * 2, "image_id": ["1", "2"]})
    shown = model_provenance(tmp_path, df, ["baseline"])["table"]
    assert "revision (hub commit)" in shown["header"]
    column = [row[shown["header"].index("revision (hub commit)")] for row in shown["rows"]]
    assert sorted(column) == sorted([f"acme/vae@{commit} (main)", "not recorded"])


# --- missing files --------------------------------------------------------------------------------


def test_missing_taesd_files_are_reported(tmp_path, monkeypatch):
    enc, dec = tmp_path / "nowhere" / "taef2_encoder.pth", tmp_path / "nowhere" / "taef2_decoder.pth"
    spec = {"kind": "taesd", "encoder": str(enc), "decoder": str(dec)}
    files = required_weight_files(spec)
    assert [f.path for f in files] == [enc, dec]
    assert not any(f.exists() for f in files)
    with pytest.raises(MissingWeightsError) as err:
        weights.require(files)
    assert str(enc) in str(err.value) and str(dec) in str(err.value)
    assert "madebyollin/taesd" in str(err.value)
    with pytest.raises(MissingWeightsError, match=str(enc)):
        load_autoencoder(spec)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(MissingWeightsError, match="network unreachable") as err:
        fetch_weights(spec)
    assert str(enc) in str(err.value)
    assert not enc.exists() and not (enc.parent / (enc.name + ".part")).exists()


def test_missing_hub_files_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    spec = {"kind": "diffusers_kl", "source": "CompVis/stable-diffusion-v1-4", "subfolder": "vae"}
    files = required_weight_files(spec)
    repo = tmp_path / "empty_hub" / "models--CompVis--stable-diffusion-v1-4"
    assert [f.path for f in files] == [
        repo / "refs" / "main",
        repo / "snapshots" / "main" / "vae" / "config.json",
        repo / "snapshots" / "main" / "vae" / "diffusion_pytorch_model.safetensors",
    ]
    assert not any(f.exists() for f in files)
    with pytest.raises(MissingWeightsError) as err:
        weights.require(files)
    message = str(err.value)
    assert str(files[1].path) in message and str(files[2].path) in message
    assert (
        "https://huggingface.co/CompVis/stable-diffusion-v1-4/resolve/main/vae/config.json"
        in message
    )

    # offline by environment: no download attempted
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="offline") as err:
        fetch_weights(spec)
    assert str(files[2].path) in str(err.value)
    with pytest.raises(MissingWeightsError):
        load_autoencoder(spec)

    # the library's own offline failure is caught and turned into MissingWeightsError
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MissingWeightsError, match="could not download") as err:
        fetch_weights(spec)
    assert str(files[2].path) in str(err.value)


def test_missing_local_diffusers_folder(tmp_path):
    spec = {"kind": "diffusers_tiny", "source": str(tmp_path / "absent")}
    files = required_weight_files(spec)
    assert [f.path for f in files] == [
        tmp_path / "absent" / "config.json",
        tmp_path / "absent" / "diffusion_pytorch_model.safetensors",
    ]
    with pytest.raises(MissingWeightsError, match="absent"):
        fetch_weights(spec)
    with pytest.raises(MissingWeightsError, match="absent"):
        load_autoencoder(spec)


def test_synthetic_needs_no_files():
    assert required_weight_files({"kind": "synthetic_kl"}) == []
    assert fetch_weights({"kind": "synthetic_kl", "seed": 2}) == []


# --- specs, cache location, torch-free import ------------------------------------------------


def test_spec_validation():
    with pytest.raises(ValueError, match="'vqgan'"):
        load_autoencoder({"kind": "vqgan"})
    with pytest.raises(ValueError, match="scale"):
        required_weight_files({"kind": "synthetic_kl", "scale": 2})
    with pytest.raises(ValueError, match="source"):
        required_weight_files({"kind": "diffusers_kl"})
    with pytest.raises(ValueError, match="variant"):
        required_weight_files({"kind": "taesd", "encoder": "a.pth", "decoder": "b.pth"})
    with pytest.raises(ValueError, match="variant"):
        required_weight_files(
            {"kind": "taesd", "encoder": "a.pth", "decoder": "b.pth", "variant": "taexl"}
        )
    s = model_specs.normalize_spec({"kind": "diffusers_tiny", "source": "madebyollin/taesd"})
    assert s == {
        "kind": "diffusers_tiny",
        "source": "madebyollin/taesd",
        "subfolder": None,
        "revision": None,
    }


def test_hf_cache_location(monkeypatch, tmp_path):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert weights.hf_hub_cache_dir() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.hf_hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert weights.hf_hub_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert weights.hf_hub_cache_dir() == tmp_path / "cache"
    assert weights.is_hf_repo_id("CompVis/stable-diffusion-v1-4")
    assert not weights.is_hf_repo_id(str(tmp_path))
    assert not weights.is_hf_repo_id("./models/vae")


def test_required_weight_files_imports_neither_torch_nor_diffusers(repo_root):
    code = (
        "import sys\n"
        "from latentopt.workflow import weights\n"
        "weights.required_weight_files({'kind': 'diffusers_kl', "
        "'source': 'CompVis/stable-diffusion-v1-4', 'subfolder': 'vae'})\n"
        "weights.required_weight_files({'kind': 'taesd', 'encoder': 'taef2_encoder.pth', "
        "'decoder': 'taef2_decoder.pth'})\n"
        "bad = [m for m in ('torch', 'diffusers', 'huggingface_hub') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root / "workflow_scripts")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
