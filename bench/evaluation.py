"""Evaluation section (``bench/benchmark.py --evaluation``): the CPU time of the per-image
evaluation one image at a time vs in batches, as ratios measured in one run.

What is timed is ``latentopt.analysis.scoring.per_image_table``, the code of the evaluate_dataset
job (PNG reads, PSNR/SSIM/MSE/MAE and LPIPS-alex/vgg through the metric networks, the numpy visual
metrics), on a results folder of synthetic pairs written once under ``--work-dir``: ``--pairs``
(default 64 of 256x256, 12 of 320x480 and 4 of 480x320, the BSDS500 sizes after the pipeline's
crop), shuffled into one plan order so that the shapes are mixed. LPIPS trunks are random (the
same layers and FLOPs as the calibrated ones; no weights needed).

Each configuration (``--batch-sizes`` x ``--threads``) runs in a child process of its own (its
imports and networks built before the clock starts; its peak memory, ru_maxrss, is its own), in
``--repeats`` rounds that interleave the configurations (the median is reported). Per
configuration: CPU s (``time.process_time`` around the call: user + system of all threads), its
user and system parts, wall s, minor page faults, peak RSS, the CPU ratio to batch 1 at the same
threads (> 1: batching saves CPU) and the largest difference of each metric from batch 1's table
(the rows and their order compared too).

    python bench/benchmark.py --evaluation                       # the default pairs, batch 1 / 8
    python bench/benchmark.py --evaluation --pairs 64:64x96 --batch-sizes 1,8 --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import LIBRARY, REPO, log, run_recorded, write_json

ARM, SPLIT = "bench", "test"
METRICS_RTOL = 1e-9  # the float64 metrics' tolerance against batch 1, as tests/test_scoring_batches.py


def parse_pairs(text: str) -> tuple[int, int, int]:
    """``N:HxW`` -> (N, H, W)."""
    n, size = text.split(":")
    h, w = (int(v) for v in size.lower().split("x"))
    return int(n), h, w


def write_pairs(root: Path, pairs: list[tuple[int, int, int]], seed: int) -> tuple[Path, list[Path]]:
    """A results folder under ``root`` with each pair's original and reconstruction PNG and its
    per-image record (written once; kept between runs): the folder and the records in plan order."""
    import numpy as np

    sys.path.insert(0, str(LIBRARY))
    from latentopt.core.fileio import write_json as write_record
    from latentopt.data.images import write_png
    from latentopt.workflow import layout

    name = "_".join(f"{n}x{h}x{w}" for n, h, w in pairs) + f"_seed{seed}"
    results = root / name
    done = results / ".complete"
    shapes = [(h, w) for n, h, w in pairs for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(shapes))
    records = [layout.per_image(results, ARM, SPLIT, f"img_{i:04d}", "json") for i in range(len(shapes))]
    if done.exists():
        return results, records
    rng = np.random.default_rng(seed)
    for i, k in enumerate(order):
        h, w = shapes[k]
        image_id = f"img_{i:04d}"
        # a smooth reference (upsampled noise) and a noisy reconstruction of it
        coarse = rng.random((h // 8 + 1, w // 8 + 1, 3))
        ref = np.round(255 * np.kron(coarse, np.ones((8, 8, 1)))[:h, :w]).astype(np.uint8)
        pred = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).round().astype(np.uint8)
        write_png(layout.original_png(results, SPLIT, image_id), ref)
        write_png(layout.dataset_png_dir(results, ARM) / SPLIT / f"{image_id}.png", pred)
        write_record(records[i], {"arm": ARM, "split": SPLIT, "image_id": image_id, "status": "ok", "reason": None,
                                  "initial": {"psnr": 0.0}})
    done.write_text(str(len(shapes)))
    return results, records


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
args = json.loads(sys.argv[2])
from latentopt.analysis.scoring import per_image_table
from latentopt.compute.devices import torch_threads
from latentopt.metrics.lpips_network import lpips_network
with torch_threads(args["threads"]):
    nets = {net: lpips_network(net, random_trunk=True, device=args["device"]) for net in args["nets"]}
    r0, cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    table = per_image_table(args["records"], args["results"], nets, batch_size=args["batch_size"])
    cpu, wall, r1 = time.process_time() - cpu0, time.perf_counter() - wall0, resource.getrusage(resource.RUSAGE_SELF)
table.to_csv(args["table"], index=False)
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "minflt": r1.ru_minflt - r0.ru_minflt, "maxrss_mb": r1.ru_maxrss / 1024, "rows": len(table)}))
"""


def run_child(records: list[Path], results: Path, batch_size: int, threads: int, args, table: Path) -> dict:
    spec = {"records": [str(r) for r in records], "results": str(results), "batch_size": batch_size,
            "threads": threads, "nets": args.nets, "device": args.device, "table": str(table)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(LIBRARY), json.dumps(spec)], capture_output=True, text=True,
                         timeout=args.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"batch {batch_size}, {threads} threads failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table_differences(reference: Path, other: Path) -> dict:
    """Largest absolute and relative difference of each metric column of ``other`` from
    ``reference`` (the same rows in the same order, else an error)."""
    import numpy as np
    import pandas as pd

    a, b = pd.read_csv(reference), pd.read_csv(other)
    if list(a.columns) != list(b.columns) or a[["split", "image_id", "status"]].values.tolist() != b[["split", "image_id", "status"]].values.tolist():
        raise RuntimeError(f"{other} does not hold {reference}'s rows and columns in their order")
    out = {}
    for col in ("psnr", "ssim", "mse", "mae", *(c for c in a.columns if c.startswith("lpips_")), "gmsd", "delta_e00", "sharpness_ratio"):
        if col not in a.columns:
            continue
        x, y = a[col].to_numpy(float), b[col].to_numpy(float)
        finite = np.isfinite(x) & np.isfinite(y)
        if not np.array_equal(np.isfinite(x), np.isfinite(y)) or not np.array_equal(x[~finite], y[~finite]):
            raise RuntimeError(f"{col}: non-finite values differ")
        diff = np.abs(x[finite] - y[finite])
        rel = diff / np.maximum(np.abs(x[finite]), np.finfo(float).tiny)
        out[col] = {"max_abs": float(diff.max(initial=0.0)), "max_rel": float(rel.max(initial=0.0))}
    return out


