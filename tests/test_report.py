"""Tests for the comparison report (latentopt.report, latentopt.report.plots, the template).

A tiny fake results tree is built in tmp_path: 16x16 PNGs, per-image records and .pt files, and
per-image metric CSVs shaped like scoring.per_image_table's. The evaluation JSONs are then made
by summarize.summarize_all itself, so their shapes cannot drift from what the pipeline writes.
The metric values are constructed so that the right answers are known: the psnr arm is best on
PSNR/MSE/MAE, the lpips arm on both LPIPS and (deliberately, although it did not optimize it) on
SSIM, and one psnr image failed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from latentopt.workflow import layout
from latentopt import report
from latentopt.workflow.config import synthetic_parts, validate_config
from latentopt.analysis.summarize import summarize_all
from latentopt.workflow.analysis_settings import report_settings, summary_settings

N_IMAGES = 10
FAILED = ("test", "img03", "CUDA out of memory (test)")


def make_config(results: Path, *, synthetic: bool = True, fid: bool = True, arms=("psnr", "lpips"), random_nets: bool | None = None) -> dict:
    random_nets = synthetic if random_nets is None else random_nets
    losses = {
        "psnr": {"loss": {"name": "psnr"}, "iterations": 5},
        "lpips": {"loss": {"name": "lpips", "net": "alex", "random_trunk": random_nets}, "iterations": 5},
        "ssim": {"loss": {"name": "improved_ssim", "window_size": 7, "sigma": 1.5}, "iterations": 5},
    }
    cfg = {
        "results_dir": str(results),
        "experiment_id": "report_test",
        "model": {"kind": "synthetic_kl", "seed": 0} if synthetic else {"kind": "diffusers_kl", "source": "some/vae"},
        "allow_synthetic": synthetic,
        "metric_networks": {"lpips_random_trunk": random_nets, "inception_synthetic": random_nets},
        "losses": {a: losses[a] for a in arms},
        "evaluation": {"fid": fid, "n_boot": 10, "fid_n_boot": 10},  # schema minimum: fast
    }
    return validate_config(cfg)


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def build_tree(results: Path, config: dict, *, splits=("train", "test"), all_failed: str | None = None, fid: bool = True) -> dict:
    """Fake outputs of every stage before the report; returns the evaluation output paths."""
    rng = np.random.default_rng(0)
    datasets = ["baseline", *config["losses"]]
    ids = [(splits[i % len(splits)], f"img{i:02d}") for i in range(N_IMAGES)]
    # Per-dataset metric offsets: psnr arm +3 dB; lpips arm lowest LPIPS and highest SSIM.
    offsets = {
        "baseline": {"psnr": 0.0, "ssim": 0.00, "lpips_alex": 0.00, "lpips_vgg": 0.00},
        "psnr": {"psnr": 3.0, "ssim": 0.05, "lpips_alex": -0.02, "lpips_vgg": -0.01},
        "lpips": {"psnr": 1.0, "ssim": 0.10, "lpips_alex": -0.08, "lpips_vgg": -0.05},
        "ssim": {"psnr": 0.5, "ssim": 0.08, "lpips_alex": 0.01, "lpips_vgg": 0.01},
    }
    model = {"kind": config["model"]["kind"], "source": "fake VAE", "weights_sha256": "ab" * 32, "weight_files": {"/w/vae.safetensors": "cd" * 32}, "dtype": "float32", "device": "cpu"}
    tables, feats = [], {}
    base_psnr = rng.uniform(20, 30, N_IMAGES)
    for d in datasets:
        rows = []
        for k, (split, image_id) in enumerate(ids):
            failed = (d == all_failed) or (d == "psnr" and (split, image_id) == FAILED[:2])
            ref = (np.arange(16 * 16 * 3).reshape(16, 16, 3) * (k + 1) % 256).astype(np.uint8)
            _png(layout.original_png(results, split, image_id), ref)
            rec = {"image_id": image_id, "split": split, "arm": d, "status": "failed" if failed else "ok", "reason": FAILED[2] if failed else None, "model": model, "device": "cpu"}
            rec_path = layout.per_image(results, d, split, image_id, "json")
            rec_path.parent.mkdir(parents=True, exist_ok=True)
            rec_path.write_text(pd.Series(rec).to_json())
            row = {"dataset": d, "split": split, "image_id": image_id, "status": rec["status"], "reason": rec["reason"]}
            if not failed:
                noisy = np.clip(ref.astype(int) + rng.integers(-20, 20, ref.shape), 0, 255).astype(np.uint8)
                _png(layout.dataset_png_dir(results, d) / split / f"{image_id}.png", noisy)
                o = offsets[d]
                psnr = base_psnr[k] + o["psnr"] + rng.normal(0, 0.1)
                mse = 10 ** (-psnr / 10)
                row.update({"psnr": psnr, "ssim": 0.6 + o["ssim"] + rng.normal(0, 0.01), "mse": mse, "mae": np.sqrt(mse) * 0.8, "lpips_alex": 0.3 + o["lpips_alex"] + rng.normal(0, 0.005), "lpips_vgg": 0.35 + o["lpips_vgg"] + rng.normal(0, 0.005)})
                iters = 0 if d == "baseline" else 5 - (k % 2)
                row.update({"time_s": 0.05 if d == "baseline" else 1.0 + 0.1 * k, "optimization_time_s": 0.0, "iterations": iters, "converged_at": None if k % 2 == 0 else iters, "stop_reason": "max_iterations", "peak_memory_mb": 100.0, "device": "cpu", "batch_size": 2, "initial_psnr": base_psnr[k]})
                # batches of up to 2 images of one split (the unit of cost analysis)
                mates = [j for j, (s, _) in enumerate(ids) if s == split and j // (2 * len(splits)) == k // (2 * len(splits))]
                per_image_s = {"baseline": 0.05, "psnr": 1.0, "lpips": 3.0, "ssim": 1.2}[d] * (1 + 0.05 * (k % 3))
                row.update({"batch_id": f"{split}/{ids[mates[0]][1]}", "batch_images": len(mates), "batch_image_iterations": iters * len(mates), "batch_clock": "process_cpu_time", "batch_compute_s": per_image_s * len(mates), "batch_wall_s": 1.1 * per_image_s * len(mates)})
                curve = -np.linspace(20.0, 23.0 + 0.1 * k, iters + 1) if d == "psnr" else np.linspace(1.0, 0.6 - 0.01 * k, iters + 1)  # psnr loss = -PSNR
                history = [] if d == "baseline" else [float(v) for v in curve]
                torch.save({"loss_history": history, "status": "ok"}, layout.per_image(results, d, split, image_id, "pt"))
            rows.append(row)
        table = pd.DataFrame(rows)
        if d == "lpips" and "lpips" != all_failed:
            table.loc[1, "lpips_vgg"] = np.nan  # a missing value must be tolerated
        path = results / "evaluation_results" / "per_image" / f"{d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        tables.append(path)
        layout.dataset_file(results, d).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": 1, "metadata": {"created_at": "2026-01-01T00:00:00+0000", "n_images": N_IMAGES, "n_ok": int((table["status"] == "ok").sum()), "versions": {"torch": "0.0.fake"}}, "samples": []}, layout.dataset_file(results, d))
    features = []
    if fid:
        base = rng.normal(size=(N_IMAGES, 2048))
        for name, scale in [("original", 0.0), *[(d, {"baseline": 1.0, "psnr": 0.5, "lpips": 0.3, "ssim": 0.8}[d]) for d in datasets]]:
            keys = [f"{s}/{i}" for s, i in ids]
            f = results / "evaluation_results" / "features" / f"{name}.npz"
            f.parent.mkdir(parents=True, exist_ok=True)
            np.savez(f, keys=np.array(keys), features=base + scale * rng.normal(size=base.shape), calibrated=not config["metric_networks"]["inception_synthetic"])
            features.append(f)
    ev = results / "evaluation_results"
    outputs = {"cross": ev / "cross_evaluation_matrix.json", "stats": ev / "statistical_analysis.json", "performance": ev / "performance_summary.json", "table": ev / "per_image_metrics.csv"}
    summarize_all(summary_settings(config), tables, features, outputs)
    return outputs


def render(results: Path, config: dict, outputs: dict) -> str:
    """The main report followed by its appendix (issue 19 split them in two files)."""
    path = report.write_report(report_settings(config), cross=outputs["cross"], stats=outputs["stats"], performance=outputs["performance"], table_csv=outputs["table"], report=layout.report_file(results), log=lambda msg: None)
    return path.read_text() + "\n" + layout.report_appendix_file(results).read_text()


def md_table_after(text: str, heading: str) -> list[list[str]]:
    """Cells of the first Markdown table after ``heading`` (header row first)."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if set(line.replace("|", "").strip()) <= set(":-"):
            continue
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def column(rows: list[list[str]], name_start: str) -> dict[str, str]:
    idx = next(i for i, h in enumerate(rows[0]) if h.startswith(name_start))
    return {r[0]: r[idx] for r in rows[1:]}


