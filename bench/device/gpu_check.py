#!/usr/bin/env python
"""Every GPU measurement of issue 12 in ONE call, inside a time budget (a device lends ~10 minutes
per command): run it once, keep the folder it writes.

Steps (each a ``bench/benchmark.py`` subprocess with its own timeout, so a slow step cannot eat the
others' time; each leaves its JSON, or the ``.partial.json`` of what it measured before its limit):

1. ``taef2_quality`` -- TAEF2 (real pretrained weights), BSDS500 crops 480x320, psnr loss, 50
   iterations: every candidate against fp32 on the same images (PSNR/SSIM/LPIPS deltas).
2. ``sd_vae_throughput`` -- the full-size SD-VAE architecture (random weights), same crops, 20
   iterations: img-it/s, MFU, peak memory and the quality deltas of every candidate against fp32
   batch 8. Compiled graphs land in the shared Inductor cache (``<work-dir>/inductor_cache``),
   which step 3's pipeline jobs reuse.
3. ``end_to_end`` -- the real pipeline (baseline + psnr + ssim + lpips, evaluation, report) on N
   BSDS500 images of the test split with the **fastest candidate that matched fp32 in steps 1 and
   2** (else today's default, tf32 eager), ``--resources gpu=2`` (the next job's start-up overlaps
   the current job's compute): per-rule and per-job-stage wall times, orchestration efficiency,
   MFU in the Adam loop, a 500-image projection.

Candidates (decoder inside the Adam loop only; published decode and metrics stay exact fp32):
tf32 (today's default), fp16 (with gradient scaling), fp16 with the last 5 steps in fp32, each of
these with torch.compile, and tf32 + CUDA graphs (compile mode reduce-overhead). bf16 is not a
candidate (-0.19 dB on TAEF2 on 2026-11-22).

    python bench/device/gpu_check.py --out-dir "$OUT/issue12"            # on the GPU machine (~9.5 min)
    python bench/device/gpu_check.py --cpu-check --out-dir /tmp/gpu_check # the same steps, tiny, on a CPU

Writes ``summary.json``, ``summary.txt`` and each step's JSON and log into ``--out-dir`` (8 files,
what the device tool brings back from $OUT); the end-to-end results folder stays in ``--work-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BENCH = REPO / "bench" / "benchmark.py"

# (label, throughput-config suffix) in the order measured; the e2e flags each maps to
# (label, throughput-config pattern): eager candidates first, compiled ones after (each compilation
# costs ~tens of seconds cold), so a step stopped by its time limit still has the cheap ones
CANDIDATES = [
    ("tf32", "tf32:{b}"),
    ("fp16", "fp16:{b}"),
    ("fp16+last5-fp32", "fp16:{b}:last5"),
    ("tf32+compile", "tf32:{b}:compile"),
    ("fp16+compile", "fp16:{b}:compile"),
    ("fp16+compile+last5-fp32", "fp16:{b}:compile:last5"),
    ("tf32+cudagraphs", "tf32:{b}:cg"),
]
E2E_FLAGS = {  # the pipeline settings (benchmark.py --e2e-*) of each candidate
    "tf32": ["--e2e-precision", "tf32"],
    "fp16": ["--e2e-precision", "fp16"],
    "fp16+last5-fp32": ["--e2e-precision", "fp16", "--e2e-final-steps", "5"],
    "tf32+compile": ["--e2e-precision", "tf32", "--e2e-compile"],
    "fp16+compile": ["--e2e-precision", "fp16", "--e2e-compile"],
    "fp16+compile+last5-fp32": ["--e2e-precision", "fp16", "--e2e-compile", "--e2e-final-steps", "5"],
    "tf32+cudagraphs": ["--e2e-precision", "tf32", "--e2e-compile", "--e2e-compile-mode", "reduce-overhead"],
}


def _name(cfg: str) -> str:
    """bench Config name of a config string (what the benchmark JSON calls the row)."""
    from bench.configs import parse_config

    return parse_config(cfg).name


def run_step(name: str, argv: list[str], timeout: float, out_dir: Path, env: dict) -> dict:
    out = out_dir / f"{name}.json"
    cmd = [sys.executable, str(BENCH), *argv, "--out", str(out)]
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {name}: {timeout:.0f} s budget: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    with open(out_dir / f"{name}.log", "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, timeout=max(1.0, timeout),
                                env=env).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - t0
    from bench.common import partial_path

    data, source = None, None
    for path in (out, partial_path(out)):
        if path.is_file():
            data, source = json.loads(path.read_text()), path.name
            break
    print(f"[gpu_check] {name}: rc {rc}, {wall:.0f} s, data from {source}", flush=True)
    return {"name": name, "command": cmd[1:], "returncode": rc, "wall_s": wall, "json": source, "data": data}


def rows_with_quality(data: dict | None, thresholds: dict) -> dict[str, dict]:
    """Throughput rows by name with quality deltas vs the fp32 reference, also from a partial run
    (deltas are then computed here, the same way the benchmark does)."""
    from bench.quality import quality_deltas

    if not data:
        return {}
    if data.get("throughput"):
        return {r["name"]: r for r in data["throughput"]["configs"]}
    rows = (data.get("throughput_partial") or {}).get("configs", [])
    fp32 = [r for r in rows if r["precision"] == "fp32" and not (r["compile"] or r["channels_last"] or r["checkpointing"])]
    ref = max(fp32, key=lambda r: r["batch"]) if fp32 else None
    for r in rows:
        r["quality"] = quality_deltas(r, ref, thresholds) if ref else None
    return {r["name"]: r for r in rows}


def choose(taef2: dict, sd: dict, batch_taef2: int, batch_sd: int, candidates=CANDIDATES,
           fallback: str = "tf32") -> tuple[str, list[dict]]:
    """The fastest candidate (SD-VAE img-it/s) whose quality matched fp32 on BOTH models; else
    ``fallback`` (today's default)."""
    table, best = [], (fallback, None)
    for label, pattern in candidates:
        t = taef2.get(_name(pattern.format(b=f"b{batch_taef2}")))
        s = sd.get(_name(pattern.format(b=f"b{batch_sd}")))
        ok = all(r and r.get("quality") and r["quality"]["matches_fp32"] for r in (t, s))
        speed = s["image_iterations_per_s"] if s else None
        table.append({"candidate": label, "matches_fp32_taef2": (t or {}).get("quality", {}) and t["quality"]["matches_fp32"],
                      "matches_fp32_sd_vae": (s or {}).get("quality", {}) and s["quality"]["matches_fp32"],
                      "taef2_delta_psnr": t["quality"]["delta_psnr_mean"] if t and t.get("quality") else None,
                      "taef2_delta_ssim": t["quality"]["delta_ssim_mean"] if t and t.get("quality") else None,
                      "taef2_delta_lpips": t["quality"]["delta_lpips_mean"] if t and t.get("quality") else None,
                      "sd_vae_delta_psnr": s["quality"]["delta_psnr_mean"] if s and s.get("quality") else None,
                      "sd_vae_image_iterations_per_s": speed, "sd_vae_mfu": (s or {}).get("mfu"),
                      "sd_vae_warmup_s": (s or {}).get("warmup_s"), "qualifies": ok})
        if ok and speed and (best[1] is None or speed > best[1]):
            best = (label, speed)
    return best[0], table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default=None, help="default: $OUT/issue12 when $OUT is set, else bench/out/gpu_check")
    p.add_argument("--work-dir", default="/tmp/latentopt_gpu_check",
                   help="the shared Inductor cache and the end-to-end run's results (many files: kept out "
                        "of --out-dir, which holds 8 files)")
    p.add_argument("--budget-s", type=float, default=540, help="wall seconds for all steps together")
    p.add_argument("--cpu-check", action="store_true",
                   help="prove the script on a CPU: tiny sizes, few iterations (numbers mean nothing)")
    p.add_argument("--e2e-images", type=int, default=None, help="images of the end-to-end run (GPU default 16)")
    p.add_argument("--share", default="0.25,0.35", help="budget fractions of steps 1 and 2 (step 3 gets the rest)")
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir or (Path(os.environ["OUT"]) / "issue12" if os.environ.get("OUT") else REPO / "bench" / "out" / "gpu_check"))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "inductor_cache"
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache.absolute()), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    deadline = start + args.budget_s
    f1, f2 = (float(x) for x in args.share.split(","))

    if args.cpu_check:
        dev = ["--device", "cpu", "--quick", "--size", "32x48", "--iterations", "3", "--warmup", "1",
               "--loss-iterations", "1"]
        bt, bs = 2, 2
        e2e = ["--device", "cpu", "--quick", "--size", "32x48", "--e2e-images", str(args.e2e_images or 3),
               "--e2e-iterations", "2", "--e2e-batch-size", "2", "--snakemake-cores", "2"]
        # no TF32 or CUDA graphs on a CPU
        candidates = [("fp32", "fp32:{b}"), ("fp16", "fp16:{b}"), ("fp16+last1-fp32", "fp16:{b}:last1"),
                      ("fp32+compile", "fp32:{b}:compile")]
        E2E_FLAGS.update({"fp32": ["--e2e-precision", "fp32"],
                          "fp16+last1-fp32": ["--e2e-precision", "fp16", "--e2e-final-steps", "1"],
                          "fp32+compile": ["--e2e-precision", "fp32", "--e2e-compile"]})
    else:
        dev = ["--device", "cuda", "--full", "--iterations", "50", "--warmup", "1", "--loss-iterations", "3"]
        bt, bs = 16, 8
        e2e = ["--device", "cuda", "--full", "--e2e-images", str(args.e2e_images or 16), "--gpu-jobs", "2",
               "--snakemake-cores", str(min(16, os.cpu_count() or 1))]
        candidates = CANDIDATES
    env_info = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "inductor_cache": str(cache)}
    try:
        env_info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm",
             "--format=csv"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        env_info["nvidia_smi"] = None
    steps = {}

    taef2_cfgs = ",".join(dict.fromkeys([f"fp32:b{bt}"] + [c[1].format(b=f"b{bt}") for c in candidates]))
    steps["taef2_quality"] = run_step(
        "taef2_quality", dev + ["--model", "taef2", "--sections", "throughput", "--configs", taef2_cfgs],
        f1 * args.budget_s, out_dir, env)
    sd_iters = ["--iterations", "3"] if args.cpu_check else ["--iterations", "20"]
    sd_cfgs = ",".join(dict.fromkeys([f"fp32:b{bs}"] + [c[1].format(b=f"b{bs}") for c in candidates]))
    model = "synthetic_kl" if args.cpu_check else "sd_vae"
    steps["sd_vae_throughput"] = run_step(
        "sd_vae_throughput", dev + sd_iters + ["--model", model, "--sections", "throughput", "--configs", sd_cfgs],
        min(f2 * args.budget_s, deadline - time.perf_counter() - 60), out_dir, env)

    thresholds = {"psnr_db": 0.05, "ssim": 0.001, "lpips": 0.001}
    taef2_rows = rows_with_quality(steps["taef2_quality"]["data"], thresholds)
    sd_rows = rows_with_quality(steps["sd_vae_throughput"]["data"], thresholds)
    chosen, table = choose(taef2_rows, sd_rows, bt, bs, candidates, "fp32" if args.cpu_check else "tf32")
    flags = E2E_FLAGS.get(chosen, ["--e2e-precision", chosen])
    print(f"[gpu_check] end-to-end candidate: {chosen} ({' '.join(flags)})", flush=True)
    steps["end_to_end"] = run_step(
        "end_to_end", e2e + flags + ["--sections", "end_to_end", "--e2e-dir", str(work / "e2e"),
                                     "--e2e-timeout", str(max(30.0, deadline - time.perf_counter() - 20))],
        deadline - time.perf_counter(), out_dir, env)

    summary = {
        "issue": 12, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_check": args.cpu_check,
        "environment": env_info, "budget_s": args.budget_s, "wall_s": time.perf_counter() - start,
        "steps": {k: {kk: vv for kk, vv in v.items() if kk != "data"} for k, v in steps.items()},
        "candidates": table, "end_to_end_candidate": chosen,
        "quality_thresholds": thresholds,
        "end_to_end": (steps["end_to_end"]["data"] or {}).get("end_to_end")
        or (steps["end_to_end"]["data"] or {}).get("end_to_end_partial"),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    lines = [f"issue 12 GPU check ({'CPU check: numbers mean nothing' if args.cpu_check else 'GPU'}), "
             f"{summary['wall_s']:.0f} s of {args.budget_s:.0f}"]
    if env_info.get("nvidia_smi"):
        lines.append(env_info["nvidia_smi"].strip())
    for k, v in summary["steps"].items():
        lines.append(f"{k}: rc {v['returncode']}, {v['wall_s']:.0f} s, {v['json']}")
    lines.append("candidate | TAEF2 dPSNR dSSIM dLPIPS =fp32 | SD-VAE dPSNR =fp32 | SD-VAE img-it/s MFU warm-up s")
    for r in table:
        def f(v, spec):
            return "-" if v is None else format(v, spec)
        lines.append(f"{r['candidate']} | {f(r['taef2_delta_psnr'], '+.3f')} {f(r['taef2_delta_ssim'], '+.4f')} "
                     f"{f(r['taef2_delta_lpips'], '+.4f')} {r['matches_fp32_taef2']} | {f(r['sd_vae_delta_psnr'], '+.3f')} "
                     f"{r['matches_fp32_sd_vae']} | {f(r['sd_vae_image_iterations_per_s'], '.2f')} "
                     f"{f(r['sd_vae_mfu'], '.3f')} {f(r['sd_vae_warmup_s'], '.0f')}")
    lines.append(f"end to end with: {chosen}")
    if summary["end_to_end"] and summary["end_to_end"].get("phases"):
        from bench.end_to_end import format_end_to_end

        try:
            lines += format_end_to_end(summary["end_to_end"])
        except (KeyError, TypeError) as exc:  # a partial run lacks fields
            lines.append(f"(end to end incomplete: {exc!r})")
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(v["returncode"] == 0 for v in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