def run_evaluation(args) -> dict:
    pairs = [parse_pairs(p) for p in args.pairs]
    work = Path(args.work_dir)
    results, records = write_pairs(work, pairs, args.seed)
    configs = [(b, t) for t in args.threads for b in args.batch_sizes]
    if 1 not in args.batch_sizes:
        raise SystemExit("--batch-sizes must include 1 (the one-at-a-time reference)")
    runs: dict[str, list[dict]] = {f"b{b}_t{t}": [] for b, t in configs}
    tables = work / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    for r in range(args.repeats):
        for b, t in configs:
            key = f"b{b}_t{t}"
            log(f"round {r + 1}/{args.repeats}: batch {b}, {t} thread(s)")
            runs[key].append(run_child(records, results, b, t, args, tables / f"{key}.csv"))
    summary = {}
    for b, t in configs:
        key = f"b{b}_t{t}"
        med = {k: statistics.median(x[k] for x in runs[key]) for k in ("cpu_s", "wall_s", "user_s", "sys_s", "minflt", "maxrss_mb")}
        summary[key] = {"batch_size": b, "threads": t, **med, "runs": runs[key]}
    for b, t in configs:
        key, ref = f"b{b}_t{t}", summary[f"b1_t{t}"]
        summary[key]["cpu_ratio_vs_b1"] = ref["cpu_s"] / summary[key]["cpu_s"]
        summary[key]["wall_ratio_vs_b1"] = ref["wall_s"] / summary[key]["wall_s"]
        summary[key]["diff_vs_b1_t1"] = table_differences(tables / "b1_t1.csv", tables / f"{key}.csv") if "b1_t1" in summary else None
    return {"pairs": [{"n": n, "height": h, "width": w} for n, h, w in pairs], "images": len(records), "nets": args.nets,
            "device": args.device, "repeats": args.repeats, "configs": summary}


def format_evaluation(result: dict) -> str:
    pairs = ", ".join(f"{p['n']} of {p['height']}x{p['width']}" for p in result["pairs"])
    lines = [f"per_image_table CPU s, {result['images']} pairs ({pairs}); LPIPS {', '.join(result['nets'])}; "
             f"{result['device']}; median of {result['repeats']}",
             f"{'batch':>6}{'threads':>8}{'CPU s':>9}{'user s':>9}{'sys s':>8}{'wall s':>9}{'CPU/img':>9}{'minflt':>10}"
             f"{'peak MB':>9}{'CPU ratio':>11}{'wall ratio':>11}"]
    for c in result["configs"].values():
        lines.append(f"{c['batch_size']:>6}{c['threads']:>8}{c['cpu_s']:9.1f}{c['user_s']:9.1f}{c['sys_s']:8.1f}{c['wall_s']:9.1f}"
                     f"{c['cpu_s'] / result['images']:9.3f}{int(c['minflt']):>10}{c['maxrss_mb']:9.0f}"
                     f"{c['cpu_ratio_vs_b1']:11.3f}{c['wall_ratio_vs_b1']:11.3f}")
    lines.append("(CPU ratio = CPU s of batch 1 / CPU s of this batch size at the same threads; > 1: batching saves CPU)")
    lines.append("")
    lines.append("largest difference from batch 1, 1 thread (max abs / max rel over the images):")
    for c in result["configs"].values():
        d = c.get("diff_vs_b1_t1")
        if d and (c["batch_size"], c["threads"]) != (1, 1):
            lines.append(f"  batch {c['batch_size']}, {c['threads']} thread(s): "
                         + "; ".join(f"{k} {v['max_abs']:.2e}/{v['max_rel']:.2e}" for k, v in d.items()))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="benchmark.py --evaluation", description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", nargs="+", default=["64:256x256", "12:320x480", "4:480x320"],
                   help="N:HEIGHTxWIDTH groups of synthetic pairs, shuffled together (default 64:256x256 12:320x480 4:480x320)")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1, 8],
                   help="comma list, must hold 1 (default 1,8)")
    p.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1],
                   help="comma list of torch intra-op threads (default 1)")
    p.add_argument("--nets", type=lambda s: s.split(","), default=["alex", "vgg"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1, help="rounds over the configurations (median reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    p.add_argument("--work-dir", default=str(REPO / "bench" / "out" / "evaluation"), help="the pairs and tables (kept)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "evaluation.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = " ".join(["benchmark.py", "--evaluation", *(sys.argv[1:] if argv is None else argv)])
    return run_recorded("latentopt-benchmark-evaluation/1", lambda: run_evaluation(args), format_evaluation, Path(args.out),
                        command=command)

if __name__ == "__main__":
    sys.exit(main())