VERDICT_NUMBER = r"([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
VERDICT_LINE = re.compile(rf"\*\*Use (\S+) for ([a-z -]+)\*\*: {VERDICT_NUMBER}(?: dB)? \[95 % CI {VERDICT_NUMBER}, {VERDICT_NUMBER}\] on (.+?) [↑↓] \(.*?\), n = (\d+), Holm p = {VERDICT_NUMBER}")
NO_SETTING_LINE = re.compile(rf"\*\*No setting shown better for ([a-z -]+)\*\* \(.*?\): the best arm, (\S+), is {VERDICT_NUMBER}(?: dB)? (?:\[95 % CI {VERDICT_NUMBER}, {VERDICT_NUMBER}\]|\(CI: n too small\)) on (.+?) [↑↓] \(.*?\), n = (\d+), Holm p = {VERDICT_NUMBER}")


def _printed(shown: str, value: float) -> bool:
    """Whether ``shown`` is ``value`` at the precision it is printed with."""
    mantissa = shown.split("e")[0]
    digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
    scale = 10 ** int(shown.split("e")[1]) if "e" in shown else 1
    return abs(float(shown) - value) <= 0.51 * 10 ** -digits * scale


def assert_verdict_rederives(text: str, stats: dict) -> None:
    """A verdict line quotes the JSON: "Use X for Y" and "No setting shown better for Y (...):
    the best arm, X, is ..." give the paired test of X against the baseline on the named metric
    (difference, CI, n, Holm-corrected p; "Use" only when p < 0.05), re-derived here from
    statistical_analysis.json's rows with no report code."""
    from latentopt.analysis.statistics import holm
    from latentopt.report.formatting import METRIC_LABELS

    m = VERDICT_LINE.search(text)
    if m:
        arm, _, d, lo, hi, label, n, p = m.groups()
    else:
        m = NO_SETTING_LINE.search(text)
        assert m, text
        _, arm, d, lo, hi, label, n, p = m.groups()
    used = text.lstrip("- ").startswith("**Use ")
    metric = {v: k for k, v in METRIC_LABELS.items()}[label]
    if metric == "fid":
        rows = stats["fid_differences"]["all"]
        row = next(r for r in rows if {r["a"], r["b"]} == {arm, "baseline"})
        ps = holm([max(r["p_boot"], 1 / r["n_boot"]) for r in rows])
        p_json, diff = ps[rows.index(row)], row["diff"]
    else:
        row = next(r for r in stats["tests"][metric]["all"] if {r["a"], r["b"]} == {arm, "baseline"})
        p_json, diff = row["p_wilcoxon_holm"], row["mean_diff"]
    sign = 1 if row["a"] == arm else -1
    assert _printed(d, sign * diff), (text, d, diff)
    if lo is None:  # "(CI: n too small)": the JSON has no interval
        assert row["ci95_low"] is None and row["ci95_high"] is None, text
    else:
        for shown, value in zip((lo, hi), sorted((sign * row["ci95_low"], sign * row["ci95_high"]))):
            assert _printed(shown, value), (text, shown, value)
    assert int(n) == row["n"] and _printed(p, p_json) and (p_json < 0.05) == used, (text, p, p_json)


