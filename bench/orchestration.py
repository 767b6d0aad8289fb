"""Orchestration section: the real Snakemake pipeline in a temporary results_dir; efficiency =
sum of per-image optimization_time_s / wall time, and a fitted per-job overhead model."""

from __future__ import annotations

import copy
import json
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BSDS_IMAGES, REPO, _loadavg, _merge, log, partial_path, write_json
from .models import SD_VAE_SPEC, choose_model, load_images

def random_sd_vae_model(workdir: Path) -> dict:
    """The pipeline's ``model`` config of a diffusers folder holding the SD-VAE architecture with
    random weights (written once under ``workdir``), so the pipeline loads a full-size model from
    disk exactly as it loads the real one."""
    from latentopt.models.autoencoders import load_autoencoder

    folder = workdir / "sd_vae_random"
    if not folder.is_dir():
        load_autoencoder(SD_VAE_SPEC).model.save_pretrained(str(folder))
    return {"kind": "diffusers_kl", "source": str(folder), "subfolder": None}


def _orch_dataset(name: str, args, mode: dict, device_type: str, workdir: Path) -> dict:
    """The config overrides for one orchestration data set."""
    from latentopt.data.demo_data import write_demo_data

    if name == "demo":
        root = workdir / "demo_data"
        if not root.is_dir():
            write_demo_data(root)
        over: dict[str, Any] = {"data": {"root": str(root)}}
        if mode["orch_splits"]:
            over["data"]["splits"] = list(mode["orch_splits"])
        files = [REPO / "config.yaml", REPO / "demo" / "config.yaml"]
        label = "demo (demo/config.yaml: synthetic KL, 8 small skimage crops)"
        if mode["orch_splits"]:
            label += f", splits {mode['orch_splits']}"
        return {"name": "demo", "label": label, "configfiles": files, "overrides": over}
    n = args.n_images or mode["n_images"]
    per_split = math.ceil(n / 3)
    over = {"allow_synthetic": True, "metric_networks": {"lpips_random_trunk": True, "inception_synthetic": True},
            "data": {"limit_per_split": per_split}}
    if BSDS_IMAGES.is_dir():
        over["data"]["root"] = str(BSDS_IMAGES.parents[2])
        source = "BSDS500"
    else:
        import numpy as np
        from PIL import Image

        root = workdir / "n_images_data"
        imgs, _ = load_images(3 * per_split, 321, 481, "skimage")
        for i, arr in enumerate(imgs):
            split = ("train", "val", "test")[i % 3]
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(arr)).save(root / split / f"img{i:04d}.png")
        over["data"]["root"] = str(root)
        source = "skimage crops 481x321 (BSDS500 absent)"
    if device_type == "cuda":
        over["model"] = random_sd_vae_model(workdir)
        model = "SD-VAE architecture, random weights, loaded from a local diffusers folder"
    else:
        over["preprocess"] = {"crop_box": list(args.size or mode["size_cpu"])}
        _, spec = choose_model(args.model if args.model != "sd_vae" else "auto", "cpu")
        over["model"] = {k: v for k, v in spec.items()} if spec["kind"] != "synthetic_kl" else {"kind": "synthetic_kl", "seed": 0}
        model = spec["kind"] if spec["kind"] != "taesd" else "TAEF2"
        model += f", centre crop {over['preprocess']['crop_box']}"
    for arm in ("lpips",):  # LPIPS trunk weights are not needed for timing
        over.setdefault("losses", {})[arm] = {"loss": {"name": "lpips", "net": "alex", "random_trunk": True}}
    return {"name": f"n_images_{3 * per_split}", "label": f"{3 * per_split} images ({source}; {model})",
            "configfiles": [REPO / "config.yaml"], "overrides": over}


def _read_tsv_s(path: Path) -> float | None:
    try:
        lines = path.read_text().splitlines()
        return float(lines[1].split("\t")[0])
    except (OSError, IndexError, ValueError):
        return None


