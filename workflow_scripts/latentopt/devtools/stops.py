"""Ways of stopping a running driver, shared by tests/test_stopping.py and bench/drills/fault_drill.py.

A driver is started in a session of its own with SIGINT at its default (a process started in the
background of a non-interactive shell ignores SIGINT, and a program started that way keeps ignoring
it); :func:`wait_for_finished_image` waits until a job's log says one of its images is finished
while the job still has others to do, then :data:`STOPS` stop it the way users and machines do.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

FINISHED = re.compile(r"\[(\d+)/(\d+)\] (\S+): ok ")
HISTORY = ".*.log.attempts"  # a job log's history (latentopt.core.joblog), never deleted by Snakemake


def start_driver(cmd: list[str], cwd: Path, env: dict, out: Path) -> subprocess.Popen:
    """The driver in a new session (its process group id is its pid), SIGINT at its default."""
    with open(out, "w") as fh:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def session_processes(sid: int) -> dict[int, str]:
    """{pid: command line} of the live processes of session ``sid`` (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return found


def wait_for_finished_image(logs: Path, proc: subprocess.Popen, timeout: float = 900) -> str:
    """Block until a job log under the folder ``logs`` gains a line "[k/n] <id>: ok" with k < n
    written after this call; return the finished image's id. Read from each log's history file
    (:func:`latentopt.core.joblog.history_path`): Snakemake deletes a job's log when the job starts,
    and the job links it to its history again."""
    start = {p: p.stat().st_size for p in logs.glob(HISTORY)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the driver ended (rc {proc.returncode}) before a job finished an image")
        for log in logs.glob(HISTORY):
            with open(log, "rb") as fh:
                fh.seek(start.get(log, 0))
                for line in fh.read().decode(errors="replace").splitlines():
                    m = FINISHED.search(line)
                    if m and int(m.group(1)) < int(m.group(2)):
                        return m.group(3)
        time.sleep(0.2)
    raise TimeoutError(f"no image finished in {logs} within {timeout} s")


def _job_pids(sid: int) -> list[int]:
    return [pid for pid, cmd in session_processes(sid).items() if "optimize_images" in cmd]


def int_driver(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGINT)
    return "SIGINT to the driver alone (kill -INT <pid>)"


def int_group(proc: subprocess.Popen) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    return "SIGINT to the driver's process group (Ctrl-C in its terminal)"


def term_driver(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGTERM)
    return "SIGTERM to the driver (what SLURM sends first)"


def kill_job(proc: subprocess.Popen) -> str:
    pids = _job_pids(proc.pid)
    if not pids:
        raise RuntimeError("no running optimization job to kill")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return f"SIGKILL to {len(pids)} running optimization job(s)"


def kill_driver(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGKILL)
    return "SIGKILL to the driver alone (its jobs run on, orphaned)"


def kill_group(proc: subprocess.Popen) -> str:
    os.killpg(proc.pid, signal.SIGKILL)
    return "SIGKILL to the driver and its jobs (the process group)"


STOPS = {"sigint driver": int_driver, "ctrl-c group": int_group, "sigterm driver": term_driver,
         "sigkill job": kill_job, "sigkill driver": kill_driver, "sigkill group": kill_group}


def wait_for_session(sid: int, timeout: float = 900) -> list[str]:
    """Wait until no process of session ``sid`` is left (orphaned jobs of a killed driver finish their
    work); return what was still running when this was called."""
    left = list(session_processes(sid).values())
    deadline = time.monotonic() + timeout
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if session_processes(sid):
        raise TimeoutError(f"session {sid} still runs after {timeout} s")
    return left
