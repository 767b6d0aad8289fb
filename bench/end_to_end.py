"""End-to-end section: the real pipeline (every loss arm + baseline + evaluation + report) on N
images of one split, timed per stage.

Two ``snakemake`` commands on this repo's Snakefile in a temporary results_dir: first the per-image
records of every arm (prepare + optimize jobs), then ``all`` (datasets, evaluation, FID features,
summary, report). From the run it reports:

* per-rule wall times (Snakemake benchmark TSVs) and each optimize job's wall-time split
  (``logs/optimize/<arm>/<chunk>.stages.json``, :mod:`latentopt.core.stage_times`);
* **orchestration efficiency** = sum of the loss arms' per-image ``optimization_time_s`` / wall time
  of both commands (and of the optimize phase alone);
* **MFU in the Adam loop** = sum over records of iterations x decoder FLOPs per image-iteration
  (counted, forward + backward with frozen weights, loss excluded) / sum of optimization_time_s /
  the GPU's dense peak at ``run.precision`` (CUDA, known GPU, full-size SD-VAE only);
* a projection of the 500-image experiment from these measured parts (how: see ``project``).
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BSDS_IMAGES, REPO, log, partial_path, write_json
from .models import choose_model, load_images
from .orchestration import _read_tsv_s, random_sd_vae_model

FULL_EXPERIMENT_IMAGES = 500


def _data(n: int, workdir: Path, split: str) -> tuple[dict, str]:
    """data.* overrides: N real BSDS500 images of ``split`` (in place), else skimage crops."""
    if (BSDS_IMAGES / split).is_dir():
        return {"root": str(BSDS_IMAGES.parents[2]), "splits": [split], "limit_per_split": n}, f"BSDS500 {split} split"
    import numpy as np
    from PIL import Image

    root = workdir / "e2e_data" / split
    root.mkdir(parents=True, exist_ok=True)
    imgs, _ = load_images(n, 321, 481, "skimage")
    for i, arr in enumerate(imgs):
        Image.fromarray(np.asarray(arr)).save(root / f"img{i:04d}.png")
    return {"root": str(root.parent), "splits": [split], "limit_per_split": n}, "skimage crops 481x321 (BSDS500 absent)"


def build_overrides(args, device_type: str, workdir: Path, results: Path) -> tuple[dict, dict]:
    """The pipeline config overrides of the end-to-end run, and a description."""
    data, source = _data(args.e2e_images, workdir, args.e2e_split)
    over: dict[str, Any] = {
        "results_dir": str(results), "data": data, "allow_synthetic": True,
        "metric_networks": {"lpips_random_trunk": True, "inception_synthetic": True},
        "losses": {"lpips": {"loss": {"name": "lpips", "net": "alex", "random_trunk": True}}},
        "run": {"device": "cuda" if device_type == "cuda" else "cpu", "images_per_job": args.e2e_images_per_job,
                "batch_size": args.e2e_batch_size, "precision": args.e2e_precision,
                "final_precision_steps": args.e2e_final_steps,
                "compile": {"enabled": args.e2e_compile, "mode": args.e2e_compile_mode,
                            "cache_dir": args.inductor_cache}},
    }
    if device_type == "cuda":
        over["model"] = random_sd_vae_model(workdir)
        model = "SD-VAE architecture (random weights) from a local diffusers folder, 480x320 crops"
    else:
        _, spec = choose_model(args.model if args.model != "sd_vae" else "auto", "cpu")
        over["model"] = spec if spec["kind"] != "synthetic_kl" else {"kind": "synthetic_kl", "seed": 0}
        crop = list(args.size or (48, 64))
        over["preprocess"] = {"crop_box": crop}
        model = f"{'TAEF2' if spec['kind'] == 'taesd' else spec['kind']}, centre crop {crop} (CPU check)"
    if args.e2e_iterations:
        for arm in ("psnr", "ssim", "lpips"):
            over["losses"].setdefault(arm, {})["iterations"] = args.e2e_iterations
    return over, {"images": source, "model": model}


def rule_times(results: Path) -> dict[str, float]:
    """Wall seconds per rule kind from Snakemake's benchmark files: optimize/<arm> summed over its
    chunks, the other rules by file name."""
    out: dict[str, float] = {}
    root = results / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        key = "/".join(rel.parts[:2]) if rel.parts[0] == "optimize" else str(rel.with_suffix(""))
        s = _read_tsv_s(tsv)
        if s is not None:
            out[key] = out.get(key, 0.0) + s
    return out


def job_stages(results: Path) -> list[dict]:
    return [{"job": str(p.relative_to(results / "logs" / "optimize")), **json.loads(p.read_text())}
            for p in sorted((results / "logs" / "optimize").rglob("*.stages.json"))]


def _records(results: Path, arms: list[str], split: str, ids: list[str]) -> list[dict]:
    from latentopt.workflow import layout

    return [json.loads(layout.per_image(results, arm, split, i, "json").read_text()) for arm in arms for i in ids]


def _snakemake(targets: list[str], cfg_files: list[Path], args, device_type: str, cwd: Path, timeout: float):
    from latentopt.devtools.snakemake_cli import snakemake_command

    extra = ["--nolock", "--retries", "0", *(["--resources", f"gpu={args.gpu_jobs}"] if device_type == "cuda" else []), "--quiet", "all"]
    cmd = snakemake_command(*extra, snakefile=REPO / "Snakefile", targets=targets, configfiles=cfg_files,
                            cores=args.snakemake_cores, script=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        rc, err = proc.returncode, (proc.stderr or proc.stdout)[-3000:] if proc.returncode else None
    except subprocess.TimeoutExpired:
        rc, err = None, f"snakemake exceeded {timeout:.0f} s"
    return time.perf_counter() - t0, rc, err


def run_end_to_end(args, device_type: str, result: dict, flops_per_image_iteration: float | None,
                   peak: dict | None) -> None:
    import yaml

    from latentopt.workflow import layout
    from latentopt.workflow.config import load_config
    from latentopt.workflow.plan import build_plan

    workdir = Path(args.e2e_dir) if args.e2e_dir else Path(tempfile.mkdtemp(prefix="latentopt_e2e_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "results"
    over, desc = build_overrides(args, device_type, workdir, results)
    cfg_file = workdir / "e2e.yaml"
    cfg_file.write_text(yaml.safe_dump(over, sort_keys=False))
    config = load_config([cfg_file])
    plan = build_plan(config)
    split = args.e2e_split
    ids = [e.image_id for e in plan.splits[split]]
    losses = [a for a in plan.arms if a != layout.BASELINE]
    per_image = [str(layout.chunk_manifest(results, arm, c.name)) for arm in plan.arms for c in plan.chunks if c.split == split]  # the jobs' outputs
    cfg_files = [REPO / "config.yaml", cfg_file]
    row: dict[str, Any] = {"description": desc, "n_images": len(ids), "arms": plan.arms, "split": split,
                           "run": config["run"], "iterations": {a: config["losses"][a]["iterations"] for a in losses},
                           "snakemake_cores": args.snakemake_cores,
                           "gpu_jobs": args.gpu_jobs if device_type == "cuda" else None,
                           "results_dir": str(results)}
    deadline = time.perf_counter() + args.e2e_timeout
    log(f"end to end: {len(ids)} images x {len(plan.arms)} arms ({desc['model']}), optimize phase")
    wall1, rc1, err1 = _snakemake(per_image, cfg_files, args, device_type, workdir, deadline - time.perf_counter())
    row["phases"] = {"optimize": {"wall_s": wall1, "returncode": rc1, "error": err1}}
    write_json({**result, "end_to_end_partial": row}, partial_path(args.out))
    if rc1 == 0:
        log(f"  optimize phase {wall1:.1f} s; evaluation + report")
        wall2, rc2, err2 = _snakemake([], cfg_files, args, device_type, workdir, max(1.0, deadline - time.perf_counter()))
        row["phases"]["evaluate_and_report"] = {"wall_s": wall2, "returncode": rc2, "error": err2}
        row["report_written"] = layout.report_file(results).is_file()
    row["rule_wall_s"] = rule_times(results)
    row["optimize_jobs"] = job_stages(results)
    if rc1 == 0:
        summarize(row, _records(results, losses, split, ids), flops_per_image_iteration, peak)
        row["projection_500"] = project(row, config)
    result["end_to_end"] = row
    if not args.keep_results and not args.e2e_dir:
        shutil.rmtree(workdir, ignore_errors=True)


def summarize(row: dict, records: list[dict], flops: float | None, peak: dict | None) -> None:
    """Efficiency, in-loop throughput and MFU from the loss arms' per-image records."""
    ok = [r for r in records if r["status"] == "ok"]
    opt_s = sum(r["optimization_time_s"] for r in ok)
    its = sum(r["iterations"] for r in ok)
    walls = {k: v["wall_s"] for k, v in row["phases"].items() if v.get("returncode") == 0}
    total = sum(walls.values())
    per_arm = {}
    for arm in row["arms"]:
        mine = [r for r in ok if r["arm"] == arm]
        if mine:
            t = sum(r["optimization_time_s"] for r in mine)
            n = sum(r["iterations"] for r in mine)
            per_arm[arm] = {"images_ok": len(mine), "iterations": n, "optimization_s": t,
                            "image_iterations_per_s": n / t if t > 0 else None,
                            "mean_iterations": n / len(mine)}
    jobs = row["optimize_jobs"]
    stage_sum: dict[str, float] = {}
    for j in jobs:
        for k, v in j["stages_s"].items():
            stage_sum[k] = stage_sum.get(k, 0.0) + v
    row.update(
        images_ok=len(ok), image_records=len(records), optimization_time_sum_s=opt_s,
        image_iterations=its, per_loss=per_arm,
        efficiency=opt_s / total if total and len(walls) == 2 else None,
        efficiency_optimize_phase=opt_s / walls["optimize"] if walls.get("optimize") else None,
        optimize_job_stage_sums_s=stage_sum,
        optimize_job_wall_sum_s=sum(j["wall_s"] for j in jobs),
        outside_adam_loop_per_job_s=(statistics.fmean(j["outside_adam_loop_s"] for j in jobs) if jobs else None),
        # > 1: jobs overlapped (one job's start-up while another computes)
        job_overlap=(sum(j["wall_s"] for j in jobs) / walls["optimize"]) if jobs and walls.get("optimize") else None,
    )
    precision = row["run"]["precision"]
    if flops and peak and opt_s > 0:
        achieved = its * flops / opt_s
        row["mfu_in_adam_loop"] = {"achieved_flops_per_s": achieved, "peak_key": precision,
                                   "mfu": achieved / peak[precision] if precision in peak else None,
                                   "mfu_vs_bf16_peak": achieved / peak["bf16"],
                                   "flops_per_image_iteration": flops,
                                   "note": "decoder forward+backward FLOPs (counted), loss FLOPs excluded"}
    else:
        row["mfu_in_adam_loop"] = None


