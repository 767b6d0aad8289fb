#!/usr/bin/env python
"""Benchmark of the latent optimization: every figure is a RATIO MEASURED IN ONE RUN.

Sections (see bench/README.md for what each number means):

1. throughput -- image-iterations/s of ``latentopt.optimize.optimizer.optimize_latents`` (the code the
   pipeline runs) for configurations of images per batch, precision (fp32, TF32, bf16 autocast with
   fp32 latents/loss/Adam), channels_last, torch.compile and gradient checkpointing; each as a ratio
   to the fp32 batch-1 baseline, with peak memory per image, activation bytes saved for backward per
   image, model-FLOP utilisation (GPU only; FLOPs counted with torch.utils.flop_counter.FlopCounterMode
   for the model and size used) and the final PSNR/SSIM/LPIPS deltas against fp32 on the same images.
2. orchestration -- efficiency = sum of the per-image ``optimization_time_s`` records / wall time of
   the ``snakemake`` command, measured by running the pipeline (tmp results_dir) on the demo data
   and on N images for several ``run.images_per_job`` values.
3. projection -- the full experiment (3 losses x 500 images x their iterations from config.yaml) from
   the measured per-loss throughput plus the measured orchestration overhead; the <= 15 min on one
   H100 verdict is only given for a GPU measurement of the full-size SD-VAE at 480x320.

    python bench/benchmark.py --quick                 # CI-sized CPU run (< 3 min on 2 cores)
    python bench/benchmark.py --device cuda --full    # the GPU run (full SD-VAE, 480x320 crops)
    python bench/benchmark.py --smoke                 # seconds; used by tests/test_benchmark.py
    python bench/benchmark.py --scale --sizes 500 2000  # every stage's CPU as the images grow (bench/scale.py)
    python bench/benchmark.py --evaluation            # per-image evaluation one at a time vs batched (bench/evaluation.py)
    python bench/benchmark.py --scale-stages          # the stages after the per-image work, 500-50,000 images (bench/scale_stages.py)

Writes JSON to --out (default bench/out/benchmark.json) and prints tables.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, SCHEMA_VERSION, _cpu_model, _git, _loadavg, partial_path, write_json  # noqa: E402
from bench.configs import MODES, Config, parse_config  # noqa: E402,F401 - re-exported for tests
from bench.end_to_end import format_end_to_end, run_end_to_end  # noqa: E402
from bench.flops import PEAK_FLOPS, gpu_peak, sd_vae_reference_flops  # noqa: E402,F401
from bench.orchestration import _fit, run_orchestration  # noqa: E402,F401
from bench.projection import projection  # noqa: E402
from bench.quality import quality_deltas  # noqa: E402,F401
from bench.tables import format_tables  # noqa: E402
from bench.throughput import run_throughput  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick", help="CI-sized run (default)")
    g.add_argument("--full", action="store_const", dest="mode", const="full", help="the full GPU run")
    g.add_argument("--smoke", action="store_const", dest="mode", const="smoke", help="seconds-long test run")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "benchmark.json"))
    p.add_argument("--machine", default=None, help="how to name the machine in the output (default: detected)")
    p.add_argument("--sections", default="throughput,orchestration",
                   help="comma list: throughput, orchestration, end_to_end")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the throughput section (default on CPU: 1, as the "
                        "pipeline's jobs run: Snakemake sets OMP_NUM_THREADS to the rule's threads = 1; "
                        "0 = torch's default)")
    p.add_argument("--model", default="auto", choices=["auto", "sd_vae", "taef2", "synthetic_kl"])
    p.add_argument("--images", default="auto", choices=["auto", "bsds", "skimage"])
    p.add_argument("--size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=None,
                   help="crop HEIGHTxWIDTH (default by mode/device)")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="fp32 batch sizes only (drops the precision/layout extras)")
    p.add_argument("--configs", type=lambda s: [parse_config(v) for v in s.split(",")], default=None,
                   help="exactly these configs, e.g. fp32:b16,tf32:b8:compile,fp16:b8:compile:last10,tf32:b8:cg "
                        "(precision:bBATCH[:cl][:compile][:cg][:ckpt][:lastK]: cl channels_last, cg CUDA graphs "
                        "= compile mode reduce-overhead, lastK the last K steps in fp32); fp32 b1 and the fp32 "
                        "quality reference are added")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="torch.backends.cudnn.benchmark = True (autotuning; the pipeline leaves it off)")
    p.add_argument("--precisions", type=lambda s: s.split(","), default=None, help="keep only these precisions")
    p.add_argument("--iterations", type=int, default=None, help="timed Adam iterations per config")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--loss-iterations", type=int, default=None, help="timed iterations per loss (projection)")
    p.add_argument("--compile", action="store_true", help="add a torch.compile config (default only on --full)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--max-dpsnr", type=float, default=0.05, help="|mean dPSNR| (dB) for 'matches fp32'")
    p.add_argument("--max-dssim", type=float, default=0.001)
    p.add_argument("--max-dlpips", type=float, default=0.001)
    p.add_argument("--orch-sets", type=lambda s: s.split(","), default=None, help="demo,n_images")
    p.add_argument("--images-per-job", type=lambda s: [int(v) for v in s.split(",")], default=None)
    p.add_argument("--n-images", type=int, default=None, help="images of the N-image orchestration run")
    p.add_argument("--orch-losses", type=lambda s: s.split(","), default=None)
    p.add_argument("--orch-iterations", type=int, default=None, help="override every loss's iterations")
    p.add_argument("--orch-baseline", action="store_true", help="also run the baseline arm")
    p.add_argument("--orch-repeats", type=int, default=1, help="rounds over the images_per_job values (median reported)")
    p.add_argument("--orch-precision", choices=["fp32", "tf32", "bf16", "fp16"], default=None,
                   help="run.precision of the pipeline runs (default: config.yaml's)")
    p.add_argument("--orch-batch-size", type=int, default=None, help="run.batch_size of the pipeline runs")
    p.add_argument("--merge", default=None,
                   help="an earlier benchmark JSON: sections this run skips are taken from it (e.g. a GPU "
                        "run split into --sections throughput and --sections orchestration)")
    p.add_argument("--snakefile", default=None)
    p.add_argument("--snakemake-cores", type=int, default=1)
    p.add_argument("--gpu-jobs", type=int, default=1,
                   help="--resources gpu=N of the GPU pipeline runs: 2 per GPU lets the next job start "
                        "up while the current one computes (the GPU lease keeps one computing)")
    p.add_argument("--snakemake-timeout", type=int, default=1800)
    e = p.add_argument_group("end_to_end section (the real pipeline: every arm, evaluation, report)")
    e.add_argument("--e2e-images", type=int, default=None, help="images (default: 16 on CUDA, 4 on the CPU)")
    e.add_argument("--e2e-split", default="test", help="the one BSDS500 split they come from")
    e.add_argument("--e2e-images-per-job", type=int, default=100)
    e.add_argument("--e2e-batch-size", type=int, default=8)
    e.add_argument("--e2e-precision", choices=["fp32", "tf32", "bf16", "fp16"], default="tf32")
    e.add_argument("--e2e-final-steps", type=int, default=0, help="run.final_precision_steps")
    e.add_argument("--e2e-compile", action="store_true", help="run.compile.enabled")
    e.add_argument("--e2e-compile-mode", default="default", help="run.compile.mode")
    e.add_argument("--e2e-iterations", type=int, default=None, help="override every loss's iterations")
    e.add_argument("--e2e-timeout", type=float, default=1800, help="seconds for both snakemake commands")
    e.add_argument("--e2e-dir", default=None, help="work folder (kept); default a temporary one")
    p.add_argument("--inductor-cache", default=None,
                   help="Inductor on-disk cache for every compilation of this run, the pipeline's jobs "
                        "included (sets TORCHINDUCTOR_CACHE_DIR); default: torch's own")
    p.add_argument("--keep-results", action="store_true")
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    if args.inductor_cache:
        args.inductor_cache = str(Path(args.inductor_cache).absolute())
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.inductor_cache  # before any compilation
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--scale-stages" in argv:  # its own section and options: bench/scale_stages.py
        from bench.scale_stages import main as scale_stages_main

        return scale_stages_main([a for a in argv if a != "--scale-stages"])
    if "--scale" in argv:  # its own section and options: bench/scale.py
        from bench.scale import main as scale_main

        return scale_main([a for a in argv if a != "--scale"])
    if "--evaluation" in argv:  # its own section and options: bench/evaluation.py
        from bench.evaluation import main as evaluation_main

        return evaluation_main([a for a in argv if a != "--evaluation"])
    args = parse_args(argv)
    mode = MODES[args.mode]
    started = time.perf_counter()
    import torch

    device_name = args.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but no CUDA device is available")
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    import diffusers

    try:
        from importlib.metadata import version
        snakemake_version = version("snakemake")
    except Exception:  # noqa: BLE001
        snakemake_version = None
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    desc = args.machine or (f"{gpu}" if gpu else f"{os.cpu_count()}-core CPU ({_cpu_model()})")
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION, "mode": args.mode,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"description": desc, "device": str(device), "gpu": gpu, "cpu_model": _cpu_model(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "diffusers": diffusers.__version__, "snakemake": snakemake_version,
                    "loadavg_start": _loadavg(), "git_commit": _git("rev-parse", "HEAD"),
                    "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))},
        "gpu_figures": ("measured on " + gpu) if gpu else
        "still to be measured: no GPU in this run (MFU, peak GPU memory, TF32, the 15-min H100 verdict "
        "need `python bench/benchmark.py --device cuda --full` on an H100)",
    }
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    if "throughput" in sections:
        run_throughput(args, mode, device, result)
    if "orchestration" in sections:
        run_orchestration(args, mode, device.type, result)
    if "end_to_end" in sections:
        args.e2e_images = args.e2e_images or (16 if device.type == "cuda" else 4)
        _, peak = gpu_peak(gpu)
        flops = sd_vae_reference_flops(320, 480)["decoder_forward_backward_frozen"] if device.type == "cuda" else None
        run_end_to_end(args, device.type, result, flops, peak)
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        taken = [k for k in ("setup", "flops", "peak_flops", "checkpointing_check", "throughput", "per_loss",
                             "orchestration", "end_to_end") if k not in result and k in earlier]
        for k in taken:
            result[k] = earlier[k]
        result["merged_from"] = {"path": str(args.merge), "sections": taken, "created": earlier.get("created"),
                                 "machine": earlier.get("machine")}
    result["projection"] = projection(result, device.type, args.mode, args)
    result["machine"]["loadavg_end"] = _loadavg()
    result["elapsed_s"] = time.perf_counter() - started
    out = Path(args.out)
    write_json(result, out)
    partial_path(out).unlink(missing_ok=True)
    print(format_tables(result))
    if result.get("end_to_end"):
        print("\n".join(format_end_to_end(result["end_to_end"])))
    print(f"\n(JSON: {out}; {result['elapsed_s']:.0f} s)")
    failed = result.get("orchestration", {}).get("errors")
    e2e_failed = any(ph.get("returncode") != 0 for ph in result.get("end_to_end", {}).get("phases", {}).values())
    return 1 if failed or e2e_failed else 0


if __name__ == "__main__":
    sys.exit(main())
