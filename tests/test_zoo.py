"""The autoencoder zoo (demo/study_zoo.yaml): six families at tiny random configs run end to end
(slow); the same study with the real presets plans offline and names every missing weight file in
one message; the counted cost agrees with a real checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import REPO, snakemake

from latentopt.models.families import PRESETS, TAESD_REPO

ZOO = REPO / "demo" / "study_zoo.yaml"


def _zoo(tmp_path, demo_data, real: bool, **models_extra) -> "Path":
    cfg = yaml.safe_load(ZOO.read_text())
    cfg["results_dir"] = str(tmp_path / "r")
    cfg["data"]["root"] = str(demo_data)
    for spec in cfg["models"].values():
        if real:
            spec.pop("synthetic")
    for name, extra in models_extra.items():
        cfg["models"][name].update(extra)
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_zoo_has_five_families_or_more_all_synthetic():
    cfg = yaml.safe_load(ZOO.read_text())
    families = {PRESETS[m["preset"]].family for m in cfg["models"].values()}
    assert len(families) >= 5 and all(m["synthetic"] for m in cfg["models"].values())


def test_the_real_zoo_plans_offline_naming_every_missing_file_once(tmp_path, demo_data):
    cfg = _zoo(tmp_path, demo_data, real=True, taef2={"source": str(tmp_path / "taef2")})
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    proc = snakemake(cfg, "-n", env=env, timeout=600)
    text = proc.stdout + proc.stderr
    assert "This was a dry-run" in text
    assert text.count("weight file(s) missing") == 1, text[-3000:]  # one message for the whole study
    models = yaml.safe_load(cfg.read_text())["models"]
    for spec in models.values():
        p = PRESETS[spec["preset"]]
        if p.hub_id:
            sub = f"{p.subfolder}/" if p.subfolder else ""
            assert f"https://huggingface.co/{p.hub_id}/resolve/{p.revision}/{sub}config.json" in text, p.name
        else:
            assert f"{TAESD_REPO}/raw/main/{p.variant}_decoder.pth" in text
    assert "`source:`" in text and "synthetic: true" in text  # the offline routes
    assert not (tmp_path / "r").exists() and not (tmp_path / "hub").exists()  # a dry run writes nothing


def test_counted_decoder_parameters_match_the_real_taef2(taef2_dir):
    from latentopt.models.cost import decode_cost

    cost = decode_cost("taef2", 64, 96)
    real = torch.load(taef2_dir / "taef2_decoder.pth", map_location="cpu", weights_only=True)
    assert cost["decoder_parameters"] == sum(t.numel() for t in real.values())
    assert cost["latent_shape"] == [32, 8, 12]
    assert 0 < cost["tflop_forward"] < cost["tflop_forward_backward"]


def test_dc_ae_cost_is_counted_from_the_config_it_is_given(monkeypatch):
    # the counter's numbers follow the preset's config: at the DC family's tiny config the meta-device
    # count equals a real model's parameters and FLOPs (counted on the CPU with real tensors)
    import dataclasses

    import diffusers
    from torch.utils.flop_counter import FlopCounterMode

    from latentopt.models import cost
    from latentopt.models.families import FAMILIES

    tiny = FAMILIES["dc"].tiny_config
    monkeypatch.setitem(cost.PRESETS, "dc_ae_f32c32",
                        dataclasses.replace(PRESETS["dc_ae_f32c32"], published_config=tiny))
    counted = cost.decode_cost("dc_ae_f32c32", 32, 48)
    real = diffusers.AutoencoderDC(**tiny).eval().requires_grad_(False)
    z = torch.zeros(1, tiny["latent_channels"], 8, 12, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        y = real.decode(z).sample
    with FlopCounterMode(display=False) as bwd:
        y.sum().backward()
    assert counted["latent_shape"] == [tiny["latent_channels"], 8, 12] and counted["image"] == [32, 48]
    assert counted["decoder_parameters"] == sum(p.numel() for p in real.decoder.parameters())
    assert counted["tflop_forward"] * 1e12 == fwd.get_total_flops()
    assert counted["tflop_forward_backward"] * 1e12 == fwd.get_total_flops() + bwd.get_total_flops()


def test_dc_ae_presets_are_counted_f64_on_a_cropped_image():
    from latentopt.models.cost import decode_cost

    f32, f64 = decode_cost("dc_ae_f32c32"), decode_cost("dc_ae_f64c128")
    assert f32["latent_shape"] == [32, 10, 15] and f32["image"] == [320, 480]
    assert f64["latent_shape"] == [128, 5, 7] and f64["image"] == [320, 448]  # 480 is no multiple of 64
    assert f64["decoder_parameters"] > f32["decoder_parameters"] > 1e8
    for c in (f32, f64):  # frozen model: the backward pass is the latent's gradient only (~ one forward)
        assert 1.9 < c["tflop_forward_backward"] / c["tflop_forward"] < 2.1


def test_the_docs_cost_table_is_the_counters_output():
    from latentopt.models.cost import table

    page = (REPO / "docs" / "autoencoders.md").read_text()
    shown = page.split("<!-- cost-table")[1].split("-->", 1)[1].split("<!-- /cost-table -->")[0].strip()
    assert shown == table(), "docs/autoencoders.md: paste `python -m latentopt.models.cost` between the markers"


@pytest.mark.slow
def test_the_zoo_runs_end_to_end_and_then_has_nothing_to_do(tmp_path, demo_data):
    cfg = _zoo(tmp_path, demo_data, real=False)
    snakemake(cfg, timeout=3600)
    results = tmp_path / "r"
    analysis = json.loads((results / "study" / "study_analysis.json").read_text())
    models = yaml.safe_load(ZOO.read_text())["models"]
    assert set(analysis["gains"]) == set(models)
    for name in models:
        assert analysis["metadata"]["models"][name]["synthetic"], name
        assert (results / name / "FULL_BSDS500_COMPARISON_REPORT.md").is_file()
    assert "NOT RESEARCH RESULTS" in (results / "study" / "study_report.md").read_text()
    assert "Nothing to be done" in snakemake(cfg, "-n").stdout