FIXED_STAGES = ("python_start", "imports", "python_start_and_imports", "model_load", "cuda_driver_init",
                "cuda_context", "device_setup", "compile", "other")
PER_IMAGE_STAGES = ("image_reading", "encode", "exact_decodes", "metrics", "writes")


def project(row: dict, config: dict) -> dict:
    """The 500-image experiment from this run's measured parts, jobs run one after another (no
    credit for overlap; ``job_overlap`` shows what overlap achieved here):

      optimization  = sum over losses of 500 x (mean iterations per image measured here, capped by
                      nothing: early stopping as measured) / measured in-loop image-iterations/s
      per-job fixed = mean of FIXED_STAGES per optimize job x (arms x ceil(500 / images_per_job))
      per image     = sum of PER_IMAGE_STAGES / image records x 500 x arms
      rest          = (evaluate + report phase wall) x 500 / N  (assumed linear in images)
    """
    from latentopt.analysis.criteria import BSDS500_SPLIT_SIZES

    n = row["n_images"]
    jobs = row["optimize_jobs"]
    if not jobs or not row.get("per_loss"):
        return {"note": "not enough measured"}
    scale = FULL_EXPERIMENT_IMAGES / n
    opt = sum(FULL_EXPERIMENT_IMAGES * p["mean_iterations"] / p["image_iterations_per_s"]
              for arm, p in row["per_loss"].items() if p["image_iterations_per_s"])
    fixed = statistics.fmean(sum(j["stages_s"].get(k, 0.0) for k in FIXED_STAGES) for j in jobs)
    records = sum(j["images"] for j in jobs)
    per_image = sum(sum(j["stages_s"].get(k, 0.0) for k in PER_IMAGE_STAGES) for j in jobs) / max(1, records)
    ipj = config["run"]["images_per_job"]
    n_jobs = len(row["arms"]) * sum(math.ceil(s / ipj) for s in BSDS500_SPLIT_SIZES.values())
    rest = row["phases"].get("evaluate_and_report", {}).get("wall_s")
    total = opt + fixed * n_jobs + per_image * FULL_EXPERIMENT_IMAGES * len(row["arms"]) + (rest or 0.0) * scale
    return {"optimization_s": opt, "per_job_fixed_s": fixed, "optimize_jobs": n_jobs, "per_image_s": per_image,
            "evaluate_and_report_s": (rest or 0.0) * scale if rest is not None else None,
            "total_s": total, "total_min": total / 60,
            "efficiency": opt / total if total else None,
            "how": "measured parts of this run scaled to 500 images (BSDS500 train/val/test 200/100/200), jobs "
                   "serial (no overlap credit), evaluation/report linear in images; a projection, not a measurement"}


