"""What a newcomer meets on the command line (issue 21): config mistakes in one short line each,
naming the key, the value and the closest valid names; no schema dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from latentopt.workflow.config import ConfigError, check_config, coerce_config, load_schema, validate_config

from conftest import seed_config

REPO = Path(__file__).resolve().parents[1]




def _message(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        check_config(validate_config(coerce_config(cfg)))
    return str(err.value)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("use_loss", ["psnr"], "use_loss: unknown key (value ['psnr']); did you mean 'use_losses' or 'use_models'?"),
        ("losses.psnr.iteratons", 20, "losses.psnr.iteratons: unknown key (value 20); did you mean 'iterations'?"),
        ("run.batchsize", 4, "run.batchsize: unknown key (value 4); did you mean 'batch_size'?"),
        ("run.batch_size", 4.5, "run.batch_size: 4.5 is not an integer"),
        ("losses.psnr.lr", {"fast": 1}, "losses.psnr.lr: {'fast': 1} is not a number or a list"),  # a list: a sweep
        ("losses.psnr.lr", [1, -2], "losses.psnr.lr[1]: -2 is less than or equal to the minimum of 0"),
        ("preprocess.mode", "center-crop", "preprocess.mode: 'center-crop' is not one of"),
        ("use_losses", ["psnrr"], "use_losses: ['psnrr'] not defined under losses"),
    ],
)
def test_each_mistake_is_one_short_line_naming_key_and_value(key, value, expected):
    text = _message(seed_config(**{key: value}))
    first = text.splitlines()[0]
    assert len(text.splitlines()) == 1, text
    assert first.startswith(expected), first
    assert len(first) < 250 and "schema" not in first.lower().replace("jsonschema's", "")


def test_unknown_names_get_the_closest_valid_ones():
    assert "did you mean 'center_crop'?" in _message(seed_config(**{"preprocess.mode": "center-crop"}))
    assert "did you mean 'psnr'?" in _message(seed_config(use_losses=["psnrr"]))
    nothing_close = _message(seed_config(zzzz=1))
    assert nothing_close.startswith("zzzz: unknown key (value 1); valid: ")
    assert "results_dir" in nothing_close  # the valid top-level names, not the schema


def test_unknown_loss_name_suggests_the_registered_one():
    cfg = seed_config()
    cfg["losses"]["psnr"]["loss"] = {"name": "lpipz"}
    assert "did you mean 'lpips'?" in _message(cfg)


def test_several_problems_one_line_each():
    text = _message(seed_config(use_loss=["psnr"], **{"losses.psnr.iteratons": 20, "run.batch_size": 4.5}))
    lines = text.splitlines()
    assert lines[0] == "3 problems:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:4]) == ["losses.psnr.iteratons", "run.batch_size", "use_loss"]
    assert len(lines) == 5 and "LATENTOPT_VERBOSE" in lines[4]


def test_verbose_escape_hatch_gives_jsonschemas_report(monkeypatch):
    monkeypatch.setenv("LATENTOPT_VERBOSE", "1")
    text = _message(seed_config(use_loss=["psnr"]))
    assert text.splitlines()[0].startswith("use_loss: unknown key")
    assert "Failed validating 'additionalProperties'" in text


def test_defaults_are_filled_as_snakemakes_validate_does():
    from snakemake.utils import validate

    ours = validate_config(seed_config(**{"data.limit_per_split": 2}))
    theirs = seed_config(**{"data.limit_per_split": 2})
    validate(theirs, str(REPO / "workflow_scripts/latentopt/workflow/config.schema.yaml"), set_default=True)
    assert ours == theirs
    schema = load_schema()
    validate_config(seed_config())
    assert load_schema() == schema  # filling defaults copies them, the schema is untouched


def _snakemake_dry(tmp_path, *args, configfiles=()):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENTOPT_VERBOSE": ""}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(REPO / "demo/config.yaml"), *configfiles, *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "how, expected",
    [
        ("--config", "use_loss: unknown key (value ['psnr']); did you mean 'use_losses' or 'use_models'?"),
        ("yaml", "losses.psnr.iteratons: unknown key (value 20); did you mean 'iterations'?"),
    ],
)
def test_the_snakefile_validates_through_it(tmp_path, how, expected):
    """Before: 1,016 and 139 lines, the schema printed in full after the one useful line."""
    if how == "yaml":
        (tmp_path / "typo.yaml").write_text("losses:\n  psnr:\n    iteratons: 20\n")
        out = _snakemake_dry(tmp_path, configfiles=[str(tmp_path / "typo.yaml")])
    else:
        out = _snakemake_dry(tmp_path, "--config", "use_loss=[psnr]")
    assert f"invalid configuration: {expected}" in out
    assert len(out.splitlines()) <= 8, out
    assert "Failed validating" not in out and "'properties'" not in out


# --- Ctrl-C: one line per job, checkpoint kept, a rerun resumes ----------------------------------


def test_job_log_turns_ctrl_c_into_one_line_and_exit_130(tmp_path, capfd):
    from latentopt.core.joblog import job_log
    from latentopt.optimize.interrupts import Interrupted

    log_path = tmp_path / "job.log"
    with pytest.raises(SystemExit) as stop:
        with job_log(log_path) as log:
            log("working")
            raise Interrupted("psnr img1: interrupted at step 7; checkpoint kept (step 5); rerun the same command to resume")
    assert stop.value.code == 130
    err = capfd.readouterr().err
    assert err.strip().splitlines() == ["psnr img1: interrupted at step 7; checkpoint kept (step 5); rerun the same command to resume"]
    text = log_path.read_text()
    assert "interrupted at step 7" in text and "Traceback" not in text
    with pytest.raises(SystemExit):  # a bare Ctrl-C (outside the Adam loop) gets the generic line
        with job_log(log_path):
            raise KeyboardInterrupt
    assert "rerun the same command to resume" in capfd.readouterr().err and "Traceback" not in log_path.read_text()


class _InterruptAfter:
    """Wraps a model; a Ctrl-C arrives during the n-th decode."""

    def __init__(self, inner, n):
        self.inner, self.info, self.n, self.calls = inner, inner.info, n, 0

    def encode(self, x):
        return self.inner.encode(x)

    def decode(self, z):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.inner.decode(z)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_interrupted_batch_names_its_step_and_checkpoint_and_resumes(tmp_path, demo_data):
    import re
    import shutil

    from conftest import job_context, make_config
    from latentopt.data.prepare import prepare_chunk
    from latentopt.optimize.batches import run_items
    from latentopt.optimize.interrupts import Interrupted
    from latentopt.workflow.plan import build_plan

    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    cfg = make_config(tmp_path / "results", data, **{"losses.psnr.iterations": 12, "losses.psnr.checkpoint_interval": 4,
                                                      "losses.psnr.stopping.rule": "none", "run.batch_size": 1})
    plan = build_plan(cfg)
    prepare_chunk(plan.splits["val"], cfg["preprocess"], cfg["results_dir"], log=lambda m: None)
    logged = []
    ctx, items = job_context(cfg, "psnr", "val", log=logged.append)
    inner = ctx.model
    ctx.model = _InterruptAfter(inner, n=10)
    with pytest.raises(Interrupted) as err:
        run_items(ctx, items[:1], batch_size=1)
    line = str(err.value)
    found = re.fullmatch(rf"psnr {items[0].image_id}: interrupted at step (\d+); checkpoint kept \(step (\d+)\); "
                         "rerun the same command to resume", line)
    assert found, line
    step, kept = int(found[1]), int(found[2])
    assert 0 < kept <= step < 12 and kept % 4 == 0
    ctx.model = inner  # the rerun resumes from the kept checkpoint
    results = run_items(ctx, items[:1], batch_size=1)
    assert results[0]["status"] == "ok" and f"from iteration {kept}" in " ".join(logged)


# --- progress: throughput and ETA from the running jobs' logs, retries in their own totals ---------


def _stamp(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@pytest.fixture()
def progress_setup(tmp_path, demo_data):
    from conftest import make_config
    from latentopt.workflow.plan import build_plan

    cfg = make_config(tmp_path / "results", demo_data, use_losses=["psnr"])
    return cfg, build_plan(cfg)


def _write_record(cfg, arm, split, image_id, finished_at, status="ok"):
    import json

    from latentopt.workflow import layout

    path = layout.per_image(cfg["results_dir"], arm, split, image_id, "json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": status, "finished_at": finished_at}))


def _write_log(cfg, arm, name, lines):
    from pathlib import Path

    path = Path(cfg["results_dir"]) / "logs" / "optimize" / arm / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _progress_line(t, n, step, total, retry=False):
    return f"{_stamp(t)}   [{n} img] {'retry ' if retry else ''}step {step}/{total} ({100 * step / total:.0f}%), {n} running, 1.00 it/s, ETA 1 s"


def test_progress_counts_the_running_batch_and_a_young_run_is_not_diluted(progress_setup):
    from latentopt.workflow.progress import format_table, progress

    cfg, plan = progress_setup
    now = 1_800_000_000.0
    started = now - 300  # the job began 5 minutes ago, nothing finished yet: 4 images at step 25/50
    _write_log(cfg, "psnr", "chunk0", [f"===== attempt 1: {_stamp(started)}, host h, pid 1 =====",
                                       *(_progress_line(started + 60 * k, 4, 10 * k, 50) for k in (1, 2)),
                                       _progress_line(now - 1, 4, 25, 50)])
    s = progress(cfg, window_s=600, now=now)["psnr"]
    done = 4 * 25 / 50
    assert s["ok"] == 0 and s["running"] == 1 and s["partial"] == pytest.approx(done)
    assert s["images_per_min"] == pytest.approx(done / 5)  # over the 5 minutes it ran, not the 10-min window
    assert s["eta_s"] == pytest.approx((plan.n_images - done) / (done / 5) * 60)
    assert "psnr" in format_table(progress(cfg, now=now)) and "all" in progress(cfg, now=now)


def test_progress_finished_images_then_the_next_batch(progress_setup):
    from latentopt.workflow.progress import progress

    cfg, plan = progress_setup
    now = 1_800_000_000.0
    started = now - 400
    ids = [(split, e.image_id) for split, entries in plan.splits.items() for e in entries]
    first_batch, _ = ids[:2], ids[2:]
    lines = [f"===== attempt 1: {_stamp(started)}, host h, pid 1 =====", _progress_line(started + 100, 2, 50, 50)]
    for k, (split, image_id) in enumerate(first_batch):
        _write_record(cfg, "psnr", split, image_id, started + 200)
        lines.append(f"{_stamp(started + 200)} [{k + 1}/8] {image_id}: ok PSNR 20.00 -> 21.00 dB, 50 it, 9.0 s")
    lines.append(_progress_line(now - 100, 2, 10, 50))  # the next batch, 20 % done
    _write_log(cfg, "psnr", "chunk0", lines)
    s = progress(cfg, window_s=600, now=now)["psnr"]
    done = 2 + 2 * 10 / 50
    assert (s["ok"], s["remaining"], s["running"]) == (2, plan.n_images - 2, 1)
    assert s["images_per_min"] == pytest.approx(done / (400 / 60))
    # read as it stood 150 s after the start: only the first batch's progress line, nothing finished
    earlier = progress(cfg, window_s=600, now=started + 150)["psnr"]
    assert earlier["ok"] == 0 and earlier["partial"] == pytest.approx(2.0)
    assert earlier["images_per_min"] == pytest.approx(2 / (150 / 60))
    # a window shorter than the run: only what was done in the last 120 s (the 2nd batch's 20 %)
    short = progress(cfg, window_s=120, now=now)["psnr"]
    assert short["images_per_min"] == pytest.approx((2 * 10 / 50) / 2)


def test_a_retry_counts_against_its_own_total(progress_setup):
    from latentopt.optimize.interrupts import progress_logger
    from latentopt.workflow.progress import progress, read_log

    cfg, _ = progress_setup
    # the job log's retry line: its own iterations (before: "step 300/150 (200%) ... ETA -272 s")
    logged = []
    on_step = progress_logger(logged.append, 300, ["a"], retry=True)
    for it in range(1, 301):
        on_step(it, 1)
    assert logged[-1].startswith("  [1 img] retry step 300/300 (100%)") and "ETA 0 s" in logged[-1]
    assert all("ETA -" not in line for line in logged)
    now = 1_800_000_000.0
    started = now - 600
    lines = [f"===== attempt 1: {_stamp(started)}, host h, pid 1 =====", _progress_line(started + 200, 4, 150, 150),
             _progress_line(now - 10, 1, 75, 300, retry=True)]
    state = read_log("\n".join(lines), now)
    assert state.running.credit() == pytest.approx(3 + 75 / 300)
    _write_log(cfg, "psnr", "chunk0", lines)
    assert progress(cfg, now=now)["psnr"]["partial"] == pytest.approx(3 + 75 / 300)


def test_a_dead_attempt_and_a_finished_job_hold_no_running_batch():
    from latentopt.workflow.progress import read_log

    t0 = 1_800_000_000.0
    dead = [f"===== attempt 1: {_stamp(t0)}, host h, pid 1 =====", _progress_line(t0 + 10, 4, 20, 50),
            f"===== attempt 2: {_stamp(t0 + 20)}, host h, pid 2 ====="]
    assert read_log("\n".join(dead), t0 + 30).running is None
    ended = [*dead, _progress_line(t0 + 30, 4, 30, 50), f"{_stamp(t0 + 40)} wall-time split: x 1.0 s"]
    assert read_log("\n".join(ended), t0 + 35).running.credit() == pytest.approx(4 * 30 / 50)
    assert read_log("\n".join(ended), t0 + 50).running is None


# --- a second driver: the project's lock message first ----------------------------------------


def test_held_message_names_the_live_holder_and_warns_off_unlock(tmp_path):
    from conftest import hold_driver_lock
    from latentopt.workflow import driverlock

    results = tmp_path / "results"
    assert driverlock.held_message(results) is None
    holder = hold_driver_lock(results, seconds=60)
    try:
        message = driverlock.held_message(results)
        assert message and f"pid {holder.pid}" in message and "do not use --unlock" in message
        assert str(results.absolute()) in message
    finally:
        holder.kill()
        holder.wait()
    assert driverlock.held_message(results) is None  # its process is gone: stale, taken over by the next run


def test_a_second_driver_is_told_who_holds_the_folder_before_snakemake_locks(tmp_path, demo_data):
    """Snakemake locks the working directory after parsing; the Snakefile names the holder first."""
    from conftest import hold_driver_lock, write_config

    results = tmp_path / "results"
    cfg = write_config(tmp_path / "config.yaml", results, demo_data)
    holder = hold_driver_lock(results, seconds=120)
    try:
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                               "--configfile", str(REPO / "demo/config.yaml"), str(cfg), "--directory", str(tmp_path)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        holder.kill()
        holder.wait()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"is in use by another driver (host" in out and f"pid {holder.pid}" in out and "do not use --unlock" in out
    assert out.index("in use by another driver") < out.index("Building DAG")


# --- where the results are: start and end of a run, paths relative to what ----------------------


def test_relative_paths_in_messages_say_relative_to_what(tmp_path, monkeypatch):
    from latentopt.workflow.sources import discover_splits

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        discover_splits("../shared/data/BSR", ["train"])
    assert str(err.value) == f"data.root: folder ../shared/data/BSR does not exist (relative to {tmp_path})"
    with pytest.raises(FileNotFoundError) as err:
        discover_splits(tmp_path / "nowhere", ["train"])
    assert "relative to" not in str(err.value)
    cfg = validate_config(seed_config(**{"analysis.categories.csv": "cats.csv"}))
    with pytest.raises(ConfigError, match=rf"file cats.csv does not exist \(relative to {tmp_path}\)"):
        check_config(cfg, losses=False)


def test_start_and_end_lines_name_absolute_paths_report_and_html_command(tmp_path, monkeypatch):
    import shlex

    from latentopt.workflow import messages

    monkeypatch.chdir(tmp_path)
    cfg = validate_config(seed_config(results_dir="results/demo", **{"data.root": "demo/data"}))
    start = messages.start_lines(cfg)
    assert start[0] == f"latentopt: results folder {tmp_path}/results/demo"
    assert start[1].startswith(f"latentopt: data root {tmp_path}/demo/data (working directory {tmp_path})")
    monkeypatch.setattr(sys, "argv", [".venv/bin/snakemake", "--cores", "2"])
    command = messages.report_command(cfg, tmp_path / "Snakefile", [tmp_path / "demo/config.yaml"], ["use_losses=['psnr']"])
    assert shlex.split(command) == [".venv/bin/snakemake", "--configfile", "demo/config.yaml",
                                    "--config", "use_losses=['psnr']", "--report", "results/demo/report.html"]
    elsewhere = messages.report_command(cfg, "/src/latentopt/Snakefile", ["/src/latentopt/demo/config.yaml"])
    assert "--snakefile /src/latentopt/Snakefile --configfile /src/latentopt/demo/config.yaml" in elsewhere
    end = messages.end_lines(cfg, command, ["LPIPS: random AlexNet/VGG trunk (uncalibrated)"])
    assert end[0] == f"latentopt: results in {tmp_path}/results/demo"
    assert end[1].startswith(f"latentopt: report {tmp_path}/results/demo/FULL_BSDS500_COMPARISON_REPORT.md")
    results = tmp_path / "results" / "demo"
    assert end[2:5] == [f"latentopt: report page {(results / 'FULL_BSDS500_COMPARISON_REPORT.html').as_uri()}",
                        f"latentopt: image explorer {(results / 'IMAGE_EXPLORER.html').as_uri()}",
                        f"latentopt: live progress {(results / 'live' / 'progress.html').as_uri()}"]
    assert end[5] == f"latentopt: HTML report (from {tmp_path}): {command}"
    assert end[6].startswith(f"latentopt: {messages.BANNER}: LPIPS: random") and len(end) == 7
    assert len(messages.end_lines(cfg, command, [])) == 6  # no banner for a calibrated run


def test_ctrl_c_during_a_script_jobs_start_up_is_one_line(tmp_path):
    """Before job_log (imports take seconds): SIGINT ends a Snakemake script job without a traceback;
    the driver (no ``snakemake`` object in __main__) keeps Python's default."""
    # SIGINT back to Python's own handler first: a process started in the background of a
    # non-interactive shell (a CI wrapper, `cmd &`) inherits SIGINT ignored, as a terminal's never is
    code = ("import os, signal, sys, time\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            f"sys.path.insert(0, {str(REPO / 'workflow_scripts')!r})\n"
            "{setup}"
            "import latentopt\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(5)\n")
    job = subprocess.run([sys.executable, "-c", code.format(setup="class Snakemake: pass\nsnakemake = Snakemake()\n")],
                         capture_output=True, text=True, timeout=60)
    assert job.returncode in (130, -2)
    assert job.stderr.strip().splitlines() == ["interrupted; finished results are kept; rerun the same command to resume"]
    driver = subprocess.run([sys.executable, "-c", code.format(setup="")], capture_output=True, text=True, timeout=60)
    assert driver.returncode in (130, -2) and "Traceback" in driver.stderr


