"""Issue 11 end to end: faults injected into copies of the session's finished demo run
(conftest.finished_demo: 2 images per split, 2 per job, baseline + 3 losses), each rerun through
Snakemake. Every test asserts what the rerun rewrote (no more than the affected jobs), that nothing
was lost, and that the per-image numbers equal the untouched run's. The faults: latentopt/devtools/faults.py."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, hold_driver_lock, snakemake, snakemake_cmd, write_config

from latentopt.devtools.faults import (awkward_name, bit_flip_pt, broken_link, delete_dataset_png, lost, metric_rows,
                                       rewrite_source_keep_mtime, rewritten, snapshot, truncate_pt)
from latentopt.workflow import driverlock
from latentopt.core.fileio import read_json
from latentopt.devtools.snakemake_cli import chunk_stats, job_stats

pytestmark = pytest.mark.slow
ARMS = ("baseline", "psnr", "ssim", "lpips")


@pytest.fixture()
def copy(finished_demo, tmp_path):
    """A copy of the finished run in a new working directory (times kept), with its own config."""
    cfg, results = finished_demo
    src = results.parent
    shutil.copytree(src / "data", tmp_path / "data", symlinks=True)
    shutil.copytree(results, tmp_path / "results", symlinks=True)
    extra = yaml.safe_load(cfg.read_text())
    extra.pop("results_dir")
    data = extra.pop("data")
    data.pop("root")
    config = write_config(tmp_path / "config.yaml", tmp_path / "results", tmp_path / "data", data=data, **extra)
    return config, tmp_path / "results", tmp_path / "data", metric_rows(results)


def _chunk_files(split, arms, images=("*",)):
    return {f"{arm}_dataset/per_image/{split}/{i}.json" for arm in arms for i in images}


def _assert_numbers_equal(untouched, results):
    after = metric_rows(results)
    assert {k: after.get(k) for k in untouched} == untouched


def test_damaged_outputs_redo_only_their_jobs(copy):
    config, results, data, untouched = copy
    truncate_pt(results, data)          # psnr, train
    bit_flip_pt(results, data)          # baseline, test
    delete_dataset_png(results, data, arm="lpips")
    before = snapshot(results)
    plan = chunk_stats(snakemake(config, "-n", "--quiet", "rules").stdout)
    # the truncated psnr train image is a gate image: its gate reruns, and psnr's jobs after the gate
    # with it (they restore their images); the bit-flipped baseline image's job
    assert {r: n for r, n in plan.items() if r.startswith(("optimize_", "prepare_", "build_dataset"))} == {
        "optimize_gate_train_000": 1, "optimize_test_000": 2, "optimize_val_000": 1, "build_dataset": 3}, plan
    snakemake(config)
    done = rewritten(before, snapshot(results))
    per_image = {p for p in done if "/per_image/" in p}
    # the two damaged images; their chunk-mates were restored (before: 4 images computed again); the
    # unreadable val/corrupt's failure is recorded again by psnr's val job (failures are never restored)
    assert per_image == {"psnr_dataset/per_image/train/astronaut.json", "baseline_dataset/per_image/test/astronaut_face.json",
                         "psnr_dataset/per_image/val/corrupt.json"}, per_image
    assert {p for p in done if p.endswith("manifest.json")} == {f"{a}_dataset/manifest.json" for a in ("psnr", "baseline", "lpips")}
    assert lost(before, snapshot(results)) == []
    _assert_numbers_equal(untouched, results)
    assert "Nothing to be done" in snakemake(config, "-n").stdout


def test_changed_and_unreadable_sources_redo_only_their_jobs(copy):
    config, results, data, untouched = copy
    rewrite_source_keep_mtime(results, data)   # test: new bytes, same pixels, old mtime
    broken_link(results, data)                 # val: the corrupt JPEG becomes a dangling link
    before = snapshot(results)
    snakemake(config)
    done = rewritten(before, snapshot(results))
    # both chunks are prepared again; their optimization jobs rerun and restore every image whose
    # reference is unchanged (same pixels: the test split's, val's camera); only the now unreadable
    # image gets a new record (before the chunk manifests, every image of both chunks was optimized again)
    assert {p for p in done if "/per_image/" in p} == {f"{a}_dataset/per_image/val/corrupt.json" for a in ARMS}
    assert {p for p in done if p.startswith("prepared/")} == {"prepared/test/astronaut_face.json", "prepared/test/hubble.json",
                                                             "prepared/val/camera.json", "prepared/val/corrupt.json",
                                                             "prepared/chunks/test_000.json", "prepared/chunks/val_000.json"}
    assert not [p for p in done if "/train/" in p]
    corrupt = read_json(results / "psnr_dataset" / "per_image" / "val" / "corrupt.json")
    assert corrupt["failure_kind"] == "input" and "No such file" in corrupt["reason"]
    perf = read_json(results / "evaluation_results" / "performance_summary.json")["datasets"]["psnr"]
    assert perf["input_failures"] == 1 and perf["readable_images"] == 5 and perf["optimization_failures"] == 0
    report = (results / "FULL_BSDS500_COMPARISON_REPORT.md").read_text()
    assert "could not be read at all" in report and "| val | corrupt |" in report
    assert lost(before, snapshot(results)) == []
    rows = metric_rows(results)
    assert {k: rows.get(k) for k in untouched if k[2] != "corrupt"} == {k: v for k, v in untouched.items() if k[2] != "corrupt"}



def test_awkward_name_and_a_second_driver_from_another_directory(copy, tmp_path):
    """A driver elsewhere holds the folder: this one fails fast naming it and runs nothing; once
    that driver is killed, its lock is taken over and only the renamed image's jobs run."""
    config, results, data, untouched = copy
    awkward_name(results, data)  # train/chelsea.jpg -> 'chelsea{1} 100%.jpg'
    other = tmp_path / "elsewhere"
    other.mkdir()
    moved = other / "config.yaml"
    shutil.copy(config, moved)
    holder = hold_driver_lock(results, seconds=600)
    try:
        started = time.monotonic()
        out = snakemake(moved, check=False)
        text = out.stdout + out.stderr
        assert out.returncode != 0 and f"pid {holder.pid}" in text and "in use by another driver" in text, text[-3000:]
        assert "Finished jobid" not in text
        print(f"second driver refused in {time.monotonic() - started:.1f} s")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    before = snapshot(results)
    out = snakemake(moved)
    text = out.stdout + out.stderr
    assert "taking over the stale lock" in text and f"process {holder.pid} no longer exists" in text
    assert not (results / driverlock.LOCK_NAME).exists()
    done = rewritten(before, snapshot(results))
    # the renamed image is new in each arm; its chunk-mate astronaut is restored (before: computed
    # again); the losses' jobs after their re-judged gates restore theirs (val/corrupt's failure is
    # recorded again: failures are never restored)
    assert {p for p in done if "/per_image/" in p} == {f"{a}_dataset/per_image/train/chelsea%7B1%7D 100%25.json" for a in ARMS} | {
        f"{a}_dataset/per_image/val/corrupt.json" for a in ARMS if a != "baseline"}
    assert lost(before, snapshot(results)) == []
    _assert_numbers_equal(untouched, results)