def format_end_to_end(row: dict) -> list[str]:
    lines = ["", f"End to end ({row['n_images']} images of {row['split']}, arms {', '.join(row['arms'])}; "
                 f"{row['description']['model']}; precision {row['run']['precision']}, "
                 f"compile {row['run']['compile']['enabled']}, batch {row['run']['batch_size']}, "
                 f"gpu jobs {row['gpu_jobs']})"]
    for name, ph in row["phases"].items():
        lines.append(f"  {name}: {ph['wall_s']:.1f} s" + (f" FAILED: {ph['error'][-300:]}" if ph.get("returncode") != 0 else ""))
    if row.get("rule_wall_s"):
        lines.append("  per rule (Snakemake benchmark, s): " + ", ".join(f"{k} {v:.1f}" for k, v in row["rule_wall_s"].items()))
    if row.get("optimize_job_stage_sums_s"):
        lines.append("  optimize jobs, summed stages (s): " + ", ".join(
            f"{k} {v:.1f}" for k, v in row["optimize_job_stage_sums_s"].items()))
        lines.append(f"  outside the Adam loop per job: {row['outside_adam_loop_per_job_s']:.1f} s; job overlap "
                     f"x{row['job_overlap']:.2f}")
    if row.get("optimization_time_sum_s") is not None:
        eff = row.get("efficiency")
        lines.append(f"  sum optimization {row['optimization_time_sum_s']:.1f} s; efficiency "
                     f"{eff:.3f}" if eff is not None else "  efficiency: -")
        lines.append(f"  optimize-phase efficiency {row['efficiency_optimize_phase']:.3f}; per loss img-it/s: " + ", ".join(
            f"{a} {p['image_iterations_per_s']:.2f} ({p['mean_iterations']:.0f} it/img)" for a, p in row["per_loss"].items()))
    mfu = row.get("mfu_in_adam_loop")
    if mfu and mfu.get("mfu") is not None:
        lines.append(f"  MFU in the Adam loop: {mfu['mfu']:.3f} of the {mfu['peak_key']} peak ({mfu['mfu_vs_bf16_peak']:.3f} of bf16)")
    pj = row.get("projection_500")
    if pj and pj.get("total_min") is not None:
        lines.append(f"  projection, 500 images (not a measurement): {pj['total_min']:.1f} min = optimization "
                     f"{pj['optimization_s'] / 60:.1f} + {pj['optimize_jobs']} jobs x {pj['per_job_fixed_s']:.1f} s + "
                     f"per image {pj['per_image_s']:.2f} s x records + evaluation/report "
                     f"{(pj['evaluate_and_report_s'] or 0) / 60:.1f} min; efficiency {pj['efficiency']:.2f}")
    return lines
