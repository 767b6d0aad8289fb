"""Stages at scale (``bench/benchmark.py --scale-stages``, ``make bench-scale-stages``): the CPU of
every stage DOWNSTREAM of the per-image work, at 500 to 50,000 images, as ratios measured in one run.

Running the pipeline to its report at 5,000+ images costs ~1 s of CPU per image of optimization and
Inception features (bench/scale.py); the stages after them only read tables and feature arrays. For
each N of ``--sizes`` (default 500 2000 5000 50000) this writes, once, under ``--work-dir``, the inputs
those stages read, in the formats the pipeline's jobs write them, for the demo's arms (baseline +
psnr, ssim, lpips; demo/config.yaml over config.yaml, loaded with latentopt.workflow.config.load_config
as the Snakefile does):

* a data folder of N images (``--image-size``, default the demo's 64x96 crops; BSDS500's 200/100/200
  train/val/test proportions), planned with latentopt.workflow.plan.build_plan (the rules' chunks
  and quality-gate images);
* what prepare_images leaves: prepared records, reference PNGs, the chunk manifests listing them;
* per arm, what the optimize/build_dataset jobs leave and the report reads: per-image records
  (.json) and results (.pt with the loss history), PNGs (hard links to the reference), the dataset
  file, the quality gate's verdicts;
* what evaluate_dataset writes (evaluation_results/per_image/<arm>.csv: the rows
  latentopt.analysis.scoring.per_image_table makes of those records, with random but plausible
  metrics: PSNR ~ N(26, 2) dB, the arms a few tenths apart, a few failed images) and what
  inception_features writes (evaluation_results/features/<name>.npz: keys, float64 [n, 2048]
  features, calibrated), for the arms and "original".

Then each stage runs as its job script runs it, in a fresh interpreter (one BLAS/OpenMP thread, as
Snakemake runs a job of one thread), calling the same library function with the settings the rule
hands over: summarize_evaluation (summarize_all: per-arm summaries, paired tests with bootstrap CIs,
FID and KID with their bootstrap CIs, performance), test_hypotheses, analyze_categories (image
descriptors of every original, per-group gains) and the report (Markdown, appendix, HTML, figures).
Its CPU is time.process_time() around that call (plus any child process's); parts of a stage
(FID, KID, the paired tests, the figures, ...) are timed by wrapping the library functions it calls.

Above ``--fid-max-size`` images (default 2,000) summarize_evaluation runs with ``evaluation.fid:
false`` (a configuration the pipeline supports) and the stages after it read those outputs: with
FID/KID it takes an estimated ~80 min of CPU at 5,000 images (a run was stopped at 47 min) and ~9 h
at 50,000 on a 2-core VM (its bootstrap recomputes a 2048 x 2048 covariance and its square root per
replicate, arm, pair and split). Its
"without FID/KID" row stays comparable across sizes, and the FID/KID kernels (one FID with 3
bootstrap replicates, one KID estimate, on every image) are timed at every size. A stage whose CPU
at the next size, projected from the sizes measured so far (linear, or the measured exponent where
it is above 1), would exceed ``--budget-s`` is not run at that size (summarize_evaluation with FID:
that size without); the table says so with the projection.

Printed per stage (and part): CPU s at each N, CPU ms per image, and the growth exponent
(least-squares slope of log CPU against log N: 1 = linear, 0 = flat), over every size and between
the two largest. Raw JSON: ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .common import REPO, log, run_recorded, write_json
from .scale import slope

STAGES = ("summarize_evaluation", "test_hypotheses", "analyze_categories", "report")
# Not a stage: the two costly calls of summarize_evaluation's FID/KID once, on every image
# (original vs baseline), at every size (summarize_evaluation calls them per arm, pair and split).
KERNELS = "fid_kid_kernels"
# BSDS500's split proportions (200 train / 100 val / 200 test), in config.yaml's split order
SPLIT_SHARES = {"train": 0.4, "val": 0.2, "test": 0.4}
FEATURE_DIM = 2048  # latentopt.metrics.inception.FEATURE_DIM
FAILURE_RATE = 0.002  # optimization failures per loss arm (their rows have no metrics)
INPUT_FORMAT = "latentopt-bench-scale-stages-inputs/1"  # bump when the generated inputs change
# What the synthetic metrics of each arm are, relative to the baseline (mean, sd of the per-image
# shift); PSNR of the baseline ~ N(26, 2) dB. Signs: each loss improves its own metric most.
SHIFTS = {
    "baseline": {"psnr": (0.0, 0.0), "ssim": (0.0, 0.0), "lpips_alex": (0.0, 0.0), "lpips_vgg": (0.0, 0.0),
                 "gmsd": (0.0, 0.0), "delta_e00": (0.0, 0.0), "sharpness_ratio": (0.0, 0.0)},
    "psnr": {"psnr": (0.9, 0.3), "ssim": (0.012, 0.01), "lpips_alex": (-0.004, 0.006), "lpips_vgg": (-0.003, 0.006),
             "gmsd": (-0.006, 0.004), "delta_e00": (-0.25, 0.15), "sharpness_ratio": (0.01, 0.02)},
    "ssim": {"psnr": (0.4, 0.3), "ssim": (0.03, 0.01), "lpips_alex": (-0.008, 0.006), "lpips_vgg": (-0.006, 0.006),
             "gmsd": (-0.009, 0.004), "delta_e00": (-0.15, 0.15), "sharpness_ratio": (0.03, 0.02)},
    "lpips": {"psnr": (-0.2, 0.4), "ssim": (0.002, 0.012), "lpips_alex": (-0.03, 0.01), "lpips_vgg": (-0.012, 0.008),
              "gmsd": (-0.002, 0.005), "delta_e00": (0.05, 0.2), "sharpness_ratio": (0.06, 0.03)},
}
FEATURE_NOISE = {"baseline": 0.35, "psnr": 0.30, "ssim": 0.32, "lpips": 0.25}  # arm = original + noise (pre-ReLU)
TFLOP_PER_ITERATION = {"psnr": 0.00025214976, "ssim": 0.00027, "lpips": 0.000634797696}
TFLOP_BASE = 0.000176062464


# ---------------------------------------------------------------------------------------------
# configuration (as the Snakefile loads it)


def case_config(case: Path, fid: bool = True) -> dict:
    """config.yaml, demo/config.yaml, then the case's own (results_dir, data.root, run.images_per_job);
    ``fid`` False: with evaluation.fid false."""
    from latentopt.workflow.config import load_config

    return load_config([REPO / "demo" / "config.yaml", case / "config.yaml"], overrides=None if fid else {"evaluation.fid": False})


def write_case_config(case: Path, args) -> Path:
    import yaml

    over = {"results_dir": str(case / "results"), "data": {"root": str(case / "data")},
            "run": {"images_per_job": args.images_per_job}}
    path = case / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(over))
    return path


# ---------------------------------------------------------------------------------------------
# synthetic inputs


def write_images(root: Path, n: int, height: int, width: int, seed: int) -> None:
    """N PNGs img_000000.png ... in the split folders: blocky random colour fields, blurred by a
    random amount, plus noise of a random level (so that the image descriptors spread)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    counts = split_counts(n)
    i = 0
    for split, count in counts.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            block = int(rng.choice([4, 8, 16]))
            small = rng.uniform(0, 255, (-(-height // block), -(-width // block), 3))
            img = np.repeat(np.repeat(small, block, axis=0), block, axis=1)[:height, :width]
            img = img + rng.normal(0, rng.uniform(0, 25), img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img_{i:06d}.png")
            i += 1


def split_counts(n: int) -> dict[str, int]:
    counts = {s: int(round(n * f)) for s, f in SPLIT_SHARES.items()}
    counts["train"] += n - sum(counts.values())
    return counts


def _model_record(results: Path) -> dict:
    """The autoencoder part of a per-image record, as the demo's records carry it (the report's
    provenance table reads it from every record)."""
    weights = str(results / "demo_model" / "demo_autoencoder.pt")
    label = "autoencoder trained for the demo on 16000 crops in 50 s — not SD-VAE"
    return {"kind": "demo_trained", "synthetic": True, "spec": {"kind": "demo_trained", "weights": weights},
            "source": f"{weights}: {label}", "trained_for_demo": label,
            "training": {"format": "latentopt-demo-autoencoder/1", "description": label, "seed": 0, "n_crops": 16000,
                         "settings": {"seed": 0, "steps": 1000, "batch_size": 16, "crop_size": 48, "lr": 0.002},
                         "train_time_s": 50.31, "latent_channels": 4, "downsample_factor": 8},
            "weights_sha256": "973fa882304fcc86116cee1a150e1f405efaf4a29a60e28ffff228002abff5b4",
            "weight_files": {weights: "f465388d24d70f03c23f485321ef9817557c0c0bce19d1c26c29279511c342a6"},
            "weights_revision": {"from": "demo", "requested": None, "commit": None,
                                 "text": "demo autoencoder trained by the pipeline: no hub commit"},
            "latent_channels": 4, "downsample_factor": 8, "dtype": "float32", "device": "cpu"}


def _arm_settings(config: dict, arm: str) -> dict:
    if arm == "baseline":
        return {"arm": arm, "method": None, "loss": None, "precision": config["run"]["precision"]}
    block = config["losses"][arm]
    return {"arm": arm, "method": "backprop", "loss": block["loss"], "precision": config["run"]["precision"],
            "lr": block["lr"], "betas": [0.9, 0.999], "eps": 1e-08, "iterations": block["iterations"],
            "schedule": "constant", "warmup_fraction": None, "stopping": block.get("stopping"),
            "retry": {"enabled": True, "lr_factor": 0.1, "iterations_factor": 2}}


def synthetic_metrics(n: int, arms: list[str], seed: int) -> dict[str, dict[str, "object"]]:
    """{arm: {metric: float64[n]}}: per image a difficulty u ~ N(0, 1) shared by the arms; the
    baseline's PSNR 26 + 2u (+ noise) dB, each arm shifted by SHIFTS (per-image jitter)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, n)
    base = {"psnr": 26 + 2 * u + rng.normal(0, 0.3, n), "ssim": 0.75 + 0.05 * u + rng.normal(0, 0.02, n),
            "lpips_alex": 0.15 - 0.03 * u + rng.normal(0, 0.01, n), "lpips_vgg": 0.25 - 0.04 * u + rng.normal(0, 0.015, n),
            "gmsd": 0.10 - 0.02 * u + rng.normal(0, 0.006, n), "delta_e00": 3.0 - 0.4 * u + rng.normal(0, 0.2, n),
            "sharpness_ratio": 0.85 + rng.normal(0, 0.05, n)}
    out = {}
    for arm in arms:
        m = {k: v + rng.normal(SHIFTS[arm][k][0], SHIFTS[arm][k][1], n) if SHIFTS[arm][k][1] else v.copy()
             for k, v in base.items()}
        m["ssim"] = np.clip(m["ssim"], 0.05, 0.999)
        for k in ("lpips_alex", "lpips_vgg", "gmsd", "delta_e00", "sharpness_ratio"):
            m[k] = np.clip(m[k], 1e-3, None)
        m["mse"] = 10 ** (-m["psnr"] / 10)
        m["mae"] = np.sqrt(m["mse"]) * 0.75 * np.exp(rng.normal(0, 0.05, n))
        out[arm] = m
    return out


def table_row(record: dict, metrics: dict) -> dict:
    """One row of evaluate_dataset's table, as latentopt.analysis.scoring.per_image_table makes it
    of ``record``, the metrics of the image (image_metrics, visual_metrics) given."""
    from latentopt.analysis.input_failures import failure_kind
    from latentopt.analysis.scoring import RECORD_COLUMNS, settings_columns

    row = {"dataset": record["arm"], "split": record["split"], "image_id": record["image_id"], "status": record["status"],
           "reason": record.get("reason"), "failure_kind": failure_kind(record)}
    row.update(settings_columns(record))
    if record["status"] == "ok":
        row.update(metrics)
        row.update({k: record.get(k) for k in RECORD_COLUMNS})
        row["retried"] = bool(record.get("retry"))
        row.update({f"batch_{k}": v for k, v in (record.get("batch") or {}).items() if k != "image_ids"})
        row["initial_psnr"] = record["initial"]["psnr"]
        row["loss_initial"] = record.get("initial_loss")
        row["loss_best"] = record.get("best_loss")
    return row


METRIC_ORDER = ("psnr", "ssim", "mse", "mae", "lpips_alex", "lpips_vgg", "gmsd", "delta_e00", "sharpness_ratio")


def write_arm(results: Path, config: dict, plan, arm: str, metrics: dict, index: dict, seed: int, hw: tuple[int, int]) -> dict:
    """The per-image records and results of one arm, its PNGs (hard links to the references), its
    evaluation table and its dataset file; returns {key: status} of its images."""
    import numpy as np
    import pandas as pd
    import torch

    from latentopt.workflow import layout

    rng = np.random.default_rng(seed)
    settings = _arm_settings(config, arm)
    model = _model_record(results)
    synthetic = ["autoencoder trained for the demo on 16000 crops in 50 s — not SD-VAE",
                 "LPIPS: random AlexNet/VGG trunk (uncalibrated)", "FID/KID: randomly initialised Inception (uncalibrated)"]
    limit = 0 if arm == "baseline" else int(config["losses"][arm]["iterations"])
    batch_size = int(config["run"]["batch_size"])
    h, w = hw
    rows, samples, status = [], [], {}
    for chunk in plan.chunks:
        entries = list(chunk.entries)
        for start in range(0, len(entries), batch_size):
            batch = entries[start:start + batch_size]
            fails = [arm != "baseline" and rng.random() < FAILURE_RATE for _ in batch]
            iters = [0 if arm == "baseline" else int(rng.integers(limit // 3, limit + 1)) if rng.random() < 0.3 else limit
                     for _ in batch]
            ok = [e for e, f in zip(batch, fails) if not f]
            per_image_s = 0.003 if arm == "baseline" else float(rng.uniform(0.015, 0.03)) * max(limit, 1)
            compute = per_image_s * max(len(ok), 1)
            info = {"id": f"{chunk.split}/{batch[0].image_id}", "images": len(ok), "image_ids": [e.image_id for e in ok],
                    "image_iterations": int(sum(i for i, f in zip(iters, fails) if not f)), "clock": "process_cpu_time",
                    "compute_s": compute, "wall_s": compute * 1.08, "rows": batch_size}
            for e, failed, it in zip(batch, fails, iters):
                k = index[(e.split, e.image_id)]
                m = {name: float(metrics[name][k]) for name in METRIC_ORDER}
                rec = {"image_id": e.image_id, "split": e.split, "arm": arm, "status": "failed" if failed else "ok",
                       "reason": "synthetic failure (benchmark): loss became non-finite" if failed else None,
                       "failure_kind": "optimization" if failed else None, "settings": settings, "synthetic": synthetic,
                       "model": model, "host": "bench"}
                if not failed:
                    init = float(metrics["_initial_psnr"][k])
                    converged = it if 0 < it < limit else None
                    loss0, loss1 = (-init, -m["psnr"]) if arm in ("psnr", "baseline") else \
                        (1 - m["ssim"] + 0.02, 1 - m["ssim"]) if arm == "ssim" else (m["lpips_alex"] + 0.03, m["lpips_alex"])
                    work = TFLOP_BASE + it * TFLOP_PER_ITERATION.get(arm, 0.0)
                    rec.update({"initial": {"psnr": init}, "final": {"psnr": m["psnr"]}, "iterations": it, "converged_at": converged,
                                "stop_reason": "baseline" if arm == "baseline" else "converged" if converged else "max_iterations",
                                "initial_loss": None if arm == "baseline" else loss0, "best_loss": None if arm == "baseline" else loss1,
                                "returned_latent": "best", "retry": None, "time_s": info["wall_s"] / max(len(ok), 1),
                                "optimization_time_s": 0.0 if arm == "baseline" else per_image_s, "peak_memory_mb": 700.0 + rng.uniform(0, 60),
                                "device": "cpu", "batch_size": len(ok), "batch": info, "size": [h, w],
                                "counted_work": {"tflop": work, "tflop_per_iteration": TFLOP_PER_ITERATION.get(arm),
                                                 "counter": "torch.utils.flop_counter.FlopCounterMode"},
                                "tflop": work})
                    hist = [float(loss1 + (loss0 - loss1) * np.exp(-5 * t / max(it, 1))) for t in range(it)]
                    layout.per_image(results, arm, e.split, e.image_id, "json").parent.mkdir(parents=True, exist_ok=True)
                    if arm != "baseline":
                        torch.save({"image_id": e.image_id, "split": e.split, "arm": arm, "status": "ok",
                                    "z0": torch.randn(4, h // 8, w // 8), "z": torch.randn(4, h // 8, w // 8),
                                    "loss_history": hist, "decoded": torch.zeros(h, w, 3, dtype=torch.uint8), "region": [0, 0, h, w]},
                                   layout.per_image(results, arm, e.split, e.image_id, "pt"))
                    png = layout.dataset_png_dir(results, arm) / e.split / f"{e.image_id}.png"
                    png.parent.mkdir(parents=True, exist_ok=True)
                    os.link(layout.original_png(results, e.split, e.image_id), png)
                    samples.append({"name": e.image_id, "split": e.split, "initial_latent": torch.randn(4, h // 8, w // 8),
                                    "optimized_latent": torch.randn(4, h // 8, w // 8), "loss_history": hist,
                                    "metrics": {"psnr": m["psnr"]}, "iterations": it, "converged_at": converged,
                                    "stop_reason": rec["stop_reason"], "time_s": rec["time_s"]})
                path = layout.per_image(results, arm, e.split, e.image_id, "json")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rec, indent=2))
                rows.append(table_row(rec, m))
                status[f"{e.split}/{e.image_id}"] = rec["status"]
    table = layout.per_arm_table(results, arm)
    table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(table, index=False)
    dataset = layout.dataset_file(results, arm)
    dataset.parent.mkdir(parents=True, exist_ok=True)
    n_ok = sum(s == "ok" for s in status.values())
    torch.save({"format": "latentopt-dataset/1", "samples": samples,
                "metadata": {"experiment_id": config["experiment_id"], "arm": arm, "settings": settings, "model": model,
                             "synthetic": synthetic, "versions": {}, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
                             "n_images": len(status), "n_ok": n_ok, "failed": [k for k, s in status.items() if s != "ok"]}}, dataset)
    return status


def write_features(results: Path, keys: list[str], status: dict[str, dict[str, str]], arms: list[str], seed: int, block: int = 4096) -> None:
    """inception_features' outputs: original.npz (every image) and <arm>.npz (its ok images), float64
    [n, 2048] nonnegative features (ReLU of a rank-32 signal plus noise; each arm the original's
    pre-activation plus its own noise), keys 'split/image_id', calibrated False (the demo's Inception)."""
    import numpy as np

    from latentopt.workflow import layout

    n = len(keys)
    rng = np.random.default_rng(seed)
    mix = rng.normal(0, 1 / np.sqrt(32), (32, FEATURE_DIM))
    offset = rng.normal(0.2, 0.3, FEATURE_DIM)
    names = ["original", *arms]
    feats = {name: np.empty((n, FEATURE_DIM)) for name in names}
    for start in range(0, n, block):
        stop = min(n, start + block)
        pre = rng.normal(0, 1, (stop - start, 32)) @ mix + offset + rng.normal(0, 0.3, (stop - start, FEATURE_DIM))
        feats["original"][start:stop] = np.maximum(pre, 0)
        for arm in arms:
            feats[arm][start:stop] = np.maximum(pre + rng.normal(0, FEATURE_NOISE[arm], pre.shape), 0)
    out = layout.features_file(results, "original")
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        keep = np.ones(n, bool) if name == "original" else np.array([status[name][k] == "ok" for k in keys])
        with open(layout.features_file(results, name), "wb") as fh:
            np.savez(fh, calibrated=False, keys=np.array(keys)[keep], features=feats.pop(name)[keep])


def write_gates(results: Path, plan, metrics: dict, index: dict) -> None:
    """The quality gate's verdict of each loss on the plan's gate images (optimize.gate's format)."""
    import numpy as np

    from latentopt.core.fileio import write_json as write_record
    from latentopt.workflow import layout

    gate = plan.gate_entries
    for arm in plan.gate_arms:
        metric = {"psnr": "psnr", "ssim": "ssim", "lpips": "lpips_alex"}[arm]
        higher = metric != "lpips_alex"
        images = []
        for e in gate:
            k = index[(e.split, e.image_id)]
            initial, final = float(metrics["baseline"][metric][k]), float(metrics[arm][metric][k])
            images.append({"image_id": e.image_id, "split": e.split, "status": "ok", "initial": initial, "final": final,
                           "improvement": (final - initial) if higher else (initial - final), "retried": False})
        gains = [i["improvement"] for i in images]
        mean = float(np.mean(gains)) if gains else None
        write_record(layout.gate_file(results, arm), {
            "arm": arm, "loss": {"name": arm}, "metric": metric, "higher_is_better": higher, "unit": "dB" if metric == "psnr" else "",
            "threshold": 0.1 if metric == "psnr" else 0.0, "mean_improvement": mean, "ci95": [None, None],
            "min_improvement_seen": min(gains, default=None), "max_improvement_seen": max(gains, default=None),
            "n_images": len(images), "n_measured": len(images), "failed_images": [], "n_retried": 0, "mode": "stop",
            "passed": True, "decision": "passed", "images": images,
            "message": f"quality gate PASSED for loss '{arm}' (synthetic benchmark inputs)"})


def make_inputs(case: Path, n: int, args) -> dict:
    """Every input of the four stages for N images under ``case`` (kept: written once per
    format, size and image size)."""
    import numpy as np

    from latentopt.workflow import layout
    from latentopt.workflow.chunks import write_manifest
    from latentopt.workflow.plan import build_plan

    h, w = args.image_size
    stamp = {"format": INPUT_FORMAT, "n": n, "image_size": [h, w], "images_per_job": args.images_per_job}
    done = case / ".complete.json"
    if done.is_file() and json.loads(done.read_text()) == stamp:
        return stamp
    if case.exists():
        shutil.rmtree(case)
    started = time.perf_counter()
    write_case_config(case, args)
    write_images(case / "data", n, h, w, seed=n)
    config = case_config(case)
    results = Path(config["results_dir"])
    plan = build_plan(config)
    preprocess = dict(config["preprocess"])
    for chunk in plan.chunks:  # prepare_images: records, reference PNGs, the chunk's manifest
        images = []
        for e in chunk.entries:
            png, rec = layout.original_png(results, e.split, e.image_id), layout.prepared_record(results, e.split, e.image_id)
            png.parent.mkdir(parents=True, exist_ok=True)
            rec.parent.mkdir(parents=True, exist_ok=True)
            os.link(e.path, png)  # center_crop to a multiple of 8 leaves these sizes as they are
            rec.write_text(json.dumps({"image_id": e.image_id, "split": e.split, "source": str(e.path), "status": "ok",
                                       "source_size": [h, w], "size": [h, w], "preprocess": preprocess, "png": str(png)}, indent=2))
            images.append((e.image_id, {"record": rec, "png": png}))
        write_manifest(layout.prepared_manifest(results, chunk.name), "prepare", chunk.split, images, extra={"preprocess": preprocess})
    summary = layout.demo_model_dir(results) / "demo_autoencoder.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps({"format": "latentopt-demo-autoencoder/1", "n_crops": 16000, "train_time_s": 50.31,
                                   "description": "autoencoder trained for the demo on 16000 crops in 50 s — not SD-VAE"}))
    entries = [e for c in plan.chunks for e in c.entries]
    index = {(e.split, e.image_id): i for i, e in enumerate(entries)}
    metrics = synthetic_metrics(len(entries), plan.arms, seed=n + 1)
    for m in metrics.values():
        m["_initial_psnr"] = metrics["baseline"]["psnr"] + np.random.default_rng(n + 2).normal(0, 0.01, len(entries))
    status = {arm: write_arm(results, config, plan, arm, metrics[arm], index, seed=n + 3 + i, hw=(h, w))
              for i, arm in enumerate(plan.arms)}
    write_features(results, [f"{e.split}/{e.image_id}" for e in entries], status, plan.arms, seed=n + 10)
    write_gates(results, plan, metrics, index)
    log(f"n={n}: inputs written in {time.perf_counter() - started:.0f} s ({case})")
    done.write_text(json.dumps(stamp))
    return stamp


# ---------------------------------------------------------------------------------------------
# one stage, in this process (the worker)


class Parts:
    """CPU seconds of named library calls made during a stage: each wrapped function adds the
    process CPU it used (calls of one part must not nest in another's)."""

    def __init__(self):
        self.cpu: dict[str, float] = {}

    def wrap(self, module, name: str, part: str) -> None:
        fn = getattr(module, name)

        def timed(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[part] = self.cpu.get(part, 0.0) + time.process_time() - t0

        setattr(module, name, timed)


def run_stage(stage: str, case: Path, fid: bool = True) -> dict:
    """Run ``stage`` as its job script does (rules/*.smk params, the script's call) on the case's
    inputs; returns its CPU (process and children), the CPU of its parts and its peak RSS."""
    from latentopt.workflow import layout
    from latentopt.workflow.plan import build_plan

    config = case_config(case, fid=fid)  # what the workflow builds when it is parsed (not timed)
    results = config["results_dir"]
    plan = build_plan(config)
    arms = plan.arms
    ev = lambda what: str(layout.evaluation_file(results, what))  # noqa: E731
    parts = Parts()
    if stage == "summarize_evaluation":  # each stage imports what its job script imports
        import latentopt.analysis.pairwise as pairwise
        import latentopt.analysis.summaries as summaries
        import latentopt.analysis.summarize as summarize
        from latentopt.workflow.analysis_settings import SummarySettings, summary_settings

        params, evaluation = summary_settings(config).params(), config["evaluation"]
        tables = [str(layout.per_arm_table(results, a)) for a in arms]
        features = [str(layout.features_file(results, n)) for n in ["original", *arms]] if config["evaluation"]["fid"] else []
        outputs = {k: ev(k) for k in ("cross", "stats", "performance", "table")}
        parts.wrap(summarize, "load_features", "features load")
        parts.wrap(summaries, "fid_with_ci", "FID + bootstrap CI")
        parts.wrap(summaries, "kid", "KID (paired, unpaired)")
        parts.wrap(pairwise, "fid_difference_ci", "FID differences (bootstrap)")
        parts.wrap(pairwise, "pairwise_tests", "paired tests (bootstrap CIs)")

        def call():
            summarize.summarize_all(SummarySettings.from_params(params, evaluation=evaluation), tables, features, outputs)
    elif stage == "test_hypotheses":
        from latentopt.analysis.hypotheses import write_hypothesis_analysis
        from latentopt.workflow.analysis_settings import HypothesisSettings, hypothesis_settings

        params = hypothesis_settings(config).params()

        def call():
            write_hypothesis_analysis(ev("cross"), ev("table"), ev("hypotheses"), hypotheses=config["analysis"]["hypotheses"],
                                      settings=HypothesisSettings.from_params(params))
    elif stage == "analyze_categories":
        import latentopt.analysis.categories as categories
        from latentopt.workflow.analysis_settings import CategorySettings, category_settings
        from latentopt.workflow.chunks import listed

        params = category_settings(config).params()
        manifests = [str(layout.prepared_manifest(results, c.name)) for c in plan.chunks]
        parts.wrap(categories, "categorize", "descriptors of the originals")
        parts.wrap(categories, "group_gains", "per-group gains (bootstrap)")

        def call():
            categories.write_category_analysis(listed(manifests, "record"), ev("table"), ev("categories_table"), ev("categories"),
                                               categories=config["analysis"]["categories"], settings=CategorySettings.from_params(params))
    elif stage == "report":
        import latentopt.report as report
        from latentopt.workflow.analysis_settings import ReportSettings, report_settings

        params = report_settings(config).params()
        gates = [str(layout.gate_file(results, a)) for a in plan.gate_arms]
        parts.wrap(report, "make_figures", "figures")
        parts.wrap(report, "render_sections", "analysis sections (+ their figures)")

        def call():
            report.write_report(ReportSettings.from_params(params), cross=ev("cross"), stats=ev("stats"), performance=ev("performance"),
                                table_csv=ev("table"), categories=ev("categories"), hypotheses=ev("hypotheses"),
                                report=str(layout.report_file(results)), appendix=str(layout.report_appendix_file(results)),
                                html=str(layout.report_html_file(results)), fig_dir=str(layout.figures_dir(results)), gates=gates,
                                log=lambda msg: None)
    elif stage == KERNELS:
        import pandas as pd

        from latentopt.analysis.features import load_features
        from latentopt.analysis.summaries import FRECHET_METHOD, aligned_features, sorted_keys
        from latentopt.metrics.fid import fid_with_ci, kid

        seed = config["evaluation"]["seed"]
        table = pd.read_csv(layout.per_arm_table(results, "baseline"))
        keys = sorted_keys(table[table["status"] == "ok"])
        feats, _ = load_features([layout.features_file(results, n) for n in ("original", "baseline")])
        ref, gen = aligned_features(feats["original"], keys), aligned_features(feats["baseline"], keys)
        parts.wrap(sys.modules[__name__], "_fid_replicates", "FID: point + 3 bootstrap replicates")
        parts.wrap(sys.modules[__name__], "_kid_estimate", "KID: one paired estimate (100 subsets)")

        def call():
            _fid_replicates(fid_with_ci, ref, gen, seed, FRECHET_METHOD)
            _kid_estimate(kid, ref, gen, seed)
    else:
        raise ValueError(f"unknown stage {stage!r} (one of {STAGES})")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, w0 = time.process_time(), time.perf_counter()
    call()
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    return {"cpu_s": cpu, "wall_s": wall, "parts": parts.cpu, "fid": fid, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not carried over exec from
    the process that started it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _fid_replicates(fid_with_ci, ref, gen, seed, method):
    return fid_with_ci(ref, gen, n_boot=3, seed=seed, method=method)


def _kid_estimate(kid, ref, gen, seed):
    return kid(ref, gen, seed=seed, paired=True)


SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_stage_process(stage: str, case: Path, fid: bool, timeout: float) -> dict:
    """run_stage in a fresh interpreter with one BLAS/OpenMP thread (as a Snakemake job of one
    thread runs), on the case's inputs."""
    out = case / "stage_results" / f"{stage}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench.scale_stages", "--worker", stage, "--case", str(case), "--worker-out", str(out)]
    if not fid:
        cmd.append("--no-fid")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **SINGLE_THREAD, "MPLBACKEND": "Agg"},
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "timeout_s": timeout}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # + start-up, imports
    return result


# ---------------------------------------------------------------------------------------------
# the benchmark


def projection(history: list[tuple[int, float]], n: int) -> float | None:
    """CPU at ``n`` projected from the measured (size, CPU) pairs: the largest one scaled
    linearly, or by the measured exponent where that is above 1."""
    if not history:
        return None
    n0, c0 = history[-1]
    e = slope([h[0] for h in history], [h[1] for h in history]) if len(history) > 1 else None
    return c0 * (n / n0) ** max(1.0, e or 1.0)


WITHOUT_FID = "statistics without FID/KID"
FID_PARTS = ("features load", "FID + bootstrap CI", "KID (paired, unpaired)", "FID differences (bootstrap)")


def run_scale_stages(args) -> dict:
    work = Path(args.work_dir)
    sizes = sorted(set(args.sizes))
    stages = [s for s in (*STAGES, KERNELS) if s in args.stages]
    result: dict = {"sizes": sizes, "image_size": list(args.image_size), "images_per_job": args.images_per_job,
                    "budget_s": args.budget_s, "fid_max_size": args.fid_max_size, "stages": {s: {} for s in stages}, "skipped": {s: {} for s in stages},
                    "fid_off_sizes": [], "inputs_s": {}}
    cfg = None
    for n in sizes:
        case = work / f"n{n}"
        t0 = time.perf_counter()
        make_inputs(case, n, args)
        result["inputs_s"][n] = round(time.perf_counter() - t0, 1)
        cfg = cfg or case_config(case)
        fid = bool(cfg["evaluation"]["fid"]) and (not args.fid_max_size or n <= args.fid_max_size)
        if not fid and cfg["evaluation"]["fid"]:
            result["fid_off_sizes"].append(n)
        summarized = True  # summarize_evaluation's outputs are this size's (the stages after it read them)
        for stage in stages:
            if stage == KERNELS and not cfg["evaluation"]["fid"]:
                continue
            if stage in STAGES[1:] and not summarized:
                result["skipped"][stage][n] = None
                continue
            # summarize_evaluation's projection from its runs with FID/KID; the other stages' from all
            history = [(m, r["cpu_s"]) for m, r in result["stages"][stage].items()
                       if "cpu_s" in r and (stage != "summarize_evaluation" or r["fid"] == fid)]
            proj = projection(history, n)
            if proj is not None and proj > args.budget_s and stage != KERNELS:  # the kernels: at every size
                result["skipped"][stage][n] = proj
                if stage != "summarize_evaluation" or not fid:
                    log(f"n={n}: {stage} skipped (projected {proj:.0f} s CPU > budget {args.budget_s:.0f} s)")
                    summarized = summarized and stage != "summarize_evaluation"
                    continue
                fid = False  # this size without FID/KID, the stages after it on those outputs
                result["fid_off_sizes"].append(n)
                log(f"n={n}: {stage} with FID/KID skipped (projected {proj:.0f} s CPU): evaluation.fid false at this size")
            r = run_stage_process(stage, case, fid or stage == KERNELS, args.timeout)
            result["stages"][stage][n] = r
            if r.get("timed_out") and stage == "summarize_evaluation":
                summarized = False
            log(f"n={n}: {stage}" + ("" if fid or stage == KERNELS else " (fid: false)") + (f" timed out after {args.timeout:.0f} s" if r.get("timed_out")
                else f" {r['cpu_s']:.1f} s CPU ({r['wall_s']:.1f} s wall, peak {r['peak_rss_mb'] or 0:.0f} MB)"))
    result["fid_n_boot"], result["n_boot"] = cfg["evaluation"]["fid_n_boot"], cfg["evaluation"]["n_boot"]
    return result


def stage_rows(result: dict) -> list[tuple[str, dict[int, float | None], dict[int, str]]]:
    """(label, {n: CPU s}, {n: note}) per stage and part, in table order."""
    rows = []
    for stage, by_n in result["stages"].items():
        by_n = {int(n): r for n, r in by_n.items()}
        skipped = {int(n): p for n, p in (result["skipped"].get(stage) or {}).items()}
        fid_off = {int(n) for n in result.get("fid_off_sizes", [])}
        if stage == "summarize_evaluation":
            total = {n: r["cpu_s"] for n, r in by_n.items() if r.get("fid", True) and "cpu_s" in r}
            notes = {n: "fid off" if skipped[n] is None else "skip" for n in skipped}
            notes.update({n: "fid off" for n in fid_off if n not in notes})
            rows.append(("summarize_evaluation (FID on)", total, notes))
            without = {n: r["cpu_s"] - sum(r["parts"].get(p, 0.0) for p in FID_PARTS) for n, r in by_n.items() if "cpu_s" in r}
            parts = list(dict.fromkeys(p for r in by_n.values() for p in r.get("parts", {})))
            for p in [p for p in parts if p in FID_PARTS]:
                rows.append((f"  {p}", {n: r["parts"].get(p) for n, r in by_n.items() if r.get("fid", True) and "cpu_s" in r}, notes))
            rows.append((f"  {WITHOUT_FID}", without, {}))
            for p in [p for p in parts if p not in FID_PARTS]:
                rows.append((f"    {p}", {n: r["parts"].get(p) for n, r in by_n.items() if "cpu_s" in r}, {}))
            continue
        cpu = {n: r["cpu_s"] for n, r in by_n.items() if "cpu_s" in r}
        notes = {n: "no input" if p is None else "skip" for n, p in skipped.items()}
        notes.update({n: "timeout" for n, r in by_n.items() if r.get("timed_out")})
        label = "FID/KID kernels (not a stage; all images)" if stage == KERNELS else stage + (" *" if fid_off & set(cpu) else "")
        rows.append((label, cpu, notes))
        for p in dict.fromkeys(p for r in by_n.values() for p in r.get("parts", {})):
            rows.append((f"  {p}", {n: r["parts"].get(p) for n, r in by_n.items() if "cpu_s" in r}, {}))
    return rows


def format_scale_stages(result: dict) -> str:
    ns = [int(n) for n in result["sizes"]]
    head = (f"stage CPU s (in-process, one thread; demo arms baseline + 3 losses; n_boot {result.get('n_boot')}, "
            f"fid_n_boot {result.get('fid_n_boot')}; images {result['image_size'][0]}x{result['image_size'][1]})")
    lines = [head, f"{'stage':42}" + "".join(f"{n:>12}" for n in ns) + "".join(f"{'ms/img@' + str(n):>13}" for n in ns)
             + f"{'exponent':>10}{'exp last2':>10}"]
    for label, cpu, notes in stage_rows(result):
        cells = "".join(f"{cpu[n]:12.2f}" if cpu.get(n) is not None else f"{notes.get(n, '-'):>12}" for n in ns)
        per = "".join(f"{1000 * cpu[n] / n:13.3f}" if cpu.get(n) is not None else f"{'-':>13}" for n in ns)
        measured = [n for n in ns if cpu.get(n)]
        e = slope(measured, [cpu[n] for n in measured])
        e2 = slope(measured[-2:], [cpu[n] for n in measured[-2:]]) if len(measured) > 2 else None
        lines.append(f"{label:42}" + cells + per + (f"{e:10.2f}" if e is not None else f"{'-':>10}")
                     + (f"{e2:10.2f}" if e2 is not None else f"{'-':>10}"))
    if result.get("fid_off_sizes"):
        lines.append(f"* at {', '.join(str(n) for n in result['fid_off_sizes'])} images: run with evaluation.fid false "
                     "(--fid-max-size, or summarize_evaluation with FID/KID projected over --budget-s); the stages after it "
                     "read outputs without FID/KID")
    for stage, skipped in result["skipped"].items():
        for n, proj in ((int(k), v) for k, v in skipped.items() if v is not None):
            by_n = {int(m): r for m, r in result["stages"][stage].items() if "cpu_s" in r and int(m) < n
                    and (stage != "summarize_evaluation" or r.get("fid", True))}
            if not by_n:
                continue
            n0 = max(by_n)
            lines.append(f"skip: {stage}{' with FID/KID' if stage == 'summarize_evaluation' else ''} not run at {n} images: "
                         f"projected {proj:,.0f} s of CPU (> --budget-s {result['budget_s']:.0f}); "
                         f"{by_n[n0]['cpu_s'] * n / n0:,.0f} s if it grew linearly from {n0}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="benchmark.py --scale-stages", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 5000, 50000], help="numbers of images")
    p.add_argument("--stages", nargs="+", default=[*STAGES, KERNELS], choices=[*STAGES, KERNELS],
                   help=f"the stages to run (and {KERNELS}: one FID point + 3 bootstrap replicates and one KID "
                        "estimate on every image, at every size)")
    p.add_argument("--fid-max-size", type=int, default=2000,
                   help="above this many images summarize_evaluation runs with evaluation.fid false, the stages after "
                        "it on its outputs (default 2000: with FID/KID it takes an estimated ~80 min of CPU at 5,000 images and "
                        "~9 h at 50,000 on a 2-core VM; the FID/KID kernels are timed at every size); 0: no limit")
    p.add_argument("--image-size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=(64, 96),
                   help="HEIGHTxWIDTH of the synthetic images, multiples of 8 (default 64x96, the demo's crops)")
    p.add_argument("--images-per-job", type=int, default=100, help="run.images_per_job: the prepared chunks (config.yaml's)")
    p.add_argument("--budget-s", type=float, default=900.0,
                   help="a stage whose projected CPU at a size exceeds this is not run there (summarize_evaluation: "
                        "that size runs with evaluation.fid false)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds one stage may run")
    p.add_argument("--work-dir", default=str(REPO / "bench" / "out" / "scale_stages"), help="inputs and outputs (kept)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "scale_stages.json"))
    p.add_argument("--table", metavar="JSON", help="print the table of an earlier run's raw JSON and exit")
    p.add_argument("--worker", choices=[*STAGES, KERNELS], help=argparse.SUPPRESS)  # run one stage in this process
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--no-fid", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        write_json(run_stage(args.worker, Path(args.case), fid=not args.no_fid), Path(args.worker_out))
        return 0
    if args.table:
        print(format_scale_stages(json.loads(Path(args.table).read_text())))
        return 0
    if any(v % 8 for v in args.image_size):
        raise SystemExit("--image-size: multiples of 8 (the demo's center_crop would change them otherwise)")
    return run_recorded("latentopt-benchmark-scale-stages/1", lambda: run_scale_stages(args), format_scale_stages,
                        Path(args.out), cpu_count=os.cpu_count())

if __name__ == "__main__":
    sys.exit(main())
