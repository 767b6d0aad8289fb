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