def run_orchestration_once(ds: dict, ipj: int, args, mode: dict, device_type: str, workdir: Path,
                           repeat: int = 0) -> dict:
    import yaml

    from latentopt.devtools.snakemake_cli import snakemake_command
    from latentopt.workflow import layout
    from latentopt.workflow.config import validate_config
    from latentopt.workflow.plan import build_plan

    results = workdir / f"{ds['name']}_ipj{ipj}_r{repeat}"
    over = copy.deepcopy(ds["overrides"])
    run = {"images_per_job": ipj, "device": "cuda" if device_type == "cuda" else "cpu"}
    if args.orch_precision:
        run["precision"] = args.orch_precision
    if args.orch_batch_size:
        run["batch_size"] = args.orch_batch_size
    # no quality gate: job grouping and ordering as in the runs measured before it existed
    _merge(over, {"results_dir": str(results), "run": run, "quality_gate": {"images_per_loss": 0}})
    losses = args.orch_losses or mode["orch_losses"]
    if losses:
        over["use_losses"] = list(losses)
    config: dict = {}
    for f in ds["configfiles"]:
        _merge(config, yaml.safe_load(Path(f).read_text()))
    _merge(config, over)
    its = args.orch_iterations or mode["orch_iterations"]
    if its:
        for arm in config["losses"]:
            over.setdefault("losses", {}).setdefault(arm, {})["iterations"] = its
        _merge(config, over)
    cfg_file = workdir / f"{ds['name']}_ipj{ipj}_r{repeat}.yaml"
    cfg_file.write_text(yaml.safe_dump(over, sort_keys=False))
    validate_config(config)
    plan = build_plan(config)
    arms = [a for a in plan.arms if a != layout.BASELINE] if not args.orch_baseline else plan.arms
    targets = [str(layout.chunk_manifest(results, arm, c.name)) for arm in arms for c in plan.chunks]  # the jobs' outputs
    snakefile = Path(args.snakefile) if args.snakefile else REPO / "Snakefile"
    extra = ["--nolock", "--retries", "0", *(["--resources", f"gpu={args.gpu_jobs}"] if device_type == "cuda" else []), "--quiet", "all"]
    cmd = snakemake_command(*extra, snakefile=snakefile, targets=targets, configfiles=[*ds["configfiles"], cfg_file],
                            cores=args.snakemake_cores, script=True)
    run_dir = workdir / f"wd_{ds['name']}_ipj{ipj}_r{repeat}"
    run_dir.mkdir(exist_ok=True)
    log(f"orchestration: {ds['name']} images_per_job={ipj}: {len(plan.chunks)} chunks x {len(arms)} arm(s)")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, timeout=args.snakemake_timeout)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"data": ds["name"], "images_per_job": ipj, "repeat": repeat, "arms": arms,
                           "gpu_jobs": args.gpu_jobs if device_type == "cuda" else None,
                           "n_images": plan.n_images, "loadavg_before": _loadavg(),
                           "pipeline": {"model": config["model"]["kind"], "precision": config["run"]["precision"],
                                        "batch_size": config["run"]["batch_size"],
                                        "iterations": {a: config["losses"][a]["iterations"] for a in arms}},
                           "wall_s": wall, "returncode": proc.returncode,
                           "n_prepare_jobs": len(plan.chunks), "n_optimize_jobs": len(plan.chunks) * len(arms)}
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout)[-3000:]
        return row
    opt_sum, n_ok, jobs = 0.0, 0, []
    for arm in arms:
        for chunk in plan.chunks:
            job_opt = 0.0
            for image_id in chunk.image_ids:
                rec = json.loads(layout.per_image(results, arm, chunk.split, image_id, "json").read_text())
                if rec["status"] == "ok":
                    n_ok += 1
                job_opt += float(rec.get("optimization_time_s") or 0.0)
            opt_sum += job_opt
            s = _read_tsv_s(results / "benchmarks" / "optimize" / arm / f"{chunk.name}.tsv")
            jobs.append({"arm": arm, "chunk": chunk.name, "images": len(chunk.image_ids), "job_s": s,
                         "optimization_s": job_opt})
    job_sum = sum(j["job_s"] for j in jobs if j["job_s"] is not None)
    row.update(
        images_ok=n_ok, image_records=len(arms) * plan.n_images,
        optimization_time_sum_s=opt_sum, optimize_job_time_sum_s=job_sum,
        efficiency=opt_sum / wall,
        overhead_per_optimize_job_s=(job_sum - opt_sum) / max(1, len(jobs)),
        driver_and_prepare_s=wall - job_sum,
        jobs=jobs,
    )
    if not args.keep_results:
        shutil.rmtree(results, ignore_errors=True)
    return row


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares y = a + b x with a, b >= 0 (b = 0 when x does not vary or the fit says b < 0,
    a = 0 when the fit says a < 0): timing noise must not produce negative overheads."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    if len(set(xs)) < 2:
        return max(0.0, my), 0.0
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    if b < 0:
        return max(0.0, my), 0.0
    a = my - b * mx
    if a < 0:
        b = max(0.0, sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs))
        a = 0.0
    return a, b


