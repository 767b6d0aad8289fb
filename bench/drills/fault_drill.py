"""Fault drill (issue 11): damage copies of a finished run, one fault at a time, rerun, and record
what was recomputed, what was lost and how long the rerun took; the final per-image numbers are
compared with the untouched run.

    python bench/drills/fault_drill.py RUN_DIR [--out drill.json] [--models small large] [--only ...]

RUN_DIR holds config.yaml (with results_dir and data.root relative to RUN_DIR), the data and the
finished results, e.g. a `make demo`-like run made with `snakemake --directory RUN_DIR`. For a
study (config key ``models``), ``--models`` names the models whose trees (``results/<model>/``)
are damaged, one (fault, model) at a time; the rerun is the whole study's, and every model's
numbers are compared with the untouched run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow_scripts"))  # the library, as the other drills
from latentopt.devtools.faults import FAULTS, copy_run, lost, metric_rows, rewritten, snapshot  # noqa: E402
from latentopt.devtools.snakemake_cli import job_stats, snakemake_command  # noqa: E402


def snakemake_cmd(workdir: Path, config: Path, *args: str) -> list[str]:
    return snakemake_command(*args, snakefile=REPO / "Snakefile", configfiles=[REPO / "demo" / "config.yaml", config],
                             directory=workdir, cores=2)


def run(workdir: Path, config: Path, *args: str, timeout: int = 1800) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(snakemake_cmd(workdir, config, *args), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc, time.monotonic() - start


def compare(untouched: dict, after: dict) -> dict:
    diff = [k for k in untouched if untouched[k] != after.get(k)]
    return {"rows_compared": len(untouched), "rows_differing": len(diff), "examples": [list(k) for k in diff[:3]]}


def model_trees(results: Path, models: list[str] | None) -> dict[str, Path]:
    """{model: its results tree} of a study, {"": results} of a one-model run."""
    return {m: results / m for m in models} if models else {"": results}


def all_metric_rows(results: Path, models: list[str] | None) -> dict:
    return {(m, *k): v for m, tree in model_trees(results, models).items() for k, v in metric_rows(tree).items()}


def drill_fault(name, fault, src: Path, base: Path, untouched_rows: dict, model: str = "", models: list[str] | None = None) -> dict:
    work = copy_run(src, base / f"{model}_{name}".replace(" ", "_").replace(",", ""))
    config = work / "config.yaml"
    results, data = work / "results", work / "data"
    what = fault(results / model if model else results, data)
    before = snapshot(results)
    proc, seconds = run(work, config)
    after = snapshot(results)
    rerun, rerun_s = run(work, config, "-n")
    return {
        "fault": what, "rc": proc.returncode, "seconds": round(seconds, 1),
        "jobs": job_stats(proc.stdout + proc.stderr),
        "integrity_messages": [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if "integrity:" in line],
        "rewritten": rewritten(before, after), "lost": lost(before, after),
        "numbers_vs_untouched": compare(untouched_rows, all_metric_rows(results, models)),
        "then_nothing_to_do": "Nothing to be done" in rerun.stdout + rerun.stderr,
        "quarantined": sorted(str(p.relative_to(results)) for p in (results / ".integrity" / "quarantine").rglob("*") if p.is_file()),
        "tail": (proc.stdout + proc.stderr)[-1500:] if proc.returncode else "",
    }


def drill_second_driver(src: Path, base: Path) -> dict:
    """Driver A (its own copy, one image's outputs deleted so it has work) holds the folder; driver B
    from another working directory on the same results folder must fail fast naming A; after A is
    killed with -9, B takes the stale lock over and finishes; nothing is lost."""
    work = copy_run(src, base / "second_driver")
    config = work / "config.yaml"
    results = work / "results"
    first = sorted((results / "psnr_dataset" / "per_image" / "train").glob("*.json"))[0]
    first.unlink()
    first.with_suffix(".pt").unlink()
    other = base / "elsewhere"
    other.mkdir()
    cfg = yaml.safe_load(config.read_text())
    cfg["results_dir"], cfg["data"]["root"] = str(results), str(work / "data")
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = {}
    a = subprocess.Popen(snakemake_cmd(work, config), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lock = results / ".latentopt.lock"
    deadline = time.time() + 600
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.2)
    out["lock_held_by_A"] = json.loads(lock.read_text())
    before = snapshot(results)
    b, seconds = run(other, other / "config.yaml")
    text = b.stdout + b.stderr
    out["B_while_A_runs"] = {"rc": b.returncode, "seconds": round(seconds, 1),
                             "message": next((line.strip() for line in text.splitlines() if "in use by another driver" in line), None),
                             "B_ran_jobs": "Finished jobid" in text}
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    out["lock_left_by_killed_A"] = lock.exists()
    b2, seconds2 = run(other, other / "config.yaml")
    text2 = b2.stdout + b2.stderr
    after = snapshot(results)
    out["B_after_A_killed"] = {"rc": b2.returncode, "seconds": round(seconds2, 1),
                               "message": next((line.strip() for line in text2.splitlines() if "stale lock" in line), None),
                               "jobs": job_stats(text2)}
    out["rewritten"], out["lost"] = rewritten(before, after), lost(before, after)
    out["lock_released"] = not lock.exists()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("fault_drill.json"))
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--models", nargs="*", help="a study's models to damage, one at a time (default: a one-model run)")
    args = parser.parse_args(argv)
    src = args.run_dir.resolve()
    untouched = all_metric_rows(src / "results", args.models)
    report = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(), "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="fault_drill_") as tmp:
        base = Path(tmp)
        for name, fault in FAULTS.items():
            if args.only and name not in args.only:
                continue
            for model in args.models or [""]:
                key = f"{model}: {name}" if model else name
                report["scenarios"][key] = drill_fault(name, fault, src, base, untouched, model, args.models)
                print(key, json.dumps(report["scenarios"][key], indent=1), flush=True)
                args.out.write_text(json.dumps(report, indent=2))
        if not args.models and (not args.only or "second driver" in args.only):
            report["scenarios"]["second driver"] = drill_second_driver(src, base)
            print("second driver", json.dumps(report["scenarios"]["second driver"], indent=1), flush=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