@pytest.fixture(scope="module", autouse=True)
def low_dpi():
    """Small figures keep the suite fast; layout and content are the same at any DPI."""
    from latentopt.report import plots as figures

    saved, figures.DPI = figures.DPI, 50
    yield
    figures.DPI = saved


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("synthetic")
    # a random autoencoder but calibrated metric networks: every judgement is made (issue 19:
    # with random LPIPS/Inception networks none would be; see test_uncalibrated_* below)
    config = make_config(results, random_nets=False)
    outputs = build_tree(results, config)
    return results, config, render(results, config, outputs)


def test_banner_lists_synthetic_parts(synthetic_run):
    _, config, text = synthetic_run
    head = text[: text.index("## Contents")]
    assert "NOT RESEARCH RESULTS" in head
    for part in synthetic_parts(config):
        assert part in head


def test_best_per_column_and_optimized_flag(synthetic_run):
    _, _, text = synthetic_run
    rows = md_table_after(text, "## Headline results")
    bold = lambda cell: cell.startswith("**")  # noqa: E731
    for metric, winner in [("PSNR", "psnr"), ("MSE", "psnr"), ("MAE", "psnr"), ("SSIM", "lpips"), ("LPIPS-alex", "lpips"), ("LPIPS-vgg", "lpips"), ("FID", "lpips")]:
        col = column(rows, metric)
        assert [d for d, c in col.items() if bold(c)] == [winner], (metric, col)
    mark = report.OPTIMIZED_MARK
    assert column(rows, "PSNR")["psnr"].endswith(mark) and column(rows, "MSE")["psnr"].endswith(mark)
    assert column(rows, "LPIPS-alex")["lpips"].endswith(mark)
    # SSIM was not optimized by anyone; LPIPS-vgg not by the alex-LPIPS arm.
    assert not any(c.endswith(mark) for c in column(rows, "SSIM").values())
    assert not any(c.endswith(mark) for c in column(rows, "LPIPS-vgg").values())
    assert column(rows, "images ok") == {"baseline": "10/10", "psnr": "9/10", "lpips": "10/10"}