def overhead_model(runs: list[dict]) -> dict | None:
    """Per-job start-up a, per-image in-job extra b (encode, metrics, writing), driver d and per
    prepare-job p, fitted on the measured runs (sequential jobs: --cores 1)."""
    ok = [r for r in runs if r.get("returncode") == 0]
    if not ok:
        return None
    jobs = [j for r in ok for j in r["jobs"] if j["job_s"] is not None]
    a, b = _fit([j["images"] for j in jobs], [j["job_s"] - j["optimization_s"] for j in jobs])
    d, p = _fit([r["n_prepare_jobs"] for r in ok], [r["driver_and_prepare_s"] for r in ok])
    return {"optimize_job_startup_s": a, "per_image_in_job_extra_s": b, "driver_s": d, "per_prepare_job_s": p,
            "fitted_on": sorted({r["data"] for r in ok}),
            "model": "wall = driver_s + per_prepare_job_s*prepare_jobs + optimize_job_startup_s*optimize_jobs"
                     " + per_image_in_job_extra_s*image_records + sum(optimization_time_s)"}


def run_orchestration(args, mode: dict, device_type: str, result: dict) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="latentopt_bench_"))
    runs, sets, errors = [], [], []
    try:
        names = args.orch_sets or mode["orch_sets"]
        for name in names:
            ds = _orch_dataset(name, args, mode, device_type, workdir)
            sets.append({"name": ds["name"], "label": ds["label"]})
            values = list(args.images_per_job or mode["images_per_job"])
            # repeats alternate the order, so a drift of the machine's load hits every value alike
            order = [(rep, ipj) for rep in range(args.orch_repeats)
                     for ipj in (values if rep % 2 == 0 else values[::-1])]
            for rep, ipj in order:
                try:
                    row = run_orchestration_once(ds, ipj, args, mode, device_type, workdir, rep)
                except subprocess.TimeoutExpired:
                    row = {"data": ds["name"], "images_per_job": ipj, "returncode": None, "repeat": rep,
                           "error": f"snakemake exceeded {args.snakemake_timeout} s"}
                runs.append(row)
                write_json({**result, "orchestration_partial": runs}, partial_path(args.out))
                if row.get("error"):
                    errors.append(f"{ds['name']} images_per_job={ipj}: {row['error'][-500:]}")
                    log(f"  failed: {row['error'][-500:]}")
                else:
                    log(f"  wall {row['wall_s']:.1f} s, sum optimization {row['optimization_time_sum_s']:.1f} s, "
                        f"efficiency {row['efficiency']:.3f}")
    finally:
        if not args.keep_results:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = []
    for name in dict.fromkeys(r["data"] for r in runs):
        for ipj in dict.fromkeys(r["images_per_job"] for r in runs if r["data"] == name):
            ok = [r for r in runs if r["data"] == name and r["images_per_job"] == ipj and not r.get("error")]
            if ok:
                summary.append({"data": name, "images_per_job": ipj, "runs": len(ok),
                                "efficiency_median": statistics.median(r["efficiency"] for r in ok),
                                "wall_s_median": statistics.median(r["wall_s"] for r in ok),
                                "optimization_time_sum_s_median": statistics.median(r["optimization_time_sum_s"] for r in ok),
                                "jobs": f"{ok[0]['n_prepare_jobs']}+{ok[0]['n_optimize_jobs']}"})
    result["orchestration"] = {
        "summary": summary,
        "definition": "efficiency = sum of per-image optimization_time_s (records of the loss arms run) / "
                      "wall time of the snakemake command (DAG build, prepare and optimize jobs, each job's "
                      "python start-up + torch/diffusers import + model load)",
        "snakemake_cores": args.snakemake_cores,
        "data_sets": sets, "runs": runs, "errors": errors,
        "overhead_model": {},
    }
    for name in {r["data"] for r in runs}:
        m = overhead_model([r for r in runs if r["data"] == name])
        if m:
            result["orchestration"]["overhead_model"][name] = m

