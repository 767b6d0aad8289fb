"""Every way of stopping a running driver keeps the images its jobs finished: on a copy of the
session's finished demo (conftest.finished_demo) finished again with psnr's iterations raised
(batch size 1, 2 images per job, so that a job is mid-run with one image finished), its psnr
images deleted and made again, the driver is stopped once a job has finished an image
(latentopt/devtools/stops.py), then resumed: the resume computes none of the
finished images again (a job it reruns restores them, its log says so), its per-image numbers equal
an uninterrupted run's, and the next dry run has nothing to do."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from conftest import REPO, snakemake, snakemake_cmd

from latentopt.devtools.faults import metric_rows
from latentopt.devtools.stops import FINISHED, HISTORY, STOPS, start_driver, wait_for_finished_image, wait_for_session

pytestmark = pytest.mark.slow
RESTORED = "finished earlier with these settings (a stopped job, or a chunk rerun), restored"


def _slow_settings(finished_demo, dst):
    """A copy of the finished demo whose psnr arm runs long enough to be stopped mid-job."""
    cfg, results = finished_demo
    shutil.copytree(results.parent / "data", dst / "data", symlinks=True)
    shutil.copytree(results, dst / "results", symlinks=True)
    config = yaml.safe_load(cfg.read_text())
    config["results_dir"], config["data"]["root"] = str(dst / "results"), str(dst / "data")
    config["losses"]["psnr"] = {"iterations": 800, "stopping": {"rule": "none"}, "checkpoint_interval": 200}
    config["run"]["batch_size"] = 1
    path = dst / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, dst / "results"


def _busy_copy(finished_slow, dst):
    """A copy of the finished slow run with every psnr image deleted: the next run redoes them, with
    the same settings (a settings change stopped half-way is another case: docs/stopping.md)."""
    src = finished_slow.parent
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    config = yaml.safe_load((dst / "config.yaml").read_text())
    config["results_dir"], config["data"]["root"] = str(dst / "results"), str(dst / "data")
    (dst / "config.yaml").write_text(yaml.safe_dump(config))
    for record in (dst / "results" / "psnr_dataset" / "per_image").rglob("*.*"):
        record.unlink()
    return dst / "config.yaml", dst / "results"


def _log_text(results):
    """The psnr jobs' log histories (Snakemake deletes a job's log when the job starts)."""
    return {p: p.read_text(errors="replace") for p in (results / "logs" / "optimize" / "psnr").glob(HISTORY)}


def _since(before, results):
    return "".join(text[len(before.get(p, "")):] for p, text in _log_text(results).items())


@pytest.fixture(scope="module")
def uninterrupted(finished_demo, tmp_path_factory):
    """The finished demo rerun to its end with the slow psnr settings: (its config, its metric rows)."""
    config, results = _slow_settings(finished_demo, tmp_path_factory.mktemp("uninterrupted"))
    snakemake(config, timeout=1800)
    return config, metric_rows(results)


@pytest.mark.parametrize("stop", ["sigint driver", "ctrl-c group", "sigterm driver", "sigkill job", "sigkill driver"])
def test_a_stopped_run_resumes_without_recomputing_finished_images(stop, uninterrupted, tmp_path):
    finished_slow, rows = uninterrupted
    config, results = _busy_copy(finished_slow, tmp_path / "run")
    before = _log_text(results)
    driver = start_driver(snakemake_cmd(config), REPO, {**os.environ, "OMP_NUM_THREADS": "1"}, tmp_path / "driver.out")
    wait_for_finished_image(results / "logs" / "optimize" / "psnr", driver)
    STOPS[stop](driver)
    finished = {m.group(3) for m in FINISHED.finditer(_since(before, results))}
    at_stop = _log_text(results)
    driver.wait(timeout=900)
    wait_for_session(driver.pid)  # a killed driver's jobs run on: the resume starts after them
    said = (tmp_path / "driver.out").read_text()
    assert finished, said[-2000:]
    if stop in ("sigint driver", "ctrl-c group", "sigterm driver"):
        assert driver.returncode != 0 and "latentopt: stopped by SIG" in said and "Resume with:" in said
        assert said.count("Will exit after finishing currently running jobs") <= 1

    resume = snakemake(config, check=False, timeout=1800)
    if resume.returncode and "LockException" in resume.stdout + resume.stderr:  # a killed driver's lock (README: Resume)
        snakemake(config, "--unlock")
        resume = snakemake(config, check=False, timeout=1800)
    assert resume.returncode == 0, (resume.stdout + resume.stderr)[-3000:]
    log = _since(at_stop, results)  # the stopped driver's own retry of a killed job, then the resume
    recomputed = {m.group(3) for m in FINISHED.finditer(log)}
    assert not finished & recomputed, log[-3000:]
    if stop != "sigterm driver":  # SIGTERM lets the running jobs end and accepts them: nothing to restore
        for image in finished:
            assert f"{image}: {RESTORED}" in log, (image, log[-3000:])
    assert metric_rows(results) == rows
    assert "Nothing to be done" in snakemake(config, "-n").stdout
    assert not list((results / ".checkpoints").rglob("batch-*")), "a finished batch drops its checkpoint"


def test_a_config_change_stopped_half_way_is_applied_in_full_by_the_resume(uninterrupted, finished_demo, tmp_path):
    """The finished demo with psnr's settings changed, stopped (SIGINT to the driver) once a psnr job
    finished an image, then resumed: every psnr result is of the new settings after that one resume.
    Before: the jobs after the quality gate waited on it through an ancient() edge, and Snakemake
    skipped their input checks once the gate had to run: the stop drill found 6 of 32 metric rows of
    the old settings after the resume, until a second run (docs/stopping.md)."""
    _, rows = uninterrupted
    config, results = _slow_settings(finished_demo, tmp_path / "run")
    driver = start_driver(snakemake_cmd(config), REPO, {**os.environ, "OMP_NUM_THREADS": "1"}, tmp_path / "driver.out")
    wait_for_finished_image(results / "logs" / "optimize" / "psnr", driver)
    STOPS["sigint driver"](driver)
    driver.wait(timeout=900)
    wait_for_session(driver.pid)
    resume = snakemake(config, check=False, timeout=1800)
    assert resume.returncode == 0, (resume.stdout + resume.stderr)[-3000:]
    assert metric_rows(results) == rows
    assert "Nothing to be done" in snakemake(config, "-n").stdout