def test_referenced_figures_exist_and_are_png(synthetic_run):
    results, _, text = synthetic_run
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 8  # paired gains, cost, trade-off, examples per arm; distributions, convergence, correlations
    for link in links:
        assert not Path(link).is_absolute() and link.startswith(report.FIGURES_DIRNAME + "/")
        path = layout.report_file(results).parent / link
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100
            im.verify()


def test_verdicts_open_the_report_and_rederive_from_the_json(synthetic_run):
    """Right under the banner, before the method paragraph: a Verdicts heading and at most 5
    lines, every "Use X" line's numbers re-derived from statistical_analysis.json; with no
    FLOPs counted the cost is the measured time, named as such."""
    from latentopt.core.fileio import read_json

    results, _, text = synthetic_run
    main = text[: text.index("## Headline results")]
    assert main.index("NOT RESEARCH RESULTS") < main.index("## Verdicts") < main.index("## Contents") < main.index("The arms:")
    lines = [line for line in main[main.index("## Verdicts"): main.index("## Contents")].splitlines() if line.startswith("- ")]
    assert 1 <= len(lines) <= 5
    stats = read_json(results / "evaluation_results" / "statistical_analysis.json")
    perf = read_json(results / "evaluation_results" / "performance_summary.json")
    for line in lines:
        if not line.startswith("- **No verdict**"):
            assert_verdict_rederives(line, stats)
    used = [line for line in lines if line.startswith("- **Use ")]
    assert {VERDICT_LINE.search(line).group(2) for line in used} >= {"pixel fidelity", "perceptual quality"}
    for line in used:
        assert_verdict_rederives(line, stats)
        arm = VERDICT_LINE.search(line).group(1)
        compute = perf["datasets"][arm]["batch_costs"]["compute_per_image_s"]["mean"]
        base = perf["datasets"]["baseline"]["batch_costs"]["compute_per_image_s"]["mean"]
        assert f"cost not counted in FLOPs; measured {compute:.3g} s/image of process_cpu_time, {compute / base:.3g}× the baseline's" in line
    assert "the own objective of psnr" in next(line for line in used if "pixel fidelity" in line)


