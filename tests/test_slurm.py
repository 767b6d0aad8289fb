"""The pipeline on a real SLURM cluster: GPU requests, one GPU per concurrent job, minimal reruns.

Needs a running cluster whose default partition has a node with two GPUs (GRES) -- the CI one from
.ci/slurm/start-cluster.sh has two FAKE GPUs (character devices, no CUDA) -- and
LATENTOPT_SLURM_TESTS=1. `.ci/slurm/run-slurm-tests.sh` starts the cluster, runs this file and tears
the cluster down.

What is run: the CPU demo (synthetic autoencoder), train and test splits with one image each, the
baseline and the psnr arm, 3 iterations, `run.device: auto` (GPU jobs declare gpu=1, so SLURM allocates a GPU and
sets CUDA_VISIBLE_DEVICES; with no CUDA the job falls back to the CPU), through
`snakemake --workflow-profile profiles/slurm` with only CI speed-ups added on the command line.

How what a job saw is recorded (there is no sacct without slurmdbd):
  * `--precommand` runs a probe at the start of every SLURM job (in its batch step, inside the
    allocation, before the job's snakemake starts): it writes the job's SLURM_JOB_ID,
    CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS and host to <tmp>/probes/<jobid>.json;
  * while Snakemake runs, a thread polls `scontrol -d -o show job` every 0.2 s: SLURM's own view of
    which job runs with which GPU index (GRES=gpu:1(IDX:i)) at the same time;
  * after the run, `scontrol` (MinJobAge keeps finished jobs) gives each job's final state and
    whether it requested a GPU (TresPerJob); the plugin's kept log path
    <logdir>/rule_<rule>/<wildcards>/<jobid>.log gives its rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from latentopt.devtools.snakemake_cli import snakemake_command
from latentopt.workflow.plan import parse_optimize_rule

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = int(os.environ.get("LATENTOPT_SLURM_RUN_TIMEOUT", "900"))
ARM = "psnr"  # the optimized arm; the other is the baseline


def _slurm_available() -> bool:
    if os.environ.get("LATENTOPT_SLURM_TESTS") != "1" or shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


if not _slurm_available():
    pytest.skip("needs LATENTOPT_SLURM_TESTS=1 and a working SLURM (`sinfo`)", allow_module_level=True)


# --------------------------------------------------------------------------------------------
# Observing SLURM


def _scontrol_jobs() -> list[dict]:
    """`scontrol -d -o show job`: one dict per job SLURM still knows (running or within MinJobAge)."""
    out = subprocess.run(
        ["scontrol", "-d", "-o", "show", "job"], capture_output=True, text=True, timeout=15
    ).stdout
    jobs = []
    for line in out.splitlines():
        m = re.search(r"\bJobId=(\d+)", line)
        if not m:
            continue
        job = {"id": m.group(1)}
        for key in ("JobState", "WorkDir", "Comment", "TresPerJob", "StartTime", "EndTime", "ExitCode"):
            km = re.search(rf"\b{key}=(\S*)", line)
            job[key] = km.group(1) if km else None
        gm = re.search(r"\bGRES=gpu[^ ]*\(IDX:([0-9,-]+)\)", line)
        job["gpu_idx"] = gm.group(1) if gm else None
        jobs.append(job)
    return jobs


@dataclass
class Poller:
    """Samples which of our jobs run at the same time, with which GPU index (SLURM's view)."""

    workdir: str
    snapshots: list[tuple[float, dict[str, str | None]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self):
        while not self._stop.is_set():
            try:
                running = {
                    j["id"]: j["gpu_idx"]
                    for j in _scontrol_jobs()
                    if j["WorkDir"] == self.workdir and j["JobState"] == "RUNNING"
                }
            except (OSError, subprocess.TimeoutExpired):
                running = None
            if running:
                self.snapshots.append((time.time(), running))
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


PROBE = """\
import json, os, socket, sys, time
keys = ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_ID")
record = {k: os.environ.get(k) for k in keys}
record.update(host=socket.gethostname(), time=time.time())
out = os.path.join(sys.argv[1], f"{record['SLURM_JOB_ID']}.json")
with open(out, "a") as fh:
    fh.write(json.dumps(record) + "\\n")
"""


# --------------------------------------------------------------------------------------------
# Running Snakemake


@dataclass
class Run:
    returncode: int
    log: str
    seconds: float
    jobs: dict[str, dict]  # SLURM job id -> scontrol record + rule + wildcards + probe
    snapshots: list


def _stop_snakemake(proc: subprocess.Popen) -> None:
    """SIGINT (Snakemake then cancels its SLURM jobs); SIGKILL only as a last resort."""
    for wait_s in (90, 30):
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait(timeout=30)


def _cancel_leftovers(workdir: str) -> list[str]:
    left = [j["id"] for j in _scontrol_jobs() if j["WorkDir"] == workdir and j["JobState"] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")]
    if left:
        subprocess.run(["scancel", *left], timeout=30)
    return left


def _job_rules(logdir: Path) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (rule, wildcards) from the plugin's log layout rule_<rule>/<wildcards>/<id>.log."""
    found = {}
    for log in logdir.rglob("*.log"):
        rel = log.relative_to(logdir).parts
        if rel[0].startswith("rule_") and log.stem.isdigit():
            found[log.stem] = (rel[0][len("rule_"):], "/".join(rel[1:-1]))
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm")
    workdir, probes, logdir = base / "work", base / "probes", base / "slurm_logs"
    for d in (workdir, probes, logdir):
        d.mkdir()
    sys.path.insert(0, str(REPO / "workflow_scripts"))
    from latentopt.data.demo_data import write_demo_data

    write_demo_data(base / "data")
    config = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    config["results_dir"] = str(base / "results")
    # Two splits, one image each: 2 chunks x 2 arms = 4 optimize jobs for 2 GPUs.
    config["data"] = {**config.get("data", {}), "root": str(base / "data"), "splits": ["train", "test"], "limit_per_split": 1}
    config["use_losses"] = [ARM]
    config["model"] = {"kind": "synthetic_kl", "seed": 0}  # no training job: the counts below are optimize jobs
    for loss in config["losses"].values():
        loss["iterations"] = 3
    config["run"] = {**config["run"], "device": "auto"}  # request GPUs; CPU where no CUDA
    config["evaluation"] = {**config.get("evaluation", {}), "n_boot": 20, "fid_n_boot": 10}
    (base / "config.yaml").write_text(yaml.safe_dump(config))
    (base / "probe.py").write_text(PROBE)

    def snakemake_cmd(*extra: str) -> list[str]:
        return snakemake_command("--workflow-profile", str(REPO / "profiles" / "slurm"), *extra,
                                 snakefile=REPO / "Snakefile", directory=workdir, configfiles=[base / "config.yaml"])

    def dry_run(*targets: str) -> str:
        out = subprocess.run(snakemake_cmd("--dry-run", *targets), cwd=workdir, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout + out.stderr

    def run(name: str, *targets: str) -> Run:
        cmd = snakemake_cmd(
            # CI speed-ups and observation only; everything else comes from the profile.
            "--slurm-init-seconds-before-status-checks", "1",
            "--slurm-keep-successful-logs",
            "--slurm-logdir", str(logdir),
            "--retries", "0",
            "--latency-wait", "5",
            "--precommand", f"{sys.executable} {base / 'probe.py'} {probes}",
            *targets,
        )
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        environ.pop("CUDA_VISIBLE_DEVICES", None)  # jobs must see only what SLURM gives them
        log_path = base / f"{name}.log"
        t0 = time.monotonic()
        with open(log_path, "w") as log, Poller(str(workdir)) as poller:
            proc = subprocess.Popen(cmd, cwd=workdir, env=environ, stdout=log, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _stop_snakemake(proc)
        seconds = time.monotonic() - t0
        _cancel_leftovers(str(workdir))
        rules = _job_rules(logdir)
        jobs = {}
        for j in _scontrol_jobs():
            if j["WorkDir"] != str(workdir) or j["id"] not in rules:
                continue
            probe = probes / f"{j['id']}.json"
            j["rule"], j["wildcards"] = rules[j["id"]]
            j["probe"] = [json.loads(l) for l in probe.read_text().splitlines()] if probe.exists() else []
            jobs[j["id"]] = j
        return Run(proc.returncode, log_path.read_text(), seconds, jobs, poller.snapshots)

    state = {"base": base, "workdir": workdir, "results": Path(config["results_dir"]), "run": run, "dry_run": dry_run, "runs": {}}
    yield state
    _cancel_leftovers(str(workdir))


@pytest.fixture(scope="module")
def first_run(env):
    result = env["run"]("first")
    env["runs"]["first"] = result
    print(f"first run: {result.seconds:.0f} s, {len(result.jobs)} SLURM jobs")
    return result


def _per_image(results: Path) -> dict[Path, str]:
    """The per-image outputs (not their writers' hidden checksum records, which a chunk's rerun
    writes again for the intact images it restores)."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(results.glob("*_dataset/per_image/*/*.*"))
            if not p.name.startswith(".")}


def _is_gpu_job(job: dict) -> bool:
    return "gpu" in (job["TresPerJob"] or "")


# --------------------------------------------------------------------------------------------
# (1) every job ran on SLURM and finished


def test_all_jobs_finished(env, first_run):
    assert first_run.returncode == 0, first_run.log[-5000:]
    assert "Nothing to be done" not in first_run.log
    assert first_run.jobs, "no SLURM jobs were found for this run"
    bad = {j["id"]: (j["rule"], j["JobState"], j["ExitCode"]) for j in first_run.jobs.values() if j["JobState"] != "COMPLETED"}
    assert not bad, bad
    # Every job of the workflow went through SLURM (the target rule `all` runs nowhere).
    rules = sorted(j["rule"] for j in first_run.jobs.values())
    for prefix in ("prepare_", "optimize_", "build_dataset", "evaluate_dataset", "summarize_evaluation"):
        assert any(r.startswith(prefix) for r in rules), (prefix, rules)
    dry = env["dry_run"]()
    assert "Nothing to be done" in dry, dry[-3000:]
    records = [json.loads(p.read_text()) for p in env["results"].glob("*_dataset/per_image/*/*.json")]
    assert len(records) == 2 * 2, records  # 2 arms x 2 splits x 1 image
    for r in records:
        assert r["status"] == "ok", r
        assert r["device"] == "cpu", r  # run.device auto, no CUDA behind the fake GPUs
        assert r["host"], r


# --------------------------------------------------------------------------------------------
# (2) GPU jobs asked SLURM for a GPU, and concurrent ones got different ones


def test_gpu_jobs_get_their_own_device(env, first_run):
    jobs = first_run.jobs
    gpu_rules = ("optimize_", "evaluate_dataset", "inception_features")
    for j in jobs.values():
        assert j["probe"], f"job {j['id']} ({j['rule']}) left no probe record"
        seen = {p["CUDA_VISIBLE_DEVICES"] for p in j["probe"]}
        if j["rule"].startswith(gpu_rules):
            assert _is_gpu_job(j), j  # sbatch --gpus=1 from resources gpu=1
            assert len(seen) == 1 and seen <= {"0", "1"}, (j["rule"], seen)
        else:
            assert not _is_gpu_job(j), j
            assert seen == {None}, (j["rule"], seen)

    # SLURM's view, sampled while the jobs ran: GPU jobs running at the same moment hold different
    # GPU indices, never more than the node's two; and the job itself saw the index SLURM gave it.
    max_gpu_jobs, overlapping = 0, set()
    for _, running in first_run.snapshots:
        gpu = {jid: idx for jid, idx in running.items() if jid in jobs and _is_gpu_job(jobs[jid])}
        max_gpu_jobs = max(max_gpu_jobs, len(gpu))
        assert len(set(gpu.values())) == len(gpu), f"two running GPU jobs share a GPU: {gpu}"
        assert None not in gpu.values(), gpu
        for jid, idx in gpu.items():
            assert {p["CUDA_VISIBLE_DEVICES"] for p in jobs[jid]["probe"]} == {idx}, (jid, idx, jobs[jid]["probe"])
        if len(gpu) >= 2:
            overlapping.add(tuple(sorted(gpu)))
    assert max_gpu_jobs == 2, f"expected two GPU jobs at once on two GPUs, saw at most {max_gpu_jobs}"

    # Where per-image records carry the optimizing process's own SLURM_JOB_ID/CUDA_VISIBLE_DEVICES
    # (keys "slurm_job_id"/"cuda_visible_devices"; that process runs inside the job's srun step),
    # they must agree with the probe of the same job.
    for path in env["results"].glob("*_dataset/per_image/*/*.json"):
        record = json.loads(path.read_text())
        job = jobs.get(str(record.get("slurm_job_id")))
        if job is not None and "cuda_visible_devices" in record:
            assert record["cuda_visible_devices"] == job["probe"][0]["CUDA_VISIBLE_DEVICES"], (path, record)
    n_gpu_jobs = sum(map(_is_gpu_job, jobs.values()))
    print(f"{n_gpu_jobs} GPU jobs; {len(overlapping)} distinct concurrent pairs, e.g. "
          + ", ".join(f"{a}/{b}: CVD {jobs[a]['probe'][0]['CUDA_VISIBLE_DEVICES']}/{jobs[b]['probe'][0]['CUDA_VISIBLE_DEVICES']}" for a, b in sorted(overlapping)[:3]))


# --------------------------------------------------------------------------------------------
# (3) deleting one image's outputs resubmits only that image's chunk job (+ the aggregation)


def test_rerun_after_deleting_one_image(env, first_run):
    """Delete one image's per-image outputs (one arm) and run plain `snakemake` again on SLURM.

    This relies on the per-image outputs being inputs of the default target (rules/common.smk
    all_targets()): Snakemake 9 does not regenerate a deleted intermediate file whose consumers
    are up to date.
    """
    assert first_run.returncode == 0, "first run failed"
    results = env["results"]
    before = _per_image(results)
    victim_json = sorted(results.glob(f"{ARM}_dataset/per_image/*/*.json"))[0]
    split, image_id = victim_json.parent.name, victim_json.stem
    victims = [p for p in before if p.parent == victim_json.parent and p.stem == image_id]
    assert {p.suffix for p in victims} == {".json", ".pt"}, victims
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    for p in victims:
        p.unlink()
    planned = env["dry_run"]()
    assert "Nothing to be done" not in planned, "the default target does not redo a deleted per-image output"

    second = env["run"]("second")
    env["runs"]["second"] = second
    assert second.returncode == 0, second.log[-5000:]
    new = {jid: j for jid, j in second.jobs.items() if jid not in first_run.jobs}
    submitted = sorted((j["rule"], j["wildcards"]) for j in new.values())
    print(f"second run: {second.seconds:.0f} s, resubmitted {submitted}")
    assert all(j["JobState"] == "COMPLETED" for j in new.values()), new

    # Exactly one optimization job: the deleted image's chunk, for the arm whose files went.
    optimize = [(r, w) for r, w in submitted if r.startswith("optimize_")]
    assert len(optimize) == 1, submitted
    _, chunk, arm = parse_optimize_rule(optimize[0][0])  # one rule per (chunk, arm)
    # the chunk of that split (a quality-gate chunk when the image is one of the gate's images)
    assert chunk.startswith((f"{split}_", f"gate_{split}_")) and arm == ARM, (optimize, split)
    assert not [r for r, _ in submitted if r.startswith("prepare_")], submitted
    # Per-arm jobs only for that arm; the rest aggregates over all arms.
    per_arm = [(r, w) for r, w in submitted if r in ("build_dataset", "evaluate_dataset", "inception_features")]
    assert ("build_dataset", ARM) in per_arm, submitted
    for r, w in per_arm:
        assert w == ARM, (r, w)
    assert any(r == "summarize_evaluation" for r, _ in submitted), submitted

    after = _per_image(results)
    assert set(after) == set(before), set(before) ^ set(after)
    for p in before:
        if p not in victims:
            assert after[p] == before[p] and p.stat().st_mtime_ns == mtimes[p], f"{p} was rewritten"
    assert "Nothing to be done" in env["dry_run"]()


# --------------------------------------------------------------------------------------------
# (4) nothing of ours is left in the queue


def test_no_jobs_left_behind(env, first_run):
    left = [j for j in _scontrol_jobs() if j["WorkDir"] == str(env["workdir"]) and j["JobState"] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")]
    assert not left, left
