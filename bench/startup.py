#!/usr/bin/env python
"""Start-up CPU of an optimize job per arm kind, as ratios to ``import torch`` measured in one run.

Each measurement is a fresh interpreter that does what the job script
(workflow_scripts/optimize_images.py) does: imports the job's entry point, then runs
:func:`latentopt.optimize.job.optimize_chunk` on one image of the demo (demo/config.yaml, its
trained demo model and prepared images, copied from --results into a temporary results folder, so
nothing of a finished run is touched). The child's own CPU time (user + system, from process
start: ``time.process_time``) is read at three points:

* imports    -- after the job's imports (the entry point's import chain);
* start-up   -- when the job starts its first batch (settings, model, networks, images read);
* first image -- when the first image's outputs are written (its encode / Adam loop included).

The reference is a fresh interpreter that runs ``import torch`` alone. Every figure is the median
of --repeats runs, taken in rounds (one of each kind per round) so that the machine's load
drifts over all of them alike.

    PYTHONPATH=workflow_scripts python bench/startup.py --results results/demo --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "workflow_scripts"
ARMS = ("baseline", "psnr", "ssim", "lpips")
ON_DEMAND = ("lpips", "torchvision", "torch._dynamo", "diffusers", "pandas", "scipy", "matplotlib")

TORCH_ONLY = """
import time, json, sys
import torch
print(json.dumps({"imports": time.process_time()}))
"""

JOB = """
import time, json, sys
import latentopt.core.stage_times  # first, as in the job script
from latentopt.core.joblog import job_log  # noqa: F401 - the job script's imports
from latentopt.optimize import job
imports = time.process_time()
marks = {}
imported = {}
def first(name, fn):
    def timed(*a, **k):
        if name not in marks:
            marks[name] = time.process_time()
            imported[name] = [m for m in ON_DEMAND if m in sys.modules]
        return fn(*a, **k)
    return timed
job.run_items = first("start_up", job.run_items)
job.write_outputs = first("first_image", job.write_outputs)
job.optimize_chunk(**json.loads(sys.argv[1]), log=lambda *a, **k: None)
print(json.dumps({"imports": imports, **marks, "imported": imported}))
"""


def _child(code: str, args: list[str], cwd: Path, library: Path = LIBRARY) -> dict:
    env = {**os.environ, "PYTHONPATH": str(library)}
    prelude = f"ON_DEMAND = {list(ON_DEMAND)!r}\n"
    out = subprocess.run([sys.executable, "-c", prelude + code, *args], env=env, cwd=cwd,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "demo" / "config.yaml"))
    p.add_argument("--results", default=str(REPO / "results" / "demo"),
                   help="a finished (or at least prepared) run of --config: its prepared images and demo model")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--library", default=str(LIBRARY),
                   help="the workflow_scripts folder whose job is measured (e.g. another checkout's, for a before/after)")
    p.add_argument("--out", default=None, help="also write the raw measurements as JSON here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(LIBRARY))
    from latentopt.workflow.config import load_config

    with tempfile.TemporaryDirectory(prefix="latentopt-startup-") as tmp:
        results = Path(tmp) / "results"
        for part in ("prepared", "demo_model", "original_bsds500"):
            if (Path(args.results) / part).exists():
                shutil.copytree(Path(args.results) / part, results / part)
        config = load_config([args.config], {"results_dir": str(results)})
        arms = args.arms.split(",")
        prepared = sorted((results / "prepared" / "test").glob("*.json"))
        if not prepared:
            raise SystemExit(f"no prepared test images under {args.results}/prepared: run the demo first")
        from latentopt.workflow.job_params import optimize_job_args

        image_id = prepared[0].stem
        runs: dict[str, list[dict]] = {"import torch": [], **{a: [] for a in arms}}
        for r in range(args.repeats):
            runs["import torch"].append(_child(TORCH_ONLY, [], REPO))
            for arm in arms:
                for f in (results / f"{arm}_dataset").rglob("*") if (results / f"{arm}_dataset").exists() else []:
                    if f.is_file():
                        f.unlink()
                a = optimize_job_args(config, arm, "test", [image_id])
                runs[arm].append(_child(JOB, [json.dumps(a)], REPO, Path(args.library)))
            print(f"round {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    med = lambda xs: statistics.median(xs)  # noqa: E731
    torch_s = med([x["imports"] for x in runs["import torch"]])
    print(f"optimize-job start-up CPU (user+system s, median of {args.repeats}; one image of {args.config})")
    print(f"{'':10} {'imports':>8} {'start-up':>9} {'1st image':>9} {'start-up/torch':>15} {'start-up-torch':>15}  on-demand imported at start-up / 1st image")
    print(f"{'torch':10} {torch_s:8.2f}")
    for arm in arms:
        xs = runs[arm]
        imp, su, fi = (med([x[k] for x in xs]) for k in ("imports", "start_up", "first_image"))
        pulled = " / ".join(",".join(xs[-1]["imported"].get(k, [])) or "-" for k in ("start_up", "first_image"))
        print(f"{arm:10} {imp:8.2f} {su:9.2f} {fi:9.2f} {su / torch_s:15.2f} {su - torch_s:+15.2f}  {pulled}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"config": args.config, "repeats": args.repeats, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