def test_figures_are_paired_per_arm_and_on_the_cost_axis_of_the_claims(synthetic_run):
    results, _, text = synthetic_run
    main = text[: text.index("Appendix: [")]
    assert "report_figures/paired_gains.png" in main and "report_figures/distributions.png" not in main
    assert "report_figures/examples_psnr.png" in main and "report_figures/examples_lpips.png" in main
    assert "### psnr: ranked by its gain in PSNR (dB)" in main and "### lpips: ranked by its gain in LPIPS-vgg" in main
    assert "The figure's axis: measured compute per image on the device clock (process_cpu_time), one dot per batch; the work was not counted" in main


def test_recommendations_name_the_best_arm(synthetic_run):
    _, _, text = synthetic_run
    recs = text[text.index("## Recommendations"): text.index("## Success criteria")]
    # decided on held-out metrics, each named: LPIPS-vgg (lpips optimized LPIPS-alex); MAE is a
    # declared near-monotone relative of PSNR/MSE (issue 19), so pixel fidelity rests on PSNR,
    # marked as the psnr arm's own objective
    assert "For pixel fidelity, use **psnr**: best PSNR (dB) among the losses" in recs
    assert "evidence metric: PSNR (dB), own objective of psnr" in recs
    assert "For perceptual quality, use **lpips**: best LPIPS-vgg among the losses" in recs
    assert "For structural similarity, use **lpips**" in recs
    assert "n = 9" in recs and "Holm p = " in recs


def test_failed_images_listed(synthetic_run):
    _, _, text = synthetic_run
    rows = md_table_after(text, "## Failed images")
    assert rows[1:] == [["psnr", *FAILED]]
    assert "1 failure(s) over all datasets, 1 distinct image(s)" in text


def test_statistics_sections_present(synthetic_run):
    _, _, text = synthetic_run
    sig = md_table_after(text, "### PSNR (dB) ↑")
    assert sig[0] == ["row − column", "baseline", "psnr", "lpips"]
    assert sig[2][1].startswith("**+3.")  # psnr − baseline ≈ +3 dB, significant -> bold
    assert "FID bias at small N" in text and "re-centred" in text
    assert report.docstring_section(report.module_docstring("metrics.fid"), "FID confidence interval") in text
    assert report.module_docstring("metrics.image_metrics") in text  # definitions quoted, not restated
    crit = md_table_after(text, "## Success criteria")
    assert [r[0] for r in crit[1:]] == ["psnr", "lpips"] and all(r[-1] in ("PASS", "not met") for r in crit[1:])
    assert "`" + "ab" * 32 + "`" in text and "cd" * 32 in text  # model weight hashes
    assert "torch 0.0.fake" in text  # build-time versions differing from report time
    assert "```yaml" in text and "experiment_id: report_test" in text


