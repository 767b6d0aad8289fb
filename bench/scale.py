"""Scale section (``bench/benchmark.py --scale``, ``make bench-scale``): every stage's CPU as the
number of images grows, as ratios measured in one run.

For each N of ``--sizes`` (default 500 5000 50000) a flat folder of N small random images
(``--image-size``, default 64x64) is written once under the work folder, and:

* planning: the CPU (user + system of the snakemake process and its children,
  ``resource.getrusage(RUSAGE_CHILDREN)``) of ``snakemake -n`` and ``snakemake --summary`` on a
  fresh results folder, for the demo's arms (baseline + psnr, ssim, lpips: demo/config.yaml with
  the synthetic KL autoencoder), and of ``snakemake -n`` again once the stage run below finished
  (the plan every resume pays); ``--plan-only-sizes`` adds sizes planned but not run;
* stages: the pipeline run to its report (baseline + the psnr arm at ``--iterations``, so that the
  optimization stays small), and each stage's CPU read from the ``cpu_time`` of its jobs'
  Snakemake benchmark files (results/benchmarks/<stage>/...), summed per stage: prepare,
  optimize, features (Inception), build_dataset, evaluate (per-image metrics, bootstrap, FID/KID),
  the analyses (summarize_evaluation, test_hypotheses, analyze_categories), report.

Printed per stage: CPU s at each N, CPU ms per image, and the growth exponent (least-squares slope
of log CPU against log N; 1 = linear, 0 = flat). Every number of one table comes from one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import subprocess
import sys
from pathlib import Path

import yaml

from .common import REPO, log, run_recorded

sys.path.insert(0, str(REPO / "workflow_scripts"))
from latentopt.devtools.snakemake_cli import job_stats  # noqa: E402

ANALYSES = ("summarize_evaluation", "test_hypotheses", "analyze_categories")


def image_folder(root: Path, n: int, height: int, width: int) -> Path:
    """N random PNGs, img_000000.png ..., written once (kept between runs of the benchmark)."""
    import numpy as np
    from PIL import Image

    folder = root / f"images_{n}_{height}x{width}"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"img_{i:06d}.png")
    done.write_text(str(n))
    return folder


def write_config(path: Path, results: Path, images: Path, args, arms_run: bool) -> Path:
    over = {
        "results_dir": str(results),
        "data": {"root": str(images), "single_split_name": "all"},
        "model": {"kind": "synthetic_kl"},
        "allow_synthetic": True,
        "metric_networks": {"lpips_random_trunk": True, "inception_synthetic": True},
        "run": {"device": "cpu", "images_per_job": args.images_per_job, "batch_size": args.batch_size},
        "quality_gate": {"mode": "warn"},  # random images, a random autoencoder: no gain to require
    }
    if arms_run:
        over["use_losses"] = ["psnr"]
        over["losses"] = {"psnr": {"iterations": args.iterations}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(over))
    return path


def write_study_config(path: Path, results: Path, images: Path, args) -> Path:
    """A study of ``--study-models`` random KL autoencoders (SD-VAE architecture, no weights), each
    with the default arms (baseline + the config's losses), over the same images."""
    over = {
        "results_dir": str(results),
        "experiment_id": "scale_study",
        "data": {"root": str(images), "single_split_name": "all"},
        "models": {f"m{i}": {"kind": "synthetic_kl", "seed": i} for i in range(args.study_models)},
        "allow_synthetic": True,
        "metric_networks": {"lpips_random_trunk": True, "inception_synthetic": True},
        "run": {"device": "cpu", "images_per_job": args.images_per_job, "batch_size": args.batch_size},
        "quality_gate": {"mode": "warn"},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(over))
    return path


def snakemake_cpu(config: Path, *args: str, timeout: float, demo: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """CPU seconds (user + system) of one snakemake command and everything it waited for (``demo``:
    on top of demo/config.yaml, as the one-model cases; a study's config stands on config.yaml alone)."""
    from latentopt.devtools.snakemake_cli import snakemake_command

    cmd = snakemake_command(*args, snakefile=REPO / "Snakefile",
                            configfiles=[REPO / "config.yaml", *([REPO / "demo" / "config.yaml"] if demo else []), config],
                            directory=config.parent)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def stage_cpu(results: Path) -> dict[str, float]:
    """Sum of the cpu_time of the jobs' benchmark files, per stage (the folder or file name under
    results/benchmarks); the analyses summed as 'analyses'."""
    stages: dict[str, float] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks")
        stage = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
        stage = "analyses" if stage in ANALYSES else stage
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        stages[stage] = stages.get(stage, 0.0) + sum(float(r["cpu_time"]) for r in rows)
    return stages


def slope(ns: list[int], ys: list[float]) -> float | None:
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys) if y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def run_scale(args) -> dict:
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(set(args.sizes))
    plan_only = sorted(set(args.plan_only_sizes) - set(sizes))
    h, w = args.image_size
    result: dict = {"sizes": sizes, "plan_only_sizes": plan_only, "image_size": [h, w],
                    "images_per_job": args.images_per_job, "iterations": args.iterations,
                    "planning": {}, "stages": {}}
    result["study_models"] = args.study_models
    result["study_planning"] = {}
    for n in sorted(set(args.study_sizes)):
        images = image_folder(work / "images", n, h, w)
        cfg = write_study_config(work / f"study{n}" / "config.yaml", work / f"study{n}" / "results", images, args)
        cpu, proc = snakemake_cpu(cfg, "-n", timeout=args.timeout, demo=False)
        result["study_planning"][n] = {"-n": cpu, "jobs": job_stats(proc.stdout + proc.stderr).get("total")}
        log(f"study of {args.study_models} models, n={n}: -n {cpu:.1f} s CPU")
    for n in sorted(sizes + plan_only):
        images = image_folder(work / "images", n, h, w)
        case = work / f"n{n}"
        plan_cfg = write_config(case / "plan" / "config.yaml", case / "plan" / "results", images, args, arms_run=False)
        planning = {}
        for kind, cmd in (("-n", ["-n"]), ("--summary", ["--summary"])):
            planning[kind], proc = snakemake_cpu(plan_cfg, *cmd, timeout=args.timeout)
            log(f"n={n}: {kind} {planning[kind]:.1f} s CPU")
            if kind == "-n":
                result.setdefault("jobs", {})[n] = job_stats(proc.stdout + proc.stderr).get("total")
        result["planning"][n] = planning
        if n in plan_only:
            continue
        run_cfg = write_config(case / "run" / "config.yaml", case / "run" / "results", images, args, arms_run=True)
        cpu, _ = snakemake_cpu(run_cfg, "--cores", str(args.cores), timeout=args.timeout)
        log(f"n={n}: run {cpu:.1f} s CPU")
        planning["-n (finished run)"], proc = snakemake_cpu(run_cfg, "-n", timeout=args.timeout)
        if "Nothing to be done" not in proc.stdout + proc.stderr:
            raise RuntimeError(f"n={n}: the finished run plans work again:\n{proc.stdout[-2000:]}")
        result["stages"][n] = {**stage_cpu(case / "run" / "results"), "total (snakemake and jobs)": cpu}
    return result


def format_scale(result: dict) -> str:
    lines = []
    plan_ns = sorted(int(n) for n in result["planning"])
    kinds = list(dict.fromkeys(k for p in result["planning"].values() for k in p))
    lines.append(f"planning CPU s (images_per_job {result['images_per_job']}; demo arms: baseline + 3 losses)")
    lines.append(f"{'command':22}" + "".join(f"{n:>10}" for n in plan_ns) + f"{'ms/image':>10}{'exponent':>10}")
    for k in kinds:
        ns = [n for n in plan_ns if k in result["planning"][n]]
        ys = [result["planning"][n][k] for n in ns]
        e = slope(ns, ys)
        per = 1000 * ys[-1] / ns[-1]
        lines.append(f"{k:22}" + "".join(f"{result['planning'][n][k]:10.1f}" if k in result["planning"][n] else f"{'':>10}"
                                          for n in plan_ns) + f"{per:10.2f}" + (f"{e:10.2f}" if e is not None else f"{'-':>10}"))
    if result.get("jobs"):
        lines.append(f"{'jobs planned':22}" + "".join(f"{result['jobs'].get(n, result['jobs'].get(str(n), '')):>10}" for n in plan_ns))
    study = result.get("study_planning") or {}
    if study:
        sns = sorted(int(n) for n in study)
        lines.append("")
        lines.append(f"planning CPU s of a study of {result['study_models']} models (random KL autoencoders, default arms)")
        lines.append(f"{'command':22}" + "".join(f"{n:>10}" for n in sns))
        lines.append(f"{'-n':22}" + "".join(f"{(study.get(n) or study.get(str(n)))['-n']:10.1f}" for n in sns))
        lines.append(f"{'jobs planned':22}" + "".join(f"{(study.get(n) or study.get(str(n)))['jobs']:>10}" for n in sns))
    ns = sorted(int(n) for n in result["stages"])
    if ns:
        stages = list(dict.fromkeys(s for n in ns for s in result["stages"][n]))
        lines.append("")
        lines.append(f"stage CPU s (Snakemake benchmark cpu_time; baseline + psnr at {result['iterations']} iterations)")
        lines.append(f"{'stage':28}" + "".join(f"{n:>10}" for n in ns) + "".join(f"{'ms/img@' + str(n):>12}" for n in ns) + f"{'exponent':>10}")
        for s in stages:
            ys = [result["stages"][n].get(s, 0.0) for n in ns]
            e = slope(ns, ys)
            lines.append(f"{s:28}" + "".join(f"{y:10.1f}" for y in ys) + "".join(f"{1000 * y / n:12.2f}" for y, n in zip(ys, ns))
                         + (f"{e:10.2f}" if e is not None else f"{'-':>10}"))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="benchmark.py --scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[500, 5000, 50000],
                   help="numbers of images planned and run to the report (none: planning only)")
    p.add_argument("--plan-only-sizes", type=int, nargs="*", default=[], help="numbers of images only planned")
    p.add_argument("--image-size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=(64, 64),
                   help="HEIGHTxWIDTH of the synthetic images (default 64x64; AlexNet-LPIPS, recorded by every "
                        "optimize job, needs at least 63 pixels a side)")
    p.add_argument("--images-per-job", type=int, default=100)
    p.add_argument("--study-sizes", type=int, nargs="*", default=[], help="numbers of images a study is planned for")
    p.add_argument("--study-models", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iterations", type=int, default=2, help="Adam iterations of the psnr arm in the stage run")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--work-dir", default=str(REPO / "bench" / "out" / "scale"), help="image folders and results (kept)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "scale.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_recorded("latentopt-benchmark-scale/1", lambda: run_scale(args), format_scale, Path(args.out))
