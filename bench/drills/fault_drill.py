"""Fault drill (issue 11): damage copies of a finished run, one fault at a time, rerun, and record
what was recomputed, what was lost and how long the rerun took; the final per-image numbers are
compared with the untouched run.

    python bench/drills/fault_drill.py RUN_DIR [--out drill.json] [--models small large] [--only ...]
    python bench/drills/fault_drill.py RUN_DIR --stops [NAME ...] [--stop-iterations 1500]

RUN_DIR holds config.yaml (with results_dir and data.root relative to RUN_DIR), the data and the
finished results, e.g. a `make demo`-like run made with `snakemake --directory RUN_DIR`. For a
study (config key ``models``), ``--models`` names the models whose trees (``results/<model>/``)
are damaged, one (fault, model) at a time; the rerun is the whole study's, and every model's
numbers are compared with the untouched run.

``--stops`` drills the ways of stopping a running driver instead (latentopt/devtools/stops.py):
each copy reruns with psnr's iterations raised (stopping rule none, batch size 1, so that a job is
mid-run with an image finished; with ``--uninterrupted DIR``, a run already finished with those
settings, copies of DIR with their psnr images and psnr chunk manifests deleted, so no settings change), is stopped once a
job has finished one of its images, and is resumed; the resume's job logs say which images were restored and which computed, and its
per-image numbers are compared with an uninterrupted run of the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow_scripts"))  # the library, as the other drills
from latentopt.devtools.faults import FAULTS, SNAPSHOT_ALL, copy_run, is_manifest, lost, metric_rows, rewritten, snapshot  # noqa: E402
from latentopt.devtools.snakemake_cli import job_stats, snakemake_command  # noqa: E402
from latentopt.devtools.stops import FINISHED, HISTORY, STOPS, start_driver, wait_for_finished_image, wait_for_session  # noqa: E402


def snakemake_cmd(workdir: Path, config: Path | list[Path], *args: str) -> list[str]:
    configs = config if isinstance(config, list) else [config]
    return snakemake_command(*args, snakefile=REPO / "Snakefile", configfiles=[REPO / "demo" / "config.yaml", *configs],
                             directory=workdir, cores=2)


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(workdir: Path, config: Path | list[Path], *args: str, timeout: int = 1800) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(snakemake_cmd(workdir, config, *args), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=ENV)
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
    before = snapshot(results, SNAPSHOT_ALL)
    logs_before = _job_logs(results)
    proc, seconds = run(work, config)
    after = snapshot(results, SNAPSHOT_ALL)
    logs = _written_since(logs_before, results)
    rerun, rerun_s = run(work, config, "-n")
    written = rewritten(before, after)
    return {
        "fault": what, "rc": proc.returncode, "seconds": round(seconds, 1),
        "jobs": job_stats(proc.stdout + proc.stderr),
        "integrity_messages": [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if "integrity:" in line],
        # from the optimization jobs' logs: images restored in place, images computed (any status)
        "restored": _ids(logs, RESTORED, 1), "computed": _computed(logs),
        "rewritten": [k for k in written if not is_manifest(k)], "manifests_rewritten": [k for k in written if is_manifest(k)],
        "lost": lost(before, after),
        "numbers_vs_untouched": compare(untouched_rows, all_metric_rows(results, models)),
        "then_nothing_to_do": "Nothing to be done" in rerun.stdout + rerun.stderr,
        "quarantined": sorted(str(p.relative_to(results)) for tree in ("", "*/") for q in results.glob(tree + ".integrity/quarantine")
                              for p in q.rglob("*") if p.is_file()),
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
    logs_at_start = _job_logs(results)
    a = subprocess.Popen(snakemake_cmd(work, config), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lock = results / ".latentopt.lock"
    deadline = time.time() + 600
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.2)
    out["lock_held_by_A"] = json.loads(lock.read_text())
    before = snapshot(results, SNAPSHOT_ALL)
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
    after = snapshot(results, SNAPSHOT_ALL)
    logs = _written_since(logs_at_start, results)  # A's attempt and B's
    out["restored"], out["computed"] = _ids(logs, RESTORED, 1), _computed(logs)
    out["job_logs"] = logs
    out["B_after_A_killed"] = {"rc": b2.returncode, "seconds": round(seconds2, 1),
                               "message": next((line.strip() for line in text2.splitlines() if "stale lock" in line), None),
                               "jobs": job_stats(text2)}
    written = rewritten(before, after)
    out["rewritten"] = [k for k in written if not is_manifest(k)]
    out["manifests_rewritten"], out["lost"] = [k for k in written if is_manifest(k)], lost(before, after)
    out["lock_released"] = not lock.exists()
    return out


RESTORED = re.compile(r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d (.+?): finished earlier with these settings "
                      r"\(a stopped job, or a chunk rerun\), restored$", re.M)  # latentopt.optimize.job
COMPUTED = re.compile(r"\[\d+/\d+\] (.+)$", re.M)  # "[k/n] <id>: <status> ..."; an id may hold spaces
LOCKED = ("LockException", "cannot be locked")


def _job_logs(results: Path) -> dict[Path, str]:
    """Every optimization job log's history (Snakemake deletes the log itself when its job starts)."""
    return {p: p.read_text(errors="replace") for tree in ("", "*/") for logs in results.glob(tree + "logs/optimize")
            for p in logs.rglob(HISTORY)}  # a study: every model's tree (results/<model>/logs/optimize)