def test_no_banner_without_synthetic_parts(tmp_path):
    config = make_config(tmp_path, synthetic=False, fid=False)
    assert synthetic_parts(config) == []
    text = render(tmp_path, config, build_tree(tmp_path, config, fid=False))
    assert "NOT RESEARCH RESULTS" not in text and "UNCALIBRATED" not in text
    assert "FID and KID were not computed" in text
    rows = md_table_after(text, "## Headline results")
    assert not any(h.startswith("FID") for h in rows[0])


def test_all_failed_arm_single_split(tmp_path):
    config = make_config(tmp_path, arms=("psnr", "ssim"), fid=False)
    text = render(tmp_path, config, build_tree(tmp_path, config, splits=("test",), all_failed="ssim", fid=False))
    rows = md_table_after(text, "## Headline results")
    assert column(rows, "PSNR")["ssim"] == "n/a" and column(rows, "images ok")["ssim"] == "0/10"
    assert "Only one split (`test`)" in text
    assert "No paired tests available" in text
    failed = md_table_after(text, "## Failed images")
    assert sum(r[0] == "ssim" for r in failed[1:]) == N_IMAGES
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (tmp_path / link).is_file()


def test_optimized_metrics_rules():
    cfg = {"metric_networks": {"lpips_random_trunk": False}}
    om = report.optimized_metrics
    assert om({"name": "psnr"}, cfg) == {"psnr", "mse"}
    assert om({"name": "improved_ssim", "window_size": 7, "sigma": 1.5}, cfg) == set()
    assert om({"name": "improved_ssim", "window_size": 11, "sigma": 1.5}, cfg) == {"ssim"}
    assert om({"name": "lpips", "net": "vgg"}, cfg) == {"lpips_vgg"}
    assert om({"name": "lpips", "net": "alex", "random_trunk": True}, cfg) == set()
    weighted = {"name": "weighted", "terms": [{"name": "l1", "weight": 1.0}, {"name": "lpips", "net": "alex", "weight": 0.1}, {"name": "mse", "weight": 0}]}
    assert om(weighted, cfg) == {"mae", "lpips_alex"}


def test_relative_loss_curves_pad_and_skip():
    from latentopt.report.plots import relative_loss_curves

    rel = relative_loss_curves([[2.0, 1.0], [-10.0, -11.0, -12.0], [0.0, 1.0], []])
    np.testing.assert_allclose(rel, [[0.0, -0.5, -0.5], [0.0, -0.1, -0.2]])


def test_small_split_cells_and_report_consistency(synthetic_run):
    """Per-split cells below the minimum n say so (no number, no bold); the criteria table and
    the recommendations agree on which losses meet every criterion; every test family is listed
    with its smallest attainable p."""
    _, _, text = synthetic_run
    split = md_table_after(text, "### Split `test`")
    psnr_row = next(r for r in split[1:] if r[0] == "psnr")  # 4 of its 5 test images succeeded
    assert psnr_row[1] == "4/5"
    # issue 19: the mean is shown, labelled "CI: n too small", never bold
    assert all("(CI: n too small, n = 4 < 5)" in c and not c.startswith("**") for c in psnr_row[2:]), psnr_row
    crit = md_table_after(text, "## Success criteria")
    passing = sorted(r[0] for r in crit[1:] if r[-1] == "PASS")
    recs = text[text.index("## Recommendations"): text.index("## Success criteria")]
    line = next(ln for ln in recs.splitlines() if "meeting every success criterion" in ln)
    assert line.split(": ", 1)[1].split(";")[0].rstrip(".") == (", ".join(passing) or "none")
    families = md_table_after(text, "### Test families")
    assert {r[1] for r in families[1:]} == {"all", "train", "test"}
    assert all(r[6].startswith("**no**") for r in families[1:] if r[1] == "test")


