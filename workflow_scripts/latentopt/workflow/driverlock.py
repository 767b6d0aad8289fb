"""One driver per results folder: ``results_dir/.latentopt.lock`` names the Snakemake driver using it.

Snakemake's own lock lives in the working directory (``.snakemake/locks``), so two drivers started
from different directories on the same ``results_dir`` would both run every job on the same files.
This lock lives in the results folder itself:

  * taken by a real run's driver before its first job (Snakemake's onstart), which then moves
    damaged outputs to quarantine under it (latentopt.workflow.repairs), and released when it
    ends; dry runs and other inspections never take it (they change nothing). A study's driver
    takes the study's lock and each model's;
  * holds host, pid, the process's start time, working directory and start time (JSON);
  * created with link(2) from a private file: atomic on local and on NFS file systems (SLURM);
  * refreshed (its mtime) every ``HEARTBEAT_S`` seconds while the driver runs.

A second driver fails at once, naming the holder. A lock left by a killed driver is stale and is
taken over with a message: on the same host when its process is gone (or its pid now belongs to a
process started later); from another host when its heartbeat is older than ``STALE_AFTER_S``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable

LOCK_NAME = ".latentopt.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class LockHeld(RuntimeError):
    """Another live driver holds the results folder."""


def _process_start(pid: int) -> str | None:
    """A token identifying the process ``pid`` (boot id + start time), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = fh.read().rsplit(")", 1)[1].split()[19]
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return f"{fh.read().strip()}:{ticks}"
    except (OSError, IndexError):
        return None


def identity() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
        "cwd": os.getcwd(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def describe(info: dict | None) -> str:
    if not info:
        return "unreadable lock content"
    return f"host {info.get('host')}, pid {info.get('pid')}, started {info.get('started_at')}, working directory {info.get('cwd')}"


def stale_reason(info: dict | None, age_s: float, stale_after_s: float = STALE_AFTER_S) -> str | None:
    """Why a lock is stale, or None while its holder may be alive."""
    if info and info.get("host") == socket.gethostname():
        pid = int(info.get("pid", -1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"process {pid} no longer exists"
        except PermissionError:
            pass  # exists, owned by someone else
        start = _process_start(pid)
        if info.get("process_start") and start and start != info["process_start"]:
            return f"pid {pid} now belongs to another process"
        return None
    if age_s > stale_after_s:
        return f"no heartbeat for {age_s:.0f} s (more than {stale_after_s:.0f} s)"
    return None


def _read(path: Path) -> tuple[dict | None, float] | None:
    """(content, age in seconds) of the lock, or None when there is none."""
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text), age
    except ValueError:
        return None, age


def _try_link(path: Path, content: dict) -> bool:
    private = path.with_name(f"{LOCK_NAME}.{content['host']}.{content['pid']}")
    private.write_text(json.dumps(content))
    try:
        os.link(private, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # NFS may report an error for a link that was made
        return private.stat().st_nlink == 2
    finally:
        private.unlink(missing_ok=True)


def _break(path: Path, seen: dict | None) -> None:
    """Remove the stale lock ``seen`` unless another driver replaced it meanwhile."""
    aside = path.with_name(f"{LOCK_NAME}.stale-{socket.gethostname()}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        current = json.loads(aside.read_text())
    except (OSError, ValueError):
        current = None
    if current != seen:  # a fresh lock taken by someone else in between: put it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


class DriverLock:
    """The lock this process holds; :meth:`release` (also at exit) removes it."""

    def __init__(self, path: Path, content: dict, heartbeat_s: float):
        self.path, self.content = path, content
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
        self._thread.start()
        atexit.register(self.release)

    def _ours(self) -> bool:
        found = _read(self.path)
        return found is not None and found[0] == self.content

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            if self._ours():
                with contextlib.suppress(OSError):
                    os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if self._ours():
            self.path.unlink(missing_ok=True)


def held_message(results: str | Path) -> str | None:
    """While another live driver holds ``results`` (read at parse time, before Snakemake locks the
    working directory): who it is, and that Snakemake's advice to ``--unlock`` does not apply. None
    when the folder is free, the lock is stale, or this process holds it."""
    path = Path(results) / LOCK_NAME
    found = _read(path)
    if found is None:
        return None
    info, age = found
    if info and info.get("host") == socket.gethostname() and info.get("pid") == os.getpid():
        return None
    if stale_reason(info, age) is not None:
        return None
    pid = (info or {}).get("pid")
    return (f"results_dir {Path(results).absolute()} is in use by another driver ({describe(info)}); lock file "
            f"{path.absolute()}. A run now stops before its first job. If Snakemake says the directory "
            f"'cannot be locked', that driver holds it: do not use --unlock while process {pid} lives; "
            "wait for it to finish or stop it (dry runs, --summary and `make progress` are fine meanwhile).")


def acquire(results: str | Path, log: Callable[[str], None] = print, heartbeat_s: float = HEARTBEAT_S,
            stale_after_s: float = STALE_AFTER_S) -> DriverLock:
    """Take the lock of ``results`` or raise LockHeld naming its holder."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / LOCK_NAME
    me = identity()
    for _ in range(5):
        if _try_link(path, me):
            return DriverLock(path, me, heartbeat_s)
        found = _read(path)
        if found is None:
            continue  # released meanwhile
        info, age = found
        reason = stale_reason(info, age, stale_after_s)
        if reason is None:
            raise LockHeld(
                f"results_dir {results} is in use by another driver ({describe(info)}); lock file {path}. "
                "Wait for it to finish or stop it; two drivers on one results folder would run the same jobs twice."
            )
        log(f"taking over the stale lock {path} ({describe(info)}): {reason}")
        _break(path, info)
    raise LockHeld(f"results_dir {results}: could not take the lock {path} (other drivers keep taking it)")