def _written_since(before: dict[Path, str], results: Path) -> dict[str, str]:
    """{arm/chunk: what its job log gained since ``before``} (a study: {arm/model/chunk: ...})."""
    def key(p: Path) -> str:
        model = p.parents[3].name if p.parents[3] != results else ""
        return f"{p.parent.name}/{model + '/' if model else ''}{p.name}"
    return {key(p): text[len(before.get(p, "")):] for p, text in _job_logs(results).items()
            if len(text) > len(before.get(p, ""))}


def _ids(texts: dict[str, str], pattern: re.Pattern, group: int) -> list[str]:
    return sorted({f"{job.rsplit('/', 1)[0]}/{m.group(group)}" for job, text in texts.items() for m in pattern.finditer(text)})


def _computed(texts: dict[str, str]) -> list[str]:
    """arm/<id> (a study: arm/model/<id>) of every image a job log says it computed (ok or not)."""
    return sorted({f"{job.rsplit('/', 1)[0]}/{m.group(1).split(': ', 1)[0]}" for job, text in texts.items()
                   for m in COMPUTED.finditer(text)})


def stop_overlay(base: Path, iterations: int) -> Path:
    """Settings that keep a psnr job busy for a while with its images finishing one by one."""
    overlay = base / "stop_overlay.yaml"
    overlay.write_text(yaml.safe_dump({"losses": {"psnr": {"iterations": iterations, "stopping": {"rule": "none"},
                                                            "checkpoint_interval": max(10, iterations // 4)}},
                                       "run": {"batch_size": 1}}))
    return overlay


def drill_stop(name: str, src: Path, base: Path, overlay: Path, uninterrupted_rows: dict, redo: bool = False) -> dict:
    """One way of stopping: the driver is stopped once a psnr job has finished an image, then resumed.
    ``redo``: ``src`` is already finished with the overlay's settings; its psnr images are deleted, so
    the run redoes them with unchanged settings (else the overlay is a settings change)."""
    work = copy_run(src, base / f"stop_{name}".replace(" ", "_"))
    configs, results = [work / "config.yaml", overlay], work / "results"
    if redo:  # the per-image files and the chunk manifests that declare them (Snakemake's outputs)
        for image_file in [*(results / "psnr_dataset" / "per_image").rglob("*.*"), *(results / "psnr_dataset" / "chunks").glob("*")]:
            image_file.unlink()
    logs_before = _job_logs(results)
    out = work / "stopped_driver.out"
    started = time.monotonic()
    driver = start_driver(snakemake_cmd(work, configs), REPO, ENV, out)
    first = wait_for_finished_image(results / "logs" / "optimize" / "psnr", driver)
    stopped_at = time.monotonic()
    how = STOPS[name](driver)
    finished = _ids(_written_since(logs_before, results), FINISHED, 3)  # before the stop
    logs_at_stop = _job_logs(results)
    rc = driver.wait(timeout=1800)
    orphans = wait_for_session(driver.pid)
    text = out.read_text(errors="replace")
    after_stop = _written_since(logs_at_stop, results)  # the stopped driver's own retries, orphaned jobs
    restored_after, computed_after = _ids(after_stop, RESTORED, 1), _ids(after_stop, FINISHED, 3)
    record = {
        "stop": how, "first_finished_image": first, "seconds_to_stop": round(stopped_at - started, 1),
        "driver_rc": rc, "driver_seconds_after_stop": round(time.monotonic() - stopped_at, 1),
        "processes_left_running_after_the_driver": len(orphans),
        "images_finished_before_the_stop": finished,
        "after_the_stop_before_resume": {"restored": restored_after, "computed": computed_after},
        "driver_output": {
            "latentopt_paragraph": next((line for line in text.splitlines() if line.startswith("latentopt: stopped by")), None),
            "will_exit_after_finishing_lines": text.count("Will exit after finishing currently running jobs"),
            "CalledProcessError": "CalledProcessError" in text, "RuleException": "RuleException" in text,
            "at_least_one_job_did_not_complete": "did not complete successfully" in text,
            "tail": text[-1200:],
        },
    }
    logs_before = _job_logs(results)
    resume, seconds = run(work, configs)
    if resume.returncode and any(word in resume.stdout + resume.stderr for word in LOCKED):
        record["resume_needed_unlock"] = True  # a killed driver leaves Snakemake's lock (README: Resume)
        run(work, configs, "--unlock")
        resume, seconds = run(work, configs)
    resumed_logs = _written_since(logs_before, results)
    restored, computed = _ids(resumed_logs, RESTORED, 1), _ids(resumed_logs, FINISHED, 3)
    dry, _ = run(work, configs, "-n")
    record["resume"] = {
        "rc": resume.returncode, "seconds": round(seconds, 1), "jobs": job_stats(resume.stdout + resume.stderr),
        "restored": restored, "computed": computed,
        "finished_before_stop_but_recomputed": sorted(set(finished) & (set(computed) | set(computed_after))),
        "finished_before_stop_and_restored": sorted(set(finished) & (set(restored) | set(restored_after))),
        "numbers_vs_uninterrupted": compare(uninterrupted_rows, metric_rows(results)),
        "then_nothing_to_do": "Nothing to be done" in dry.stdout + dry.stderr,
        "tail": (resume.stdout + resume.stderr)[-1500:] if resume.returncode else "",
    }
    return record


def drill_stops(src: Path, base: Path, names: list[str], iterations: int, report: dict, out: Path,
                uninterrupted: Path | None = None) -> None:
    """``uninterrupted``: a finished uninterrupted run of the same settings (else one is made first)."""
    overlay = stop_overlay(base, iterations)
    report["stop_settings"] = yaml.safe_load(overlay.read_text())
    if uninterrupted is None:
        uninterrupted = copy_run(src, base / "stop_uninterrupted")
        proc, seconds = run(uninterrupted, [uninterrupted / "config.yaml", overlay])
        report["uninterrupted"] = {"rc": proc.returncode, "seconds": round(seconds, 1)}
    else:  # the scenarios redo its psnr images with its own settings
        report["uninterrupted"] = {"reused": str(uninterrupted), "psnr_images_deleted_and_redone": True}
    rows = metric_rows(uninterrupted / "results")
    for name in names:
        report["scenarios"][name] = drill_stop(name, uninterrupted if "reused" in report["uninterrupted"] else src,
                                               base, overlay, rows, redo="reused" in report["uninterrupted"])
        print(name, json.dumps(report["scenarios"][name], indent=1), flush=True)
        out.write_text(json.dumps(report, indent=2))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("fault_drill.json"))
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--models", nargs="*", help="a study's models to damage, one at a time (default: a one-model run)")
    parser.add_argument("--stops", nargs="*", choices=list(STOPS), help="drill these ways of stopping (none named: all)")
    parser.add_argument("--stop-iterations", type=int, default=1500, help="psnr iterations of the stop drill's rerun")
    parser.add_argument("--uninterrupted", type=Path, help="a finished run of the stop drill's settings: each scenario "
                        "deletes its psnr images and redoes them (no settings change), compared with it")
    args = parser.parse_args(argv)
    src = args.run_dir.resolve()
    report = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(), "scenarios": {}}
    if args.stops is not None:
        with tempfile.TemporaryDirectory(prefix="stop_drill_") as tmp:
            drill_stops(src, Path(tmp), args.stops or list(STOPS), args.stop_iterations, report, args.out,
                        args.uninterrupted.resolve() if args.uninterrupted else None)
        args.out.write_text(json.dumps(report, indent=2))
        return
    untouched = all_metric_rows(src / "results", args.models)
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