def _as_unprivileged() -> list[str]:
    """A command prefix under which permission bits hold: none for a normal user; for root (who
    ignores them) a user namespace without mapping, where root's files are checked as owner's."""
    if os.geteuid() != 0:
        return []
    probe = subprocess.run(["unshare", "--user", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("running as root and no user namespace to drop the privilege")
    return ["unshare", "--user"]


def test_inspection_commands_work_on_a_read_only_finished_folder(copy):
    """-n, --summary and the progress command on a finished folder nobody may write."""
    config, results, data, _ = copy
    prefix = _as_unprivileged()
    for path in [results, *results.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "workflow_scripts")}

    def run(cmd):
        out = subprocess.run([*prefix, *cmd], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout + out.stderr

    try:
        probe = subprocess.run([*prefix, "touch", str(results / "probe")], capture_output=True)
        assert probe.returncode != 0, "the results folder is still writable"
        assert "Nothing to be done" in run(snakemake_cmd(config, "-n"))
        assert "manifest.json" in run(snakemake_cmd(config, "--summary"))
        progress = run([sys.executable, "-m", "latentopt.workflow.progress", "--configfile", str(REPO / "demo" / "config.yaml"), "--configfile", str(config)])
        assert "psnr" in progress and "baseline" in progress
    finally:
        for path in [results, *results.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)


# -- issue 16: one run applies a config change in full; every deliverable is a target -------------
def _set(config: Path, dotted: str, value) -> None:
    cfg = yaml.safe_load(config.read_text())
    node = cfg
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    config.write_text(yaml.safe_dump(cfg))


def _records(results: Path, arm: str) -> dict[str, dict]:
    return {str(p.relative_to(results)): read_json(p) for p in sorted((results / f"{arm}_dataset" / "per_image").rglob("*.json"))}


def test_a_loss_setting_change_is_applied_in_full_in_one_run(copy):
    """losses.psnr.lr 0.05 -> 0.02 on a finished run: before the fix, one run redid only the gate
    chunk (2 of 6 psnr images) and exited 0; the other chunks followed on a second run."""
    from latentopt.optimize.context import job_fingerprint
    from latentopt.workflow.config import arm_settings, load_config

    config, results, data, untouched = copy
    before = {arm: _records(results, arm) for arm in ARMS}
    _set(config, "losses.psnr.lr", 0.02)
    plan = chunk_stats(snakemake(config, "-n", "--quiet", "rules").stdout)
    chunks = {r for r in plan if r.startswith("optimize_")}
    assert chunks == {"optimize_gate_train_000", "optimize_test_000", "optimize_val_000"} and plan["record_settings"] == 1, plan
    snakemake(config)
    cfg = load_config([REPO / "demo" / "config.yaml", config])
    after = _records(results, "psnr")
    assert len(after) == len(before["psnr"]) == 6
    for path, record in after.items():  # every record of the loss carries the new settings
        assert record["fingerprint"] == job_fingerprint(arm_settings(cfg, "psnr"), record["model"]["weights_sha256"], results), path
        assert record["fingerprint"] != before["psnr"][path]["fingerprint"], path
    assert read_json(results / ".settings" / "psnr.json")["settings"]["lr"] == 0.02
    for arm in ("baseline", "ssim", "lpips"):  # untouched arms keep their records
        assert _records(results, arm) == before[arm], arm
    assert "Nothing to be done" in snakemake(config, "-n").stdout


def test_deleted_deliverables_are_made_again_with_only_what_depends_on_them(copy):
    """Deleted: an evaluation JSON, a per-image table, a dataset manifest, a preparation record, a
    gate verdict. Before: 'Nothing to be done', a real run exited 0 and they stayed missing."""
    config, results, data, untouched = copy
    deleted = ["evaluation_results/cross_evaluation_matrix.json", "evaluation_results/per_image/psnr.csv",
               "psnr_dataset/manifest.json", "prepared/val/camera.json", "quality_gate/ssim.json"]
    for rel in deleted:
        (results / rel).unlink()
    plan = chunk_stats(snakemake(config, "-n", "--quiet", "rules").stdout)
    # camera's chunk in each arm (prepared again), and ssim's jobs after its re-judged gate
    assert {r for r in plan if r.startswith("optimize_")} == {"optimize_val_000", "optimize_test_000"}, plan
    assert plan["optimize_val_000"] == 4 and plan["optimize_test_000"] == 1 and plan["prepare_val_000"] == 1, plan
    assert plan["quality_gate"] == 1 and "train_demo_model" not in plan and "optimize_gate_train_000" not in plan
    before = snapshot(results)
    snakemake(config)
    for rel in deleted:
        assert (results / rel).is_file(), rel
    done = rewritten(before, snapshot(results))
    # every job that reran restored its images (camera's reference is unchanged; before: camera was
    # computed again in every arm); only val/corrupt's failure is recorded again (never restored)
    assert {p for p in done if "/per_image/" in p} == {f"{a}_dataset/per_image/val/corrupt.json" for a in ARMS}, done
    assert lost(before, snapshot(results)) == []
    _assert_numbers_equal(untouched, results)
    assert "Nothing to be done" in snakemake(config, "-n").stdout


def test_damaged_gate_verdict_weights_and_tables_are_planned_again_and_a_dry_run_moves_nothing(copy):
    """Dry runs only. Before: a truncated gate JSON failed every report job with a bare
    JSONDecodeError; a truncated demo autoencoder failed every optimize job and was never retrained;
    truncated evaluation JSON/CSV were kept; a wrong-shaped hash cache crashed -n; and (until issue
    26) the dry run itself moved the damaged files into quarantine."""
    config, results, data, untouched = copy
    cache = results / ".integrity" / "hash_cache.json"
    cache.parent.mkdir(exist_ok=True)
    cache.write_text('{"files": [1, 2]}')
    for rel in ("evaluation_results/statistical_analysis.json", "evaluation_results/per_image_metrics.csv"):
        path = results / rel
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = _tree(results)
    out = snakemake(config, "-n", "--quiet", "rules")
    text = out.stdout + out.stderr
    plan = chunk_stats(out.stdout)
    assert "discarding the hash cache" in text and str(cache) in text
    assert plan["summarize_evaluation"] == 1 and plan["report"] == 1, plan
    assert not [r for r in plan if r.startswith(("optimize_", "prepare_", "build_dataset", "quality_gate"))], plan
    assert _tree(results) == before and not (results / ".integrity" / "quarantine").exists()
    verdict = results / "quality_gate" / "psnr.json"
    verdict.write_bytes(verdict.read_bytes()[: verdict.stat().st_size // 2])
    out = snakemake(config, "-n", "--quiet", "rules")
    plan = chunk_stats(out.stdout)
    assert plan["quality_gate"] == 1 and plan["report"] == 1, plan
    # the jobs after the gate rerun with it (and restore their images): the damaged tables below
    # are planned in this run (before, through an ancient() edge, they were left for the next run)
    assert "summarize_evaluation" in plan and "does not plan its job in this run" not in out.stdout + out.stderr
    weights = results / "demo_model" / "demo_autoencoder.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    plan = chunk_stats(snakemake(config, "-n", "--quiet", "rules").stdout)
    assert plan["train_demo_model"] == 1 and plan["optimize_gate_train_000"] == 4, plan
    assert weights.exists()


# -- issue 26: a dry run changes nothing; every byte accounted for; a settings file is derived -----
def _tree(results: Path) -> dict[str, str]:
    """sha256 of every file under ``results``, hidden folders included (.integrity, .settings, ...)."""
    from latentopt.core.fileio import sha256_file

    return {str(p.relative_to(results)): sha256_file(p) for p in sorted(results.rglob("*")) if p.is_file()}


def _executed(text: str) -> dict[str, int]:
    """Rule -> number of jobs a run finished (its 'Finished jobid: N (Rule: X)' lines)."""
    import collections
    import re

    return dict(collections.Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\S+)\)", text)))


def _planned(config: Path, *args: str) -> tuple[dict[str, int], str]:
    out = snakemake(config, "-n", "--quiet", "rules", *args)
    plan = job_stats(out.stdout)
    plan.pop("total", None)
    return plan, out.stdout + out.stderr


def test_a_dry_run_with_a_config_edit_and_damage_changes_no_byte_and_plans_what_the_run_does(copy):
    """Before: a dry run moved a damaged file and the settings file of an edited arm into
    .integrity/quarantine (and a dry run with the original config then planned the whole arm again).
    Now -n, --summary and --detailed-summary leave every byte under the results folder as it was;
    the real run then executes exactly the jobs the dry run planned."""
    config, results, data, untouched = copy
    table = results / "evaluation_results" / "per_image" / "ssim.csv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:-2]))  # cut at a line boundary
    before = _tree(results)
    edit = ("--config", "losses={psnr: {lr: 0.02}}")
    plan, text = _planned(config, *edit)
    for args in (("--summary",), ("--detailed-summary",)):
        snakemake(config, *args, *edit)
    assert _tree(results) == before
    assert plan["record_settings"] == 1 and plan["evaluate_dataset"] == 2, plan  # psnr (edited), ssim (cut table)
    assert "integrity:" in text and "evaluation_results/per_image/ssim.csv" in text and "a real run first moves" in text
    again, _ = _planned(config)  # the original config: only the damage, nothing of psnr
    assert not [r for r in again if r.startswith("optimize_") or r == "record_settings"], again
    run = snakemake(config, *edit)
    assert _executed(run.stdout + run.stderr) == plan
    assert "Nothing to be done" in snakemake(config, "-n", *edit).stdout


def test_cuts_at_line_boundaries_a_cut_report_and_a_changed_digit_are_rebuilt_in_one_run(copy):
    """Before: each of these still parsed, so nothing was redone (a cut per-image table made the
    report's headline read 'lpips 4/4'; a changed PSNR digit reached the dataset)."""
    config, results, data, untouched = copy
    ev = results / "evaluation_results"
    cut = [ev / "per_image" / "lpips.csv", ev / "per_image_metrics.csv", ev / "image_categories.csv"]
    for path in cut:
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[: len(lines) // 2]))
    report = results / "FULL_BSDS500_COMPARISON_REPORT.md"
    report.write_text(report.read_text()[: report.stat().st_size // 2])
    record = results / "psnr_dataset" / "per_image" / "test" / "astronaut_face.json"
    original = read_json(record)["final"]["psnr"]
    text = record.read_text()
    shown = f"{original}"
    digit = next(i for i, c in enumerate(shown) if c.isdigit() and c != "9")
    record.write_text(text.replace(shown, shown[:digit] + str(int(shown[digit]) + 1) + shown[digit + 1:], 1))
    damaged = [*cut, report, record]
    plan, text = _planned(config)
    for path in damaged:
        assert str(path.relative_to(results)) in text, path
    assert plan.get("optimize_test_000_psnr") == 1 and plan["report"] == 1, plan
    run = snakemake(config)
    assert _executed(run.stdout + run.stderr) == plan
    quarantined = {"/".join(p.relative_to(results / ".integrity" / "quarantine").parts[1:])
                   for p in (results / ".integrity" / "quarantine").rglob("*") if p.is_file() and not p.name.endswith(".sha256")}
    assert {str(p.relative_to(results)) for p in damaged} <= quarantined
    assert read_json(record)["final"]["psnr"] == original
    _assert_numbers_equal(untouched, results)
    assert len(metric_rows(results)) == len(untouched)
    assert "Nothing to be done" in snakemake(config, "-n").stdout


def test_a_damaged_or_missing_settings_file_is_written_again_and_no_image_is_optimized_again(copy):
    """Before: a damaged .settings/<arm>.json was quarantined and every image of the arm was
    optimized again (identical numbers). Now its job writes it again and the arm's jobs restore
    their finished images (fingerprints unchanged) instead of optimizing them; either way the
    numbers stay the same and nothing else is redone."""
    config, results, data, untouched = copy
    damaged, missing = results / ".settings" / "psnr.json", results / ".settings" / "ssim.json"
    damaged.write_text(damaged.read_text()[:-40])
    missing.unlink()
    pts = {p: p.read_bytes() for arm in ("psnr", "ssim") for p in (results / f"{arm}_dataset" / "per_image").rglob("*.pt")
           if read_json(p.with_suffix(".json"))["status"] == "ok"}
    plan, text = _planned(config)
    assert plan["record_settings"] == 2, plan
    run = snakemake(config)
    assert _executed(run.stdout + run.stderr) == plan
    for path, data_ in pts.items():
        assert path.read_bytes() == data_, path  # restored, not optimized again
    # Restored here only where the fingerprint matches: in this copied folder it does not (the demo
    # autoencoder's path under results_dir is part of the settings), so the images were optimized
    # again, to the same bytes; the restore itself: tests/test_integrity.py
    assert read_json(damaged)["settings"]["arm"] == "psnr" and missing.is_file()
    _assert_numbers_equal(untouched, results)
    assert not (results / ".checkpoints" / "psnr").exists() or not list((results / ".checkpoints" / "psnr").rglob("*.pt"))
    assert "Nothing to be done" in snakemake(config, "-n").stdout


def test_a_forced_job_computes_its_images_again_and_a_deleted_image_is_restored_around(copy):
    """Per-image files are not declared outputs (the chunk manifest is, latentopt.workflow.chunks).
    A deleted per-image file reruns its chunk, which restores the chunk's other images; a job the
    user forces (--forcerun) computes all of its images again (the driver removes its listed files
    first, as Snakemake removes a forced job's declared outputs). Numbers equal the untouched run."""
    config, results, data, untouched = copy
    log = results / "logs" / "optimize" / "psnr" / "test_000.log"
    pts = sorted((results / "psnr_dataset" / "per_image" / "test").glob("*.pt"))
    assert len(pts) == 2
    pts[0].unlink()
    run = snakemake(config)
    assert "integrity:" in run.stdout + run.stderr
    text = log.read_text().rsplit("===== attempt", 1)[-1]  # this run's attempt of the job
    assert f"{pts[1].stem}: finished earlier with these settings" in text and f"{pts[0].stem}: ok" in text, text[-2000:]
    run = snakemake(config, "--forcerun", "optimize_test_000_psnr")
    assert "psnr_dataset/chunks/test_000.json: forced, its 2 image(s) are computed again" in run.stdout + run.stderr
    text = log.read_text().rsplit("===== attempt", 1)[-1]
    assert "finished earlier" not in text and all(f"{p.stem}: ok" in text for p in pts), text[-2000:]
    _assert_numbers_equal(untouched, results)
    assert "Nothing to be done" in snakemake(config, "-n").stdout


def test_damage_on_a_read_only_results_folder_stops_the_run_saying_why(copy):
    """Before: 'NOT moving ... Permission denied', then 'Nothing to be done', exit 0. A read-only
    bind mount (root ignores permission bits)."""
    config, results, data, untouched = copy
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespace to make a read-only bind mount")
    table = results / "evaluation_results" / "per_image" / "psnr.csv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:-1]))
    before = _tree(results)
    cmd = " ".join(map(shlex.quote, snakemake_cmd(config)))
    script = f"mount --bind {shlex.quote(str(results))} {shlex.quote(str(results))} && mount -o remount,bind,ro {shlex.quote(str(results))} && {cmd}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "workflow_scripts")}
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    # Snakemake itself refuses first when it sees the outputs to redo cannot be written
    # (ProtectedOutputException); else the run's own check before the first job does ("cannot start")
    assert ("cannot start" in text or "ProtectedOutputException" in text) and "Finished jobid" not in text, text[-3000:]
    assert "evaluation_results/per_image/psnr.csv" in text and "a real run first moves" in text
    assert _tree(results) == before


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory, demo_data):
    """A small finished study: two synthetic autoencoders, psnr with a 2-value lr sweep, one image
    per split, 4 iterations (minutes)."""
    tmp = tmp_path_factory.mktemp("study")
    data = tmp / "data"
    shutil.copytree(demo_data, data)
    cfg = write_config(
        tmp / "config.yaml", tmp / "results", data,
        models={"small": {"kind": "synthetic_kl", "seed": 1}, "large": {"kind": "synthetic_kl", "seed": 2}},
        allow_synthetic=True,
        use_losses=["psnr"],
        data={"limit_per_split": 1},
        run={"images_per_job": 1, "batch_size": 1},
        losses={"psnr": {"iterations": 4, "lr": [0.05, 0.1]}},
        quality_gate={"images_per_loss": 0},
        evaluation={"n_boot": 20, "fid_n_boot": 10},
    )
    snakemake(cfg, timeout=1800)
    return cfg, tmp / "results"


def test_a_dry_run_on_a_finished_study_changes_no_byte_and_a_removed_sweep_value_is_listed(finished_study):
    """Before: each model's parse-time check moved files (dry runs included, per-model lock). Now a
    dry run with a config edit leaves the study's tree byte-identical and plans what the run does;
    the run lists the outputs of the sweep value no longer in the config (kept)."""
    config, results = finished_study
    before = _tree(results)
    edit = ("--config", "losses={psnr: {lr: [0.05, 0.2]}}")  # 0.1 removed, 0.2 added
    plan, _ = _planned(config, *edit)
    snakemake(config, "--summary", *edit)
    assert _tree(results) == before
    assert plan["small_record_settings"] == 1 and plan["large_record_settings"] == 1, plan
    assert not [r for r in plan if "lr0.05" in r], plan  # the kept sweep value is not redone
    run = snakemake(config, *edit)
    text = run.stdout + run.stderr
    assert _executed(text) == plan
    assert "not part of this config's run" in text and "psnr-lr0.1_dataset/" in text
    assert (results / "small" / "psnr-lr0.1_dataset").is_dir()  # kept
    assert "Nothing to be done" in snakemake(config, "-n", *edit).stdout
