"""A study (config key ``models``): each model's own config, the checks, and the plan of a dry run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, snakemake, write_config

from latentopt.devtools.snakemake_cli import chunk_stats, job_stats
from latentopt.workflow.config import ConfigError, arm_settings, check_config, load_config
from latentopt.workflow.study import model_config, model_configs, study_params

DEMO = REPO / "demo" / "config.yaml"


def study(tmp_path, **extra) -> dict:
    over = {
        "results_dir": str(tmp_path / "r"),
        "models": {"small": {"kind": "synthetic_kl", "seed": 1}, "large": {"kind": "synthetic_kl", "seed": 2}},
        **extra,
    }
    return load_config([DEMO], over)


def test_each_model_gets_a_one_model_config_of_its_own(tmp_path):
    cfg = study(tmp_path)
    subs = model_configs(cfg)
    assert list(subs) == ["small", "large"]
    for name, sub in subs.items():
        assert sub["model"] == cfg["models"][name]
        assert sub["results_dir"] == str(tmp_path / "r" / name)
        assert "models" not in sub and "use_models" not in sub
        assert list(sub["losses"]) == list(cfg["losses"])
        check_config(load_config([DEMO], {**sub, "models": None}))  # a valid one-model config


def test_a_model_config_has_the_settings_of_the_same_one_model_run(tmp_path):
    """The arm settings (rule params, fingerprint) of a study's model equal those of a one-model
    run of that model into the same folder: one code path, the same results."""
    cfg = study(tmp_path)
    sub = model_config(cfg, "small")
    one = load_config([DEMO], {"results_dir": sub["results_dir"], "model": cfg["models"]["small"]})
    for arm in ["baseline", *cfg["losses"]]:
        assert arm_settings(sub, arm) == arm_settings(one, arm)


def test_losses_can_be_restricted_to_some_models(tmp_path):
    cfg = study(tmp_path)
    cfg["losses"]["ssim"]["models"] = ["large"]
    arms = {m: d["arms"] for m, d in study_params(cfg)["models"].items()}
    assert arms == {"small": ["psnr", "lpips"], "large": ["psnr", "ssim", "lpips"]}
    assert "models" not in model_config(cfg, "large")["losses"]["ssim"]  # not in the arm's params
    cfg["use_models"] = ["large"]
    assert list(model_configs(cfg)) == ["large"]
    assert list(study_params(cfg)["models"]) == ["large"]


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"use_models": ["medium"]}, "use_models: ['medium'] not defined under models"),
        ({"losses": {"ssim": {"models": ["tiny"]}}}, "losses.ssim.models: ['tiny'] not defined under models"),
        ({"models": {"small": {"kind": "taesd"}}}, "models.small.encoder: required for model.kind 'taesd'"),
    ],
)
def test_study_errors_name_the_key(tmp_path, change, fragment):
    cfg = study(tmp_path)
    for key, value in change.items():
        if key == "losses":
            cfg["losses"]["ssim"].update(value["ssim"])
        elif key == "models":
            cfg["models"]["small"] = load_config([DEMO], {"model": value["small"]})["model"]
        else:
            cfg[key] = value
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        check_config(cfg)


def test_study_keys_need_a_study(tmp_path):
    cfg = load_config([DEMO], {"results_dir": str(tmp_path)})
    cfg["losses"]["psnr"]["models"] = ["small"]
    with pytest.raises(ConfigError, match=r"losses\.psnr\.models: only with `models`"):
        check_config(cfg)


def test_model_names_are_checked_by_the_schema(tmp_path):
    with pytest.raises(ConfigError, match="models"):
        study(tmp_path, models={"Big-One": {"kind": "synthetic_kl"}})


def test_dry_run_plans_every_model_and_the_comparison(tmp_path, demo_data):
    """Each model plans the one-model jobs of its own arms (rules named <model>_<rule>), and one
    comparison job follows them."""
    cfg = write_config(
        tmp_path / "study.yaml", tmp_path / "r", demo_data,
        models={"small": {"kind": "synthetic_kl", "seed": 1}, "large": {"kind": "synthetic_kl", "seed": 2}},
        losses={"ssim": {"models": ["large"]}},
    )
    proc = snakemake(cfg, "-n", timeout=300)
    jobs = chunk_stats(proc.stdout)
    one = chunk_stats(snakemake(write_config(tmp_path / "one.yaml", tmp_path / "one", demo_data,
                                           model={"kind": "synthetic_kl", "seed": 1}), "-n", timeout=300).stdout)
    assert jobs["compare_models"] == 1 and jobs["all"] == 1
    for rule, count in one.items():
        if rule in ("all", "total"):
            continue
        assert jobs[f"large_{rule}"] == count  # every arm
        if rule.startswith(("optimize_", "evaluate_dataset", "build_dataset", "record_settings")):
            assert jobs[f"small_{rule}"] == count * 3 // 4  # no ssim arm: 3 of 4 arms
    assert yaml.safe_load(cfg.read_text())["models"]  # the file itself names the models


def test_progress_of_a_study_has_a_table_per_model(tmp_path, demo_data, capsys):
    from latentopt.workflow import progress

    cfg = write_config(tmp_path / "study.yaml", tmp_path / "r", demo_data,
                       models={"small": {"kind": "synthetic_kl", "seed": 1}, "large": {"kind": "synthetic_kl", "seed": 2}},
                       losses={"ssim": {"models": ["large"]}})
    progress.main(["--configfile", str(REPO / "demo" / "config.yaml"), "--configfile", str(cfg)])
    out = capsys.readouterr().out
    tables = dict(part.split(" ==\n", 1) for part in out.split("== ")[1:])
    assert set(tables) == {"small", "large"}  # the file's order (safe_dump sorts its keys)
    small, large = tables["small"], tables["large"]
    assert "ssim" not in small and "ssim" in large
    n = sum(1 for _ in demo_data.rglob("*.jpg")) + sum(1 for _ in demo_data.rglob("*.png"))
    for table in (small, large):
        row = next(line for line in table.splitlines() if line.startswith("baseline")).split()
        assert row[1:4] == ["0", "0", str(n)]  # nothing done yet: every image left


def test_the_taef2_study_example_plans_both_models(bsds_root, taef2_dir, tmp_path):
    """demo/study_taef2.yaml (needs ../shared): TAEF2 and the demo autoencoder, every arm each."""
    cfg = yaml.safe_load((REPO / "demo" / "study_taef2.yaml").read_text())
    cfg["results_dir"], cfg["data"]["root"] = str(tmp_path / "r"), str(bsds_root)
    for key in ("encoder", "decoder"):
        cfg["models"]["taef2"][key] = str(taef2_dir / Path(cfg["models"]["taef2"][key]).name)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = snakemake(tmp_path / "study.yaml", "-n", timeout=300)
    jobs = chunk_stats(out.stdout)
    assert jobs["compare_models"] == 1 and jobs["demo_train_demo_model"] == 1 and "taef2_train_demo_model" not in jobs
    for model in ("taef2", "demo"):
        assert jobs[f"{model}_build_dataset"] == 6  # baseline, psnr-lr0.02, psnr-lr0.05, ssim, lpips, psnr_gf


def test_the_banner_of_a_study_names_each_model_with_its_own_part(tmp_path):
    from latentopt.workflow.config import study_synthetic_parts

    cfg = study(tmp_path)
    parts = study_synthetic_parts(model_configs(cfg))
    assert [p.split(":")[0] for p in parts if p.startswith(("small", "large"))] == ["small", "large"]
    assert sum("LPIPS" in p for p in parts) == 1 and sum("FID" in p for p in parts) == 1  # once, not per model


@pytest.mark.slow
def test_a_study_runs_end_to_end_and_then_has_nothing_to_do(tmp_path, demo_data):
    """Two demo autoencoders of different capacity, a 2-value lr sweep and the gradient-free
    method: each model's own tree and report, the study's analysis, report and figures; a second
    run has nothing to do."""
    cfg = write_config(
        tmp_path / "study.yaml", tmp_path / "r", demo_data,
        models={"small": {"kind": "demo_trained", "train_steps": 30, "widths": [8, 12, 16]},
                "large": {"kind": "demo_trained", "train_steps": 30}},
        data={"limit_per_split": 2},
        losses={"psnr": {"loss": {"name": "psnr"}, "lr": [0.05, 0.1], "iterations": 4},
                "psnr_gf": {"loss": {"name": "psnr"}, "method": "gradient_free", "iterations": 4, "stopping": {"rule": "none"}}},
        use_losses=["psnr", "psnr_gf"], quality_gate={"images_per_loss": 0},
        run={"images_per_job": 2, "batch_size": 1}, evaluation={"fid": False, "n_boot": 50},
    )
    snakemake(cfg, timeout=1800)
    results = tmp_path / "r"
    for m in ("small", "large"):
        assert (results / m / "FULL_BSDS500_COMPARISON_REPORT.md").is_file()
    analysis = json.loads((results / "study" / "study_analysis.json").read_text())
    assert set(analysis["gains"]) == {"small", "large"}
    assert set(analysis["gains"]["small"]) == {"psnr-lr0.05", "psnr-lr0.1", "psnr_gf"}
    assert analysis["metadata"]["models"]["small"]["decoder_parameters"] < analysis["metadata"]["models"]["large"]["decoder_parameters"]
    assert set(analysis["sweeps"]["small"]) == {"psnr"} and analysis["methods"]["small"]  # gf vs the backprop psnr arms
    report = (results / "study" / "study_report.md").read_text()
    assert report.index("NOT RESEARCH RESULTS") < report.index("## Verdicts") < report.index("### Which autoencoder?")
    for heading in ("### Which autoencoder?", "### Which settings?", "### Which method?", "## Appendix"):
        assert heading in report
    assert (results / "study" / "figures" / "study_frontier.png").stat().st_size > 10_000
    assert (results / "study" / "figures" / "study_examples.png").stat().st_size > 10_000
    # the study-wide explorer: every model's arms side by side, the banner of the study report
    explorer = (results / "study" / "IMAGE_EXPLORER.html").read_text()
    data = json.loads(explorer.split('id="explorer-data" type="application/json">', 1)[1].split("</script>", 1)[0])
    arms = ("baseline", "psnr-lr0.05", "psnr-lr0.1", "psnr_gf")
    assert sorted(data["arms"]) == sorted(f"{m}/{a}" for a in arms for m in ("small", "large"))
    assert all(data["arms"][i].split("/")[1] == data["arms"][i + 1].split("/")[1] for i in range(0, 8, 2))  # side by side
    assert data["baselines"]["large/psnr_gf"] == "large/baseline" and data["synthetic"] and len(data["rows"]) == 6
    for r in data["rows"]:  # every panel's PNG is where the page looks for it
        for view in ("original", *data["arms"]):
            png = data["views"][view].replace("{split}", r["split"]).replace("{image_id}", r["image_id"])
            assert (results / "study" / png).is_file(), png
    assert "Nothing to be done" in snakemake(cfg, "-n").stdout