def test_an_arm_waiting_for_others_keeps_its_rate_and_all_counts_wall_time(progress_setup):
    from latentopt.workflow.progress import busy_seconds, progress

    cfg, plan = progress_setup
    assert busy_seconds([(0, 10), (5, 20), (30, 40)], 0, 100) == 30  # a union: overlaps count once
    assert busy_seconds([(0, 10), (30, 40)], 35, 100) == 5
    now = 1_800_000_000.0
    ids = [(split, e.image_id) for split, entries in plan.splits.items() for e in entries]
    # baseline: one job from now-400 to now-340 (60 s busy), 4 images; then waiting
    b0 = now - 400
    lines = [f"===== attempt 1: {_stamp(b0)}, host h, pid 1 ====="]
    for k, (split, image_id) in enumerate(ids[:4]):
        _write_record(cfg, "baseline", split, image_id, b0 + 60)
        lines.append(f"{_stamp(b0 + 60)} [{k + 1}/4] {image_id}: ok PSNR 20.00 -> 20.00 dB, 0 it, 0.1 s")
    lines.append(f"{_stamp(b0 + 60)} wall-time split: encode 1.0 s")
    _write_log(cfg, "baseline", "test_000", lines)
    # psnr: started at now-300, still running, half of a 4-image batch done
    p0 = now - 300
    _write_log(cfg, "psnr", "test_000", [f"===== attempt 1: {_stamp(p0)}, host h, pid 2 =====", _progress_line(now - 5, 4, 15, 30)])
    status = progress(cfg, window_s=600, now=now)
    assert status["baseline"]["images_per_min"] == pytest.approx(4 / 1)  # 4 images in its 60 busy seconds
    assert status["psnr"]["images_per_min"] == pytest.approx(2 / 5)
    # all: 6 images' worth in the 400 s of wall time since the first job began (the 40 s gap
    # between the jobs is the run's time too)
    assert status["all"]["images_per_min"] == pytest.approx(6 / (400 / 60))
    # its ETA: each arm's images left at that arm's cost (baseline 60 job-s / 4 images, psnr
    # 300 / 2), over the parallelism of the window (360 job-s in 400 s of wall time): the cheap
    # plain decodes do not make the optimized images look cheap
    work = (plan.n_images - 4) * 15 + (plan.n_images - 2) * 150
    assert status["all"]["work_left_s"] == pytest.approx(work)
    assert status["all"]["eta_s"] == pytest.approx(work / (360 / 400))


