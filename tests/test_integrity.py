"""Integrity of inputs, outputs and the results folder (issue 11), fault by fault, on a small finished
tree built with the library (real synthetic model, demo photos, no Snakemake: seconds). Each test
builds its fault and asserts what is found, what is kept and what would be redone. The same faults
through Snakemake end to end: tests/test_integrity_pipeline.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import hold_driver_lock, make_config

from latentopt.workflow import driverlock, layout
from latentopt.workflow.config import arm_settings, check_config, synthetic_spec
from latentopt.workflow.weights import metric_weight_files
from latentopt.data.datasets import DatasetInputError, build_dataset, load_dataset
from latentopt.analysis.criteria import success_criteria
from latentopt.workflow.sources import discover_splits, image_id
from latentopt.analysis.input_failures import input_failures_table, summary
from latentopt.workflow.integrity import HashCache, verify_results
from latentopt.optimize.job import optimize_chunk
from latentopt.workflow.job_params import optimize_job_args
from latentopt.core.joblog import job_log
from latentopt.workflow.plan import build_plan
from latentopt.data.prepare import prepare_chunk

ARMS = ("baseline", "psnr")


def _build(cfg, plan, arm):
    results = cfg["results_dir"]
    ids = [(s, e.image_id) for s, es in plan.splits.items() for e in es]
    return build_dataset(
        arm,
        [layout.per_image(results, arm, s, i, "json") for s, i in ids],
        [layout.per_image(results, arm, s, i, "pt") for s, i in ids],
        layout.dataset_png_dir(results, arm), layout.dataset_file(results, arm), manifest=layout.dataset_manifest(results, arm),
        settings=arm_settings(cfg, arm), experiment_id=cfg["experiment_id"], synthetic=synthetic_spec(cfg),
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory, demo_data):
    """A finished tree: 2 train images (batch 2), baseline + psnr (3 iterations), both datasets."""
    root = tmp_path_factory.mktemp("finished")
    data = root / "data"
    (data / "train").mkdir(parents=True)
    for name in ("astronaut", "coffee"):
        shutil.copy2(demo_data / "train" / f"{name}.jpg", data / "train")
    cfg = make_config(root / "results", data, **{"data.splits": ["train"], "use_losses": ["psnr"], "losses.psnr.iterations": 3, "run.batch_size": 2})
    plan = build_plan(cfg)
    (chunk,) = plan.chunks
    prepare_chunk(list(chunk.entries), cfg["preprocess"], cfg["results_dir"],
                  manifest=layout.prepared_manifest(cfg["results_dir"], chunk.name), log=lambda m: None)
    for arm in ARMS:
        optimize_chunk(**optimize_job_args(cfg, arm, "train", chunk.image_ids, chunk=chunk.name), device="cpu", log=lambda m: None)
        _build(cfg, plan, arm)
    return root


@pytest.fixture()
def tree(finished, tmp_path):
    """A copy of the finished tree (times kept) and its config and plan."""
    shutil.copytree(finished, tmp_path / "t", symlinks=True)
    cfg = make_config(tmp_path / "t" / "results", tmp_path / "t" / "data", **{"data.splits": ["train"], "use_losses": ["psnr"], "losses.psnr.iterations": 3, "run.batch_size": 2})
    return cfg, build_plan(cfg), Path(cfg["results_dir"])


def _chunk(plan, arm=None):
    """The manifest of the tree's one chunk (relative path): of ``arm``'s job, or the preparation's."""
    (chunk,) = plan.chunks
    return f"{arm}_dataset/chunks/{chunk.name}.json" if arm else f"prepared/chunks/{chunk.name}.json"


def _findings(cfg, plan, **kw):
    return {str(Path(f.output).relative_to(cfg["results_dir"])): f for f in verify_results(cfg, plan, log=lambda m: None, **kw)}


def _redo(cfg, plan, **kw):
    return {str(Path(f.output).relative_to(cfg["results_dir"])): f.reason for f in verify_results(cfg, plan, log=lambda m: None, **kw)}


