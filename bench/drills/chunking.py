"""Does an image's result depend on how many images share its job (run.images_per_job)? Runs the
optimization jobs of one split (latentopt.optimize.job.optimize_chunk, as the pipeline's jobs do)
with the split cut into jobs of 4, 2 and 1 images at one run.batch_size, and compares every image's
.pt payload (latents, loss history, decoded image) and metrics with the 4-image jobs'. The demo's
trained autoencoder (its weights file from a finished demo run) or the random synthetic_kl one.

  PYTHONPATH=workflow_scripts .venv/bin/python bench/drills/chunking.py --out chunking.json \
      [--weights results/demo/demo_model/demo_autoencoder.pt (its .json beside it)] [--batch-size 4] [--iterations 30]

Run it with another checkout's workflow_scripts on PYTHONPATH to measure that version."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from latentopt.core.fileio import read_json
from latentopt.data.demo_data import write_demo_data
from latentopt.data.prepare import prepare_chunk
from latentopt.optimize.job import optimize_chunk
from latentopt.workflow import layout
from latentopt.workflow.config import demo_model_weights, load_config
from latentopt.workflow.job_params import optimize_job_args
from latentopt.workflow.plan import build_plan

REPO = Path(__file__).resolve().parents[2]
ARMS = ("psnr", "ssim", "lpips")


def _config(results: Path, data: Path, args) -> dict:
    model = {"model.kind": "demo_trained" if args.weights else "synthetic_kl"}
    overrides = {"results_dir": str(results), "data.root": str(data), **model, "run.batch_size": args.batch_size,
                 **{f"losses.{a}.iterations": args.iterations for a in ARMS}}
    return load_config([REPO / "demo" / "config.yaml"], overrides)


def run_split(root: Path, data: Path, split: str, job_size: int, args) -> dict:
    cfg = _config(root / f"jobs_of_{job_size}", data, args)
    if args.weights:  # where the jobs load the demo's autoencoder from (its .json beside it)
        weights = demo_model_weights(cfg)
        weights.parent.mkdir(parents=True, exist_ok=True)
        for src in (args.weights, args.weights.with_suffix(".json")):
            shutil.copy2(src, weights.with_suffix(src.suffix))
    entries = build_plan(cfg).splits[split]
    prepare_chunk(entries, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    ids = [e.image_id for e in entries]
    out = {}
    for arm in ARMS:
        for start in range(0, len(ids), job_size):
            optimize_chunk(**optimize_job_args(cfg, arm, split, ids[start:start + job_size]), device="cpu", log=lambda m: None)
        for i in ids:
            rec = read_json(layout.per_image(cfg["results_dir"], arm, split, i, "json"))
            if rec["status"] != "ok":
                continue
            payload = torch.load(layout.per_image(cfg["results_dir"], arm, split, i, "pt"), weights_only=True)
            out[f"{arm}/{i}"] = {"payload": payload, "final": rec["final"], "batch": rec.get("batch")}
    return out


def compare(a: dict, b: dict) -> dict:
    rows = {}
    for key in a:
        pa, pb = a[key]["payload"], b[key]["payload"]
        z = (pa["z"] - pb["z"]).abs().max().item()
        hist = max((abs(x - y) for x, y in zip(pa["loss_history"], pb["loss_history"])), default=0.0)
        rows[key] = {"z_max_abs_diff": z, "loss_history_max_abs_diff": hist,
                     "decoded_pixels_differing": int((pa["decoded"] != pb["decoded"]).sum()),
                     "steps": [len(pa["loss_history"]), len(pb["loss_history"])],
                     "final_psnr_diff_db": b[key]["final"]["psnr"] - a[key]["final"]["psnr"],
                     "bit_identical": z == 0 and hist == 0 and torch.equal(pa["decoded"], pb["decoded"])}
    return {"images": len(rows), "bit_identical": sum(r["bit_identical"] for r in rows.values()),
            "max_final_psnr_abs_diff_db": max(abs(r["final_psnr_diff_db"]) for r in rows.values()),
            "max_z_abs_diff": max(r["z_max_abs_diff"] for r in rows.values()), "per_image": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("chunking.json"))
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="chunking_") as tmp:
        root = Path(tmp)
        data = root / "data"
        write_demo_data(data)
        runs = {n: run_split(root, data, args.split, n, args) for n in (4, 2, 1)}
    report = {"code": os.environ.get("PYTHONPATH", ""), "torch": torch.__version__, "batch_size": args.batch_size,
              "iterations": args.iterations, "model": str(args.weights or "synthetic_kl"), "split": args.split,
              "jobs_of_2_vs_4": compare(runs[4], runs[2]), "jobs_of_1_vs_4": compare(runs[4], runs[1])}
    args.out.write_text(json.dumps(report, indent=2))
    for k in ("jobs_of_2_vs_4", "jobs_of_1_vs_4"):
        r = report[k]
        print(f"{k}: {r['bit_identical']}/{r['images']} images bit-identical, max |d final PSNR| "
              f"{r['max_final_psnr_abs_diff_db']:.2e} dB, max |d z| {r['max_z_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