def test_a_study_eta_adds_the_models_work_and_counts_a_model_not_started_at_the_others_cost():
    """Two models share the machine: their job-seconds left add up, over the parallelism of
    all their jobs together; a third model with nothing measured costs what the others cost per image."""
    from latentopt.workflow.live import _eta

    def row(total, ok, work, job_s, wall):
        return {"total": total, "ok": ok, "failed": 0, "partial": 0.0, "work_left_s": work, "job_s": job_s, "wall_s": wall}

    a, b = row(10, 6, 400.0, 300.0, 200.0), row(10, 8, 100.0, 100.0, 150.0)
    assert _eta([dict(a, eta_s=123.0)]) == 123.0  # one model: its own ETA
    assert _eta([a, b]) == pytest.approx(500 / (400 / 200))
    c = row(12, 0, None, 0.0, 0.0)  # 12 images at (400 + 100) / (4 + 2) job-s each
    assert _eta([a, b, c]) == pytest.approx((500 + 12 * 500 / 6) / (400 / 200))
    assert _eta([row(4, 0, None, 0.0, 0.0), row(4, 0, None, 0.0, 0.0)]) is None


def test_the_eta_counts_an_arm_not_started_yet_at_the_cost_of_the_started_ones(tmp_path, demo_data):
    """Three optimized arms, one measured (a job of 100 s did 2 images): the two arms whose jobs
    have not started cost 50 s an image too, not nothing; the plain decode costs its own."""
    from conftest import make_config
    from latentopt.workflow.plan import build_plan
    from latentopt.workflow.progress import progress

    cfg = make_config(tmp_path / "results", demo_data)
    plan = build_plan(cfg)
    assert set(plan.arms) == {"baseline", "psnr", "ssim", "lpips"}
    now = 1_800_000_000.0
    ids = [(split, e.image_id) for split, entries in plan.splits.items() for e in entries]
    b0, p0 = now - 200, now - 120
    for split, image_id in ids[:4]:
        _write_record(cfg, "baseline", split, image_id, b0 + 20)
    _write_log(cfg, "baseline", "test_000", [f"===== attempt 1: {_stamp(b0)}, host h, pid 1 =====",
                                              f"{_stamp(b0 + 20)} wall-time split: encode 1.0 s"])
    for split, image_id in ids[:2]:
        _write_record(cfg, "psnr", split, image_id, p0 + 100)
    _write_log(cfg, "psnr", "test_000", [f"===== attempt 1: {_stamp(p0)}, host h, pid 2 =====",
                                          f"{_stamp(p0 + 100)} wall-time split: encode 1.0 s"])
    row = progress(cfg, window_s=600, now=now)["all"]
    n = plan.n_images
    work = (n - 4) * 5 + (n - 2) * 50 + 2 * n * 50
    assert row["work_left_s"] == pytest.approx(work)
    assert row["eta_s"] == pytest.approx(work / (120 / 200))  # 120 job-s in the 200 s since the first job


