"""The autoencoder families and presets (latentopt.models.families): one declaration each, and the
spec normalisation, config schema, weights registry and loader agreeing with it. Every diffusers
family is built from its tiny random config, saved with save_pretrained and loaded back through the
preset / `kind: diffusers` path (no downloads); 32x32 images."""

from __future__ import annotations

import subprocess

import pytest
import torch
import yaml

from latentopt.models import families
from latentopt.models.autoencoders import load_autoencoder
from latentopt.models.families import FAMILIES, FAMILY_BY_CLASS, PRESETS, TAESD_VARIANTS
from latentopt.workflow import model_specs, weights
from latentopt.workflow.config import SCHEMA, load_config, model_spec
from latentopt.workflow.weights import MissingWeightsError, required_weight_files

DIFFUSERS_FAMILIES = sorted(f.name for f in FAMILY_BY_CLASS.values())
PRESET_OF_FAMILY = {p.family: p.name for p in PRESETS.values()}


def _schema_model() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["properties"]["model"]["properties"]


def test_schema_enums_and_defaults_agree_with_the_declarations():
    props = _schema_model()
    assert set(props["kind"]["enum"]) - {None} == set(model_specs.SPEC_DEFAULTS)
    assert set(props["preset"]["enum"]) - {None} == set(PRESETS)
    assert set(props["variant"]["enum"]) - {None} == set(TAESD_VARIANTS)
    assert props["variant"]["default"] is None  # the variant comes from the file name, not a default
    for kind, defaults in model_specs.CONFIG_DEFAULTS.items():
        assert set(defaults) <= set(props), kind
        for key, value in defaults.items():  # a schema default, where there is one, is the declaration's
            assert props[key].get("default", value) == value, (kind, key)
    assert set(model_specs.KIND_FAMILY.values()) <= set(FAMILIES)


def test_each_diffusers_class_is_declared_once_and_exists():
    import diffusers

    classes = [f.diffusers_class for f in FAMILIES.values() if f.diffusers_class]
    assert len(classes) == len(set(classes))
    for name in classes:
        assert hasattr(getattr(diffusers, name), "encode"), name
    for p in PRESETS.values():
        assert p.family in FAMILIES
        assert p.hub_id or p.family == "taesd"
        assert p.revision  # "main" where no commit is known offline (docs/autoencoders.md)


def test_every_diffusers_family_has_a_preset():
    # the families (Wan 2.1, Hunyuan image and Cosmos included) load by `preset:` and are tested through it
    assert set(DIFFUSERS_FAMILIES) <= set(PRESET_OF_FAMILY)
    for name in ("wan21", "hunyuan_image21", "cosmos1"):
        assert PRESETS[name].published_config is not None, name  # {}: the class defaults; its cost is counted (docs/autoencoders.md)