def test_untouched_tree_verifies_by_the_writers_records_without_hashing(tree):
    """Every output carries its writer's record (size, mtime, sha256): an untouched tree verifies by
    size and mtime alone; LATENTOPT_VERIFY=full hashes every file and agrees."""
    cfg, plan, results = tree
    cache = HashCache(results)
    assert verify_results(cfg, plan, log=lambda m: None, cache=cache) == []
    # only the sources are hashed: copied with their times, their ctime changed (a real run then
    # keeps their checksums in the hash cache)
    assert cache.hashed == plan.n_images
    full = HashCache(results, full=True)
    assert verify_results(cfg, plan, log=lambda m: None, cache=full) == []
    # every file its writer recorded, once (per-image files through their chunk's manifest), and
    # every source (outside the results folder)
    declared = [r for r in results.rglob(".*.sha256") if ".checkpoints" not in r.relative_to(results).parts]
    assert full.hashed == len(declared) + plan.n_images


@pytest.mark.parametrize("fault", ["truncated", "bit_flip", "deleted", "garbled_json"])
def test_a_damaged_per_image_file_redoes_only_its_job(tree, fault):
    cfg, plan, results = tree
    pt = layout.per_image(results, "psnr", "train", "coffee", "pt")
    js = layout.per_image(results, "psnr", "train", "coffee", "json")
    data = pt.read_bytes()
    if fault == "truncated":
        pt.write_bytes(data[: len(data) // 2])
    elif fault == "bit_flip":
        pt.write_bytes(data[:1000] + bytes([data[1000] ^ 0x01]) + data[1001:])
    elif fault == "deleted":
        pt.unlink()
    else:
        js.write_text(js.read_text()[:40])
    found = _findings(cfg, plan)
    damaged = pt if fault != "garbled_json" else js
    assert list(found) == [_chunk(plan, "psnr")], found
    assert str(damaged) in found[_chunk(plan, "psnr")].reason
    # a real run moves the manifest and the damaged file aside; the chunk's intact files stay
    assert found[_chunk(plan, "psnr")].files == (damaged,)


def test_a_silent_bit_flip_is_found_by_the_full_check(tree):
    """Silent corruption (content changed, size and mtime not): the fast check, which trusts the
    writer's record while size and mtime are unchanged, cannot see it; LATENTOPT_VERIFY=full can."""
    cfg, plan, results = tree
    pt = layout.per_image(results, "baseline", "train", "astronaut", "pt")
    st = pt.stat()
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0x10
    with open(pt, "r+b") as fh:  # in place: same inode, same size
        fh.write(data)
    os.utime(pt, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _redo(cfg, plan) == {}
    assert list(_redo(cfg, plan, full=True)) == [_chunk(plan, "baseline")]


@pytest.mark.parametrize("fault", ["cut_at_a_line", "one_digit", "cut_text"])
def test_a_change_that_still_parses_is_found_by_the_writers_record(tree, fault):
    """Before the records, a per-image table cut at a line boundary, a per-image record with one
    changed digit (PSNR 26.22 -> 29.22) and a report cut in the middle all passed (they parse)."""
    from latentopt.core.fileio import write_text

    cfg, plan, results = tree
    table = layout.per_arm_table(results, "psnr")
    table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": ["astronaut", "coffee"], "psnr": [26.22, 27.5]}).to_csv(table, index=False)
    write_text(table, table.read_text())  # through the writer: with its record
    report = layout.report_file(results)
    write_text(report, "# Report\n\nlpips 8/8 images improved.\n\n## Appendix\n\nMore.\n")
    record = layout.per_image(results, "psnr", "train", "coffee", "json")
    if fault == "cut_at_a_line":
        target = table
        target.write_text("".join(target.read_text().splitlines(keepends=True)[:2]))
    elif fault == "cut_text":
        target = report
        target.write_text(target.read_text()[:30])
    else:
        target = record
        text = target.read_text()
        value = json.loads(text)["final"]["psnr"]
        old = f"{value}"
        digit = next(i for i, c in enumerate(old) if c.isdigit() and c != "9")
        new = old[:digit] + str(int(old[digit]) + 1) + old[digit + 1:]
        assert old in text
        target.write_text(text.replace(old, new, 1))
    redo = _redo(cfg, plan)
    rel = str(target.relative_to(results)) if target != record else _chunk(plan, "psnr")
    assert list(redo) == [rel], redo
    assert "is not the file its writer wrote" in redo[rel] or "is not the file its job wrote" in redo[rel]


@pytest.mark.parametrize("fault", ["deleted_png", "extra_png", "changed_dataset_pt"])
def test_a_damaged_dataset_is_rebuilt(tree, fault):
    cfg, plan, results = tree
    png = layout.dataset_png_dir(results, "psnr") / "train" / "astronaut.png"
    if fault == "deleted_png":
        png.unlink()
    elif fault == "extra_png":
        shutil.copy(png, png.with_name("stray.png"))
    else:
        with open(layout.dataset_file(results, "psnr"), "ab") as fh:
            fh.write(b"\0")
    assert list(_redo(cfg, plan)) == ["psnr_dataset/manifest.json"]


def test_a_source_rewritten_with_its_old_mtime_is_prepared_again(tree):
    cfg, plan, results = tree
    src = Path(cfg["data"]["root"]) / "train" / "coffee.jpg"
    st = src.stat()
    with open(src, "ab") as fh:  # bytes after the JPEG end marker: new content, same pixels
        fh.write(b"restored from backup")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    redo = _redo(cfg, plan)
    assert list(redo) == [_chunk(plan)] and f"source {src} changed since it was prepared" in redo[_chunk(plan)]


def test_a_failed_build_names_the_file_and_keeps_the_previous_dataset(tree):
    cfg, plan, results = tree
    before = {p: p.read_bytes() for p in layout.arm_dir(results, "psnr").rglob("*") if p.is_file() and "per_image" not in p.parts}
    pt = layout.per_image(results, "psnr", "train", "coffee", "pt")
    pt.write_bytes(pt.read_bytes()[:100])
    with pytest.raises(DatasetInputError, match=str(pt)):
        _build(cfg, plan, "psnr")
    after = {p: p.read_bytes() for p in layout.arm_dir(results, "psnr").rglob("*") if p.is_file() and "per_image" not in p.parts}
    assert after == before  # .pt, PNG tree and manifest untouched, no staging left behind
    assert len(load_dataset(layout.dataset_file(results, "psnr"))["samples"]) == 2


def test_per_image_files_hold_only_their_own_tensors(tree):
    cfg, plan, results = tree
    for arm in ARMS:  # the jobs ran with batch_size 2
        payload = torch.load(layout.per_image(results, arm, "train", "astronaut", "pt"), weights_only=True)
        for key in ("z0", "z", "decoded"):
            t = payload[key]
            assert t.untyped_storage().nbytes() == t.numel() * t.element_size(), (arm, key)


def test_awkward_names_broken_and_looping_links_are_planned(tmp_path, demo_data):
    split = tmp_path / "train"
    split.mkdir()
    shutil.copy(demo_data / "train" / "coffee.jpg", split / "a{b} c%[1]'é.jpg")
    (split / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (split / "loop.png").symlink_to(split / "loop.png")
    (split / "Thumbs.db").write_bytes(b"x")
    (split / "._coffee.jpg").write_bytes(b"AppleDouble")
    found = discover_splits(tmp_path, ["train"])["train"]
    ids = [e.image_id for e in found]
    assert ids == ["a%7Bb%7D c%25[1]'é", "broken", "loop"]
    cfg = make_config(tmp_path / "results", tmp_path, **{"data.splits": ["train"]})
    records = {r["image_id"]: r for r in prepare_chunk(found, cfg["preprocess"], cfg["results_dir"], log=lambda m: None)}
    assert records["a%7Bb%7D c%25[1]'é"]["status"] == "ok"
    for bad in ("broken", "loop"):
        assert records[bad]["status"] == "failed" and records[bad]["failure_kind"] == "input"
        assert records[bad]["source_sha256"] is None and str(split / f"{bad}") in records[bad]["reason"]


def test_image_id_escapes_what_snakemake_reads_and_is_reversible():
    from urllib.parse import unquote

    for stem in ["plain", "a{b}", "50%", "tab\there", "é ü", os.fsdecode(b"bad\xffbyte")]:
        safe = image_id(stem)
        assert not set(safe) & set("{}\t") and "\udcff" not in safe
        assert unquote(safe, errors="surrogateescape") == stem
    assert image_id("ordinary_name-1.2") == "ordinary_name-1.2"


def test_job_log_keeps_every_attempt(tmp_path):
    log = tmp_path / "logs" / "job.log"
    with pytest.raises(RuntimeError):
        with job_log(log) as say:
            say("first attempt working")
            raise RuntimeError("injected failure in attempt 1")
    log.unlink()  # what Snakemake does before a retry or a rerun
    with job_log(log) as say:
        say("second attempt working")
    text = log.read_text()
    assert text.count("===== attempt ") == 2 and "===== attempt 2:" in text
    assert text.index("injected failure in attempt 1") < text.index("second attempt working")
    assert "Traceback" in text



def test_a_second_driver_fails_fast_naming_the_holder_and_a_killed_ones_lock_is_taken_over(tmp_path):
    holder = hold_driver_lock(tmp_path)
    try:
        with pytest.raises(driverlock.LockHeld, match=f"host {socket.gethostname()}, pid {holder.pid}"):
            driverlock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    messages = []
    lock = driverlock.acquire(tmp_path, log=messages.append)
    assert len(messages) == 1 and f"process {holder.pid} no longer exists" in messages[0]
    assert json.loads((tmp_path / driverlock.LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / driverlock.LOCK_NAME).exists()


def test_a_lock_from_another_host_is_stale_only_without_heartbeat(tmp_path):
    path = tmp_path / driverlock.LOCK_NAME
    path.write_text(json.dumps({"host": "other-node", "pid": 1, "started_at": "earlier", "cwd": "/elsewhere"}))
    with pytest.raises(driverlock.LockHeld, match="other-node"):
        driverlock.acquire(tmp_path)
    old = time.time() - driverlock.STALE_AFTER_S - 60
    os.utime(path, (old, old))
    messages = []
    driverlock.acquire(tmp_path, log=messages.append).release()
    assert "no heartbeat" in messages[0] and "other-node" in messages[0]


def test_the_heartbeat_keeps_a_live_lock_fresh(tmp_path):
    lock = driverlock.acquire(tmp_path, heartbeat_s=0.05)
    old = time.time() - 1000
    os.utime(lock.path, (old, old))
    time.sleep(0.3)
    assert time.time() - lock.path.stat().st_mtime < 10
    lock.release()


def test_use_losses_scopes_the_checks_and_the_weights(tmp_path):
    cfg = make_config(tmp_path / "r", tmp_path, **{
        "use_losses": ["psnr"],
        "losses.lpips.loss": {"name": "lpips", "net": "alex", "random_trunk": False},
        "losses.broken": {"loss": {"name": "no_such_loss"}},
    })
    check_config(cfg)  # the unused, broken entry is not checked
    assert not [f for f in metric_weight_files(cfg) if "lpips" in str(f.path)]
    cfg["use_losses"] = ["psnr", "lpips"]
    assert [f for f in metric_weight_files(cfg) if "alex" in str(f.path)]


def test_unreadable_inputs_are_counted_apart_and_the_success_rate_is_on_readable_images():
    rows = pd.DataFrame([
        {"dataset": "psnr", "split": "val", "image_id": "a", "status": "ok", "reason": None, "failure_kind": None, "time_s": 1.0},
        {"dataset": "psnr", "split": "val", "image_id": "b", "status": "failed", "reason": "timeout", "failure_kind": "optimization", "time_s": None},
        {"dataset": "psnr", "split": "val", "image_id": "c", "status": "failed", "reason": "preparation failed: cannot read", "failure_kind": "input", "time_s": None},
    ])
    s = summary(rows)
    assert (s["readable_images"], s["input_failures"], s["optimization_failures"]) == (2, 1, 1)
    table = input_failures_table({"datasets": {"psnr": s, "baseline": s}}, ["baseline", "psnr"])
    assert table["rows"] == [["val", "c", "preparation failed: cannot read"]]
    from latentopt.report import unreadable_images

    assert unreadable_images({"datasets": {"psnr": s}}, ["psnr"])["rows"] == [["val", "c", "preparation failed: cannot read"]]
    from latentopt.workflow.analysis_settings import SummarySettings
    from latentopt.workflow.synthetic import SyntheticParts

    settings = SummarySettings(experiment_id="t", synthetic=SyntheticParts(), n_boot=10, fid_n_boot=10, seed=0, alpha=0.05,
                               min_success_rate=0.9, min_fid_improvement=0.1, time_budget_hours=1,
                               objectives={"psnr": frozenset({"psnr", "mse"})}, uncalibrated=frozenset(), lpips_calibrated=True,
                               splits=("val",), limit_per_split=None, preprocess={"mode": "center_crop", "multiple": 8, "size": 512, "crop_box": None})
    cross = {"datasets": {"psnr": {"all": {}}, "baseline": {"all": {}}}}
    rate = success_criteria(settings, rows, ["baseline", "psnr"], cross, {})["psnr"]["success_rate"]
    assert rate["value"] == 0.5 and rate["of_readable_images"] == 2


# -- issue 16: every output kind verified by one declaration; quarantine; the hash cache ----------
def _extra_outputs(cfg, plan, results):
    """Write one healthy file of each kind the fixture tree lacks (gate verdict, evaluation JSON and
    CSV, features .npz, demo weights, figures, report) where the layout declares it."""
    import numpy as np
    from PIL import Image

    from latentopt.workflow.integrity import outputs_of

    made = {}
    for out in outputs_of(cfg, plan):
        if out.path.exists() or out.kind in ("per-image record", "prepared record", "dataset manifest"):
            continue
        out.path.parent.mkdir(parents=True, exist_ok=True)
        if out.verify == "settings":
            arm = out.path.stem
            out.path.write_text(json.dumps({"arm": arm, "results_dir": str(results), "settings": arm_settings(cfg, arm)}, indent=2) + "\n")
        elif out.verify == "json":
            out.path.write_text(json.dumps({"kind": out.kind, "values": list(range(50))}, indent=2) + "\n")
        elif out.verify == "csv":
            pd.DataFrame({"image_id": [f"im{i}" for i in range(20)], "psnr": np.linspace(20, 30, 20)}).to_csv(out.path, index=False)
        elif out.verify == "zip" and out.path.suffix == ".npz":
            np.savez(out.path, mu=np.arange(64.0), sigma=np.eye(8))
        elif out.verify == "zip":
            torch.save({"w": torch.arange(256.0)}, out.path)
        elif out.verify == "png_dir":
            out.path.mkdir(exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(out.path / "figure.png")
        elif out.verify == "text":
            out.path.write_text("# Report\n\nNumbers.\n")
        made[out.kind] = out
    return made


def test_every_declared_verification_has_its_check_and_an_unknown_one_cannot_be_declared():
    from latentopt.workflow.integrity import VERIFIERS

    assert set(VERIFIERS) == set(layout.VERIFY)
    with pytest.raises(ValueError, match="unknown verification"):
        layout.Output("new kind", Path("x.bin"), "trust me")


def test_every_kind_of_output_is_verified_and_a_truncated_one_is_named(tree):
    cfg, plan, results = tree
    cfg["model"]["kind"] = "demo_trained"  # the demo's weights are an output then
    made = _extra_outputs(cfg, plan, results)
    assert {"quality gate verdict", "evaluation result", "evaluation table", "demo model weights", "report figures",
            "report", "arm settings"} <= set(made)
    assert _redo(cfg, plan) == {}  # healthy files of every kind verify
    for kind, out in made.items():  # text has no recorded checksum: only an empty or non-UTF-8 one is seen
        target = next(out.path.glob("*.png")) if out.verify == "png_dir" else out.path
        data = target.read_bytes()
        target.write_bytes(b"" if out.verify == "text" else data[: len(data) // 2])
        redo = _redo(cfg, plan)
        rel = str(out.path.relative_to(results))
        assert list(redo) == [rel] and str(target) in redo[rel], (kind, redo)
        target.write_bytes(data)


@pytest.mark.parametrize("content", ['{"files": [1, 2]}', '{"files": {"a.pt": 5}}', "[1, 2]", '{"files": {"a.pt": [1, 2, 3, "x", 9]}}', "{trunc"])
def test_a_damaged_or_wrong_shaped_hash_cache_is_discarded_with_a_warning(tree, content):
    from latentopt.workflow.integrity import apply, inspect

    cfg, plan, results = tree
    cache_path = results / ".integrity" / "hash_cache.json"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(content)
    messages = []
    inspection = inspect(cfg, plan, log=messages.append)
    assert inspection.findings == [] and cache_path.read_text() == content  # an inspection writes nothing
    assert len(messages) == 1 and "discarding the hash cache" in messages[0] and str(cache_path) in messages[0]
    apply(inspection, log=messages.append)  # a real run
    assert isinstance(json.loads(cache_path.read_text())["files"], dict)  # rewritten, whole


def test_the_hash_cache_is_written_only_by_a_real_run_when_it_changed_and_forgets_vanished_files(tree):
    from latentopt.workflow.integrity import apply, inspect

    cfg, plan, results = tree
    cache_path = results / ".integrity" / "hash_cache.json"
    gone = layout.original_png(results, "train", "coffee")
    os.utime(gone, ns=(0, 10**18))  # not as recorded: hashed, and the hash kept in the cache
    inspection = inspect(cfg, plan, log=lambda m: None)
    assert not cache_path.exists()
    apply(inspection, log=lambda m: None)
    stamp = cache_path.stat().st_mtime_ns
    time.sleep(0.01)
    apply(inspect(cfg, plan, log=lambda m: None), log=lambda m: None)
    assert cache_path.stat().st_mtime_ns == stamp  # nothing changed: not rewritten
    key = str(gone.relative_to(results))
    assert key in HashCache(results).entries
    shutil.rmtree(results / "prepared")  # the records gone: their references are not checked
    gone.unlink()
    apply(inspect(cfg, plan, log=lambda m: None), log=lambda m: None)
    assert key not in HashCache(results).entries


def _tree_digest(results: Path) -> dict[str, str]:
    from latentopt.core.fileio import sha256_file

    return {str(p.relative_to(results)): sha256_file(p) for p in sorted(results.rglob("*")) if p.is_file()}


def test_an_inspection_reads_only_and_a_real_run_moves_damaged_outputs_with_their_records(tree):
    """Before: the check before planning moved damaged files itself, dry runs included. Now
    inspect() changes no byte (it names the outputs Snakemake must redo); apply(), a real run's
    step, moves them with the files verified through them, and logs each move."""
    from latentopt.core.fileio import checksum_record
    from latentopt.workflow.integrity import QUARANTINE, apply, inspect

    cfg, plan, results = tree
    pt = layout.per_image(results, "psnr", "train", "coffee", "pt")
    pt.write_bytes(pt.read_bytes()[:100])
    png = layout.original_png(results, "train", "astronaut")
    png.write_bytes(png.read_bytes()[:-20])
    before = _tree_digest(results)
    messages = []
    inspection = inspect(cfg, plan, log=messages.append)
    assert _tree_digest(results) == before
    assert {str(Path(f).relative_to(results)) for f in inspection.forced_files()} == {_chunk(plan, "psnr"), _chunk(plan)}
    lines = [line for line in inspection.plan_lines() if "a real run first moves" in line]
    assert len(lines) == 2, inspection.plan_lines()
    inspection.restore_arms = []  # this tree has no settings files: nothing to hand back
    apply(inspection, log=messages.append)
    moved = sorted("/".join(p.relative_to(results / QUARANTINE).parts[1:]) for p in (results / QUARANTINE).rglob("*") if p.is_file())
    assert len([m for m in moved if not m.endswith(".sha256")]) == 4, moved  # manifest + .pt, manifest + reference
    for path in (pt, png, results / _chunk(plan, "psnr"), results / _chunk(plan)):
        assert not path.exists() and not checksum_record(path).exists()
    for path in (pt.with_suffix(".json"), layout.prepared_record(results, "train", "astronaut")):
        assert path.exists()  # intact: stays, its job restores it (a record) or rewrites it
    assert len(messages) == 2 and all("moved to" in m and str(QUARANTINE) in m for m in messages)
    assert inspect(cfg, plan, log=messages.append).findings == []  # what is left verifies


def test_a_damage_that_cannot_be_moved_aside_is_an_error_saying_why(tree, monkeypatch):
    from latentopt.workflow.integrity import CannotRepair, apply, inspect

    cfg, plan, results = tree
    pt = layout.per_image(results, "psnr", "train", "coffee", "pt")
    pt.write_bytes(pt.read_bytes()[:100])
    inspection = inspect(cfg, plan, log=lambda m: None)

    def read_only(src, dst):
        raise PermissionError(13, "Read-only file system", src)

    monkeypatch.setattr("latentopt.core.fileio.shutil.move", read_only)
    with pytest.raises(CannotRepair, match="1 damaged output.*cannot be moved aside.*Read-only file system"):
        apply(inspection, log=lambda m: None)
    assert pt.exists()


def test_prepare_hashes_the_very_bytes_it_decodes(tmp_path, demo_data, monkeypatch):
    """A source replaced between decoding and hashing: the record's checksum is of what was decoded."""
    import hashlib

    import latentopt.data.prepare as prepare
    from latentopt.data.images import read_rgb

    split = tmp_path / "train"
    split.mkdir()
    src = split / "coffee.jpg"
    shutil.copy(demo_data / "train" / "coffee.jpg", src)
    decoded_bytes = src.read_bytes()
    real = prepare.read_rgb

    def decode_then_replace(path, *args, **kwargs):
        out = real(path, *args, **kwargs)
        shutil.copy(demo_data / "train" / "astronaut.jpg", path)  # replaced right after it was read
        return out

    monkeypatch.setattr(prepare, "read_rgb", decode_then_replace)
    cfg = make_config(tmp_path / "results", tmp_path, **{"data.splits": ["train"]})
    record = prepare_chunk(discover_splits(tmp_path, ["train"])["train"], cfg["preprocess"], cfg["results_dir"], log=lambda m: None)[0]
    assert record["source_sha256"] == hashlib.sha256(decoded_bytes).hexdigest()
    assert record["source_sha256"] != hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setattr(prepare, "read_rgb", real)
    assert record["size"] == list(read_rgb(layout.original_png(cfg["results_dir"], "train", "coffee")).shape[:2])


def test_a_damaged_json_names_its_file(tmp_path):
    from latentopt.core.fileio import read_json

    path = tmp_path / "quality_gate" / "psnr.json"
    path.parent.mkdir()
    path.write_text('{"passed": tr')
    with pytest.raises(json.JSONDecodeError, match=str(path)):
        read_json(path)


@pytest.mark.parametrize("key, value, named", [("losses.psnr.lr", 0.02, None), ("losses.psnr.betas", [0.8, 0.99], None), ("losses.psnr.eps", 1e-6, None),
                                        ("losses.psnr.iterations", 4, None), ("losses.psnr.stopping.patience", 2, None),
                                        ("losses.psnr.retry.enabled", False, None), ("losses.psnr.loss", {"name": "mse"}, None),
                                        ("run.precision", "fp32", None), ("run.compile.enabled", True, "compile"), ("model.seed", 3, None),
                                        ("preprocess.size", 256, None)])
def test_a_setting_that_shapes_results_makes_the_arm_settings_stale(tree, key, value, named):
    """Every setting that shapes a per-image result reaches the arm's settings file: the check before
    planning finds it stale and names the change (its job, then every job of the arm, reruns)."""
    from latentopt.core.fileio import write_json

    cfg, plan, results = tree
    path = layout.arm_settings_file(results, "psnr")
    write_json(path, {"arm": "psnr", "results_dir": str(results), "settings": arm_settings(cfg, "psnr")})
    assert _redo(cfg, plan) == {}
    changed = make_config(results, Path(cfg["data"]["root"]), **{"data.splits": ["train"], "use_losses": ["psnr"], "losses.psnr.iterations": 3,
                                                                   "run.batch_size": 2, key: value})
    redo = _redo(changed, plan)
    rel = str(path.relative_to(results))
    assert rel in redo and "settings of psnr changed" in redo[rel] and (named or key.split(".")[-1]) in redo[rel], redo
    if key.startswith("preprocess."):  # the references are prepared again too
        assert _chunk(plan) in redo


def test_a_rerun_job_restores_its_finished_images_in_place_and_recomputes_the_rest(tree):
    """A chunk's job that runs again (its manifest gone: a stopped job, a damaged file of the chunk,
    a settings file written again) restores each finished image whose record verifies, has the
    job's fingerprint and was computed from the same reference, and computes only the others."""
    from latentopt.core.fileio import sha256_file

    cfg, plan, results = tree
    (chunk,) = plan.chunks
    ids = chunk.image_ids
    before = {i: sha256_file(layout.per_image(results, "psnr", "train", i, "pt")) for i in ids}
    layout.chunk_manifest(results, "psnr", chunk.name).unlink()
    layout.per_image(results, "psnr", "train", ids[0], "pt").unlink()  # one image lost
    messages = []
    optimize_chunk(**optimize_job_args(cfg, "psnr", "train", ids, chunk=chunk.name), device="cpu", log=messages.append)
    assert [m.split(":")[0] for m in messages if "restored" in m] == ids[1:]
    assert {i: sha256_file(layout.per_image(results, "psnr", "train", i, "pt")) for i in ids} == before  # same numbers
    assert _redo(cfg, plan) == {}  # the manifest written again lists them all
    # other settings (another fingerprint): nothing is restored
    other = make_config(results, Path(cfg["data"]["root"]), **{"data.splits": ["train"], "use_losses": ["psnr"], "losses.psnr.iterations": 2,
                                                                 "run.batch_size": 2})
    messages.clear()
    optimize_chunk(**optimize_job_args(other, "psnr", "train", ids, chunk=chunk.name), device="cpu", log=messages.append)
    assert not [m for m in messages if "restored" in m]


def test_a_chunk_whose_images_changed_is_planned_again_without_snakemakes_metadata(tree):
    """An image added to (or renamed in) the data folder changes its chunk: the chunk's manifests no
    longer list the plan's images. Before the check compared them, a folder without Snakemake's
    metadata (copied, moved) said 'Nothing to be done' and the new image was silently missing. Now
    each such manifest is planned again (outdated, not damaged: nothing is moved aside)."""
    cfg, plan, results = tree
    data = Path(cfg["data"]["root"]) / "train"
    shutil.copy2(data / "coffee.jpg", data / "aardvark.jpg")  # sorts first: the first chunk changes
    changed = build_plan(cfg)
    assert [c.image_ids for c in changed.chunks] != [c.image_ids for c in plan.chunks]
    found = _findings(cfg, changed)
    # the old chunk's manifests (its name is still planned, with other images)
    assert set(found) == {_chunk(plan), _chunk(plan, "baseline"), _chunk(plan, "psnr")}, found
    assert all(not f.damaged and "the images of chunk" in f.reason for f in found.values()), found