def test_per_image_correlation_figure_labels_uncalibrated_metrics(tmp_path, monkeypatch):
    """issue 19 (TAEF2 run): the per-image Spearman figure named "LPIPS-alex gain" without the
    "(uncalibrated)" every other figure and table gives a random-trunk metric; a calibrated run
    keeps the plain label."""
    from latentopt.report import figures as FG

    def labels_for(random_nets: bool, where: Path) -> dict:
        seen = {}
        real = FG.F.spearman_heatmaps
        monkeypatch.setattr(FG.F, "spearman_heatmaps", lambda corr, labels, path, **kw: seen.update(labels) or real(corr, labels, path, **kw))
        config = make_config(where, random_nets=random_nets)
        render(where, config, build_tree(where, config))
        monkeypatch.setattr(FG.F, "spearman_heatmaps", real)
        return seen

    random = labels_for(True, tmp_path / "random")
    assert random["lpips_alex_improvement"] == "LPIPS-alex gain (uncalibrated)" and random["psnr_improvement"] == "PSNR (dB) gain"
    assert labels_for(False, tmp_path / "calibrated")["lpips_alex_improvement"] == "LPIPS-alex gain"


def test_main_report_of_a_demo_sized_run_fits_in_250_lines(tmp_path):
    """issue 19 "Done when": the main report (banner, headline, recommendations, criteria, key
    figures) stays <= 250 lines for a demo-shaped run: the demo's three losses, random metric
    networks, three splits, a failed image; everything else is in the appendix."""
    config = make_config(tmp_path, arms=("psnr", "ssim", "lpips"), random_nets=True)
    outputs = build_tree(tmp_path, config, splits=("train", "val", "test"), all_failed=None)
    report.write_report(report_settings(config), cross=outputs["cross"], stats=outputs["stats"], performance=outputs["performance"], table_csv=outputs["table"], report=layout.report_file(tmp_path), log=lambda msg: None)
    main = layout.report_file(tmp_path).read_text().splitlines()
    appendix = layout.report_appendix_file(tmp_path).read_text()
    assert len(main) <= 250, len(main)
    assert "## Headline results" in "\n".join(main) and "## Results per split" in appendix


def test_cost_figure_uses_counted_work_when_every_dataset_has_it():
    """The cost figure's axis is the counted TFLOP per image where performance_summary.json has it
    for every dataset (the axis the cost claims use), the measured compute per batch otherwise."""
    from latentopt.report.figures import cost_figure_data

    df = pd.DataFrame({"dataset": ["baseline", "psnr", "psnr"], "status": ["ok"] * 3, "tflop": [0.002, 0.06, 0.07]})
    timed = {"batch_costs": {"clock": ["cuda_events"], "per_image_values": [0.1, 0.2], "compute_per_image_s": {"mean": 0.15, "ci95_low": 0.1, "ci95_high": 0.2}}}
    counted = {"baseline": {**timed, "counted_work": {"tflop_per_image": {"mean": 0.002, "ci95_low": 0.002, "ci95_high": 0.002}, "counter": "FlopCounterMode"}},
               "psnr": {**timed, "counted_work": {"tflop_per_image": {"mean": 0.065, "ci95_low": 0.06, "ci95_high": 0.07}, "counter": "FlopCounterMode", "per_image_values": [0.06, 0.07]}}}
    c = cost_figure_data({"datasets": counted}, df, ["baseline", "psnr"])
    assert c["axis"].startswith("counted work per image (TFLOP; counter: FlopCounterMode)")
    assert c["values"] == {"baseline": [0.002], "psnr": [0.06, 0.07]} and c["means"]["psnr"] == (0.065, 0.06, 0.07)
    del counted["baseline"]["counted_work"]  # one dataset not counted: no mixed axis
    t = cost_figure_data({"datasets": counted}, df, ["baseline", "psnr"])
    assert t["axis"].startswith("measured compute per image on the device clock (cuda_events)") and t["values"]["psnr"] == [0.1, 0.2]