def test_class_names_live_in_one_module(repo_root):
    # git grep for a family's class name finds it in families.py only, outside tests and docs
    for cls in ("AutoencoderKLFlux2", "AutoencoderDC", "AutoencoderKLQwenImage", "AutoencoderKLWan", "AutoencoderKLCosmos"):
        out = subprocess.run(["git", "grep", "-l", cls, "--", "workflow_scripts", "rules", "Snakefile"],
                             cwd=repo_root, capture_output=True, text=True).stdout.split()
        assert out == ["workflow_scripts/latentopt/models/families.py"], (cls, out)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_normalises_and_names_its_hub_files(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    p = PRESETS[name]
    if p.family == "taesd":
        with pytest.raises(ValueError, match="needs 'source'"):
            model_specs.normalize_spec({"preset": name})
        s = model_specs.normalize_spec({"preset": name, "source": str(tmp_path)})
        assert s["kind"] == "taesd" and s["variant"] == p.variant
        assert [f.path.name for f in required_weight_files(s)] == [f"{p.variant}_encoder.pth", f"{p.variant}_decoder.pth"]
        return
    s = model_specs.normalize_spec({"preset": name})
    assert (s["class"], s["source"], s["subfolder"], s["revision"]) == (
        FAMILIES[p.family].diffusers_class, p.hub_id, p.subfolder, p.revision)
    urls = [f.url for f in required_weight_files(s)]
    prefix = f"{p.subfolder}/" if p.subfolder else ""
    assert f"https://huggingface.co/{p.hub_id}/resolve/{p.revision}/{prefix}config.json" in urls
    # a source of your own: the folder itself, no subfolder, no revision
    own = model_specs.normalize_spec({"preset": name, "source": str(tmp_path)})
    assert (own["source"], own["subfolder"], own["revision"]) == (str(tmp_path), None, None)
    assert model_specs.normalize_spec({"preset": name, "synthetic": True})["synthetic"] is True
    assert required_weight_files({"preset": name, "synthetic": True}) == []


def test_bad_specs_name_the_problem():
    with pytest.raises(ValueError, match="unknown autoencoder preset 'flux3'"):
        model_specs.normalize_spec({"preset": "flux3"})
    with pytest.raises(ValueError, match="has no declared family.*convention"):
        model_specs.normalize_spec({"kind": "diffusers", "class": "AsymmetricAutoencoderKL", "source": "x"})
    with pytest.raises(ValueError, match="declared with convention 'kl'"):
        model_specs.normalize_spec({"kind": "diffusers", "class": "AutoencoderKL", "convention": "dc", "source": "x"})
    with pytest.raises(ValueError, match="either 'preset'"):
        model_specs.config_spec({"preset": "sdxl", "kind": "diffusers_kl"})


# --- every diffusers family, tiny random config, through the preset path ------------------------


def _save_tiny(family: families.Family, folder):
    import diffusers

    torch.manual_seed(0)
    model = getattr(diffusers, family.diffusers_class)(**family.tiny_config)
    model.save_pretrained(folder)
    return model.eval()


def _spec(family: families.Family, folder) -> dict:
    if family.name in PRESET_OF_FAMILY:
        return {"preset": PRESET_OF_FAMILY[family.name], "source": str(folder)}
    return {"kind": "diffusers", "class": family.diffusers_class, "source": str(folder)}


@pytest.mark.parametrize("name", DIFFUSERS_FAMILIES)
def test_family_loads_round_trips_and_optimizes(name, tmp_path):
    family = FAMILIES[name]
    reference = _save_tiny(family, tmp_path / "model")
    ae = load_autoencoder(_spec(family, tmp_path / "model"))
    f = ae.downsample_factor
    assert f == families.downsample_factor(family, dict(reference.config))
    assert ae.latent_channels == reference.config[family.channels_key]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = ae.encode(x)
        y = ae.decode(z)
    assert tuple(z.shape) == (2, ae.latent_channels, 32 // f, 32 // f)
    assert tuple(y.shape) == tuple(x.shape) and float(y.min()) >= 0 and float(y.max()) <= 1
    # the recorded convention, computed here with the class's own API from the declaration's words
    with torch.no_grad():
        inp = (x * 2 - 1).unsqueeze(2) if family.frame_axis else x * 2 - 1
        out = reference.encode(inp)
        ref_z = out.latent_dist.mode() if family.latent == "latent_dist.mode()" else getattr(out, family.latent)
        if family.frame_axis:  # the frame axis round-trips: one frame in, one latent frame out, one frame back
            assert ref_z.shape[2] == 1
            ref_y = reference.decode(ref_z).sample
            assert ref_y.shape[2] == 1
            ref_z, ref_y = ref_z.squeeze(2), ref_y.squeeze(2)
        else:
            ref_y = reference.decode(ref_z).sample
    torch.testing.assert_close(z, ref_z)
    torch.testing.assert_close(y, (ref_y / 2 + 0.5).clamp(0, 1))
    assert ae.info["latent_convention"] == family.convention()
    assert set(ae.info["factors_not_applied"]) == set(family.factors)
    assert ae.info["synthetic"] is False and ae.info["weight_files"]
    # one Adam step on the latent lowers the reconstruction loss; the model stays frozen
    zz = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([zz], lr=1e-2)
    loss0 = ((ae.decode(zz) - x) ** 2).mean()
    loss0.backward()
    opt.step()
    with torch.no_grad():
        loss1 = ((ae.decode(zz.detach()) - x) ** 2).mean()
    assert float(loss1) < float(loss0)
    assert all(p.grad is None for p in ae.model.parameters())


def test_synthetic_preset_is_seeded_and_labelled():
    a = load_autoencoder({"preset": "flux2", "synthetic": True, "seed": 1})
    b = load_autoencoder({"preset": "flux2", "synthetic": True, "seed": 1})
    c = load_autoencoder({"preset": "flux2", "synthetic": True, "seed": 2})
    assert a.info["synthetic"] and "synthetic" in a.info["source"]
    assert a.info["weights_sha256"] == b.info["weights_sha256"] != c.info["weights_sha256"]


def test_undeclared_class_with_a_declared_convention(tmp_path):
    import diffusers

    torch.manual_seed(0)
    diffusers.AsymmetricAutoencoderKL(
        down_block_out_channels=(16, 32, 32, 32), up_block_out_channels=(16, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_down_block=1, layers_per_up_block=1, norm_num_groups=8, latent_channels=4,
    ).save_pretrained(tmp_path / "asym")
    ae = load_autoencoder({"kind": "diffusers", "class": "AsymmetricAutoencoderKL", "convention": "kl",
                           "source": str(tmp_path / "asym")})  # fits: checked by one encode/decode at load
    with torch.no_grad():
        assert tuple(ae.decode(ae.encode(torch.rand(1, 3, 32, 32))).shape) == (1, 3, 32, 32)
    diffusers.VQModel(block_out_channels=(16, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                      up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, latent_channels=4,
                      num_vq_embeddings=16, vq_embed_dim=4).save_pretrained(tmp_path / "vq")
    with pytest.raises(ValueError, match="'VQModel' does not follow convention 'kl'"):
        load_autoencoder({"kind": "diffusers", "class": "VQModel", "convention": "kl", "source": str(tmp_path / "vq")})


def test_missing_weights_named_in_one_message_with_offline_routes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = [f for name in ("flux2", "qwen_image") for f in required_weight_files({"preset": name})]
    with pytest.raises(MissingWeightsError) as err:
        weights.require(files)
    msg = str(err.value)
    assert "black-forest-labs/FLUX.2-dev/resolve/main/vae/config.json" in msg
    assert "Qwen/Qwen-Image/resolve/main/vae/diffusion_pytorch_model.safetensors" in msg
    assert "source:" in msg and "synthetic: true" in msg


# --- the TAESD variant from the file name, in the pipeline's config path -----------------------


def test_taef2_spec_without_variant_works_in_the_pipeline(taef2_dir):
    cfg = load_config([], {"model": {"kind": "taesd", "encoder": str(taef2_dir / "taef2_encoder.pth"),
                                     "decoder": str(taef2_dir / "taef2_decoder.pth")}})
    spec = model_spec(cfg)
    assert spec["variant"] == "taef2"
    ae = load_autoencoder(spec)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert tuple(ae.encode(x).shape) == (1, 32, 4, 4)
    preset = load_autoencoder(model_spec(load_config([], {"model": {"preset": "taef2", "source": str(taef2_dir)}})))
    assert preset.info["weights_sha256"] == ae.info["weights_sha256"]


def test_unguessable_taesd_variant_is_a_config_error(tmp_path):
    from latentopt.workflow.config import ConfigError

    cfg = load_config([], {"model": {"kind": "taesd", "encoder": "enc.pth", "decoder": "dec.pth"}})
    with pytest.raises(ConfigError, match="set 'variant'"):
        model_spec(cfg)