def test_nothing_moved_in_the_window_falls_back_to_the_whole_history(progress_setup):
    from latentopt.workflow.progress import progress

    cfg, plan = progress_setup
    now = 1_800_000_000.0
    first = now - 1000  # a job that did 2 images in 100 s, long ago; a new one starting up now
    split, image_id = next((s, e.image_id) for s, entries in plan.splits.items() for e in entries)
    _write_record(cfg, "psnr", split, image_id, first + 100)
    other = next(e.image_id for e in plan.splits[split] if e.image_id != image_id)
    _write_record(cfg, "psnr", split, other, first + 100)
    _write_log(cfg, "psnr", "gate", [f"===== attempt 1: {_stamp(first)}, host h, pid 1 =====",
                                     f"{_stamp(first + 100)} wall-time split: x 1.0 s"])
    _write_log(cfg, "psnr", "test_000", [f"===== attempt 1: {_stamp(now - 50)}, host h, pid 2 ====="])
    s = progress(cfg, window_s=600, now=now)["psnr"]
    assert s["images_per_min"] == pytest.approx(2 / (150 / 60)) and s["eta_s"] is not None  # not "0.0, ETA -"


def test_the_start_up_before_a_logs_header_counts_as_running_time(progress_setup):
    """The header is written after the imports; the end line says how long they took."""
    from latentopt.workflow.progress import read_log

    t0 = 1_800_000_000.0
    lines = [f"===== attempt 1: {_stamp(t0)}, host h, pid 1 =====",
             f"{_stamp(t0 + 50)} wall-time split: python_start 2.0 s, imports 28.0 s, model_load 1.0 s",
             f"===== attempt 2: {_stamp(t0 + 100)}, host h, pid 2 ====="]
    state = read_log("\n".join(lines), t0 + 120)
    assert state.busy == [(t0 - 30, t0 + 50), (t0 + 100 - 30, t0 + 120)]  # the running one: the ended one's start-up
