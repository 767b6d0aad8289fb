"""Job logs: a Snakemake script's stdout/stderr (tqdm, warnings, tracebacks) go to its log file.

Snakemake deletes a job's log before each run (retry or rerun), so the log is a hard link to a hidden
history file beside it (``.<name>.attempts``) that Snakemake does not know about: the log shows every
attempt, each under a header line ``===== attempt N: time, host, pid[, SLURM job] =====``. Where hard
links are not possible the history is copied into the log at the start and back at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator

HEADER = "===== attempt "


def history_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.attempts")


def _attach(path: Path, history: Path) -> bool:
    """Make ``path`` the history file (hard link); False where that is not possible."""
    if path.exists():
        if history.exists() and os.path.samefile(path, history):
            return True
        if history.exists():  # a log written some other way: keep it in the history
            with open(history, "a") as out, open(path) as old:
                shutil.copyfileobj(old, out)
            path.unlink()
        else:
            os.replace(path, history)
    history.touch()
    try:
        os.link(history, path)
        return True
    except OSError:
        shutil.copyfile(history, path)
        return False


def _header(history: Path) -> str:
    try:
        n = sum(line.startswith(HEADER) for line in history.read_text(errors="replace").splitlines()) + 1
    except OSError:
        n = 1
    slurm = os.environ.get("SLURM_JOB_ID")
    return (f"{HEADER}{n}: {time.strftime('%Y-%m-%d %H:%M:%S')}, host {socket.gethostname()}, pid {os.getpid()}"
            + (f", SLURM job {slurm}" if slurm else "") + " =====")


INTERRUPTED = "interrupted; finished results are kept; rerun the same command to resume"


def interrupt_line(exc: KeyboardInterrupt) -> str:
    """The one line of an interrupted job: the exception's own message (the job's step and
    checkpoint, see latentopt.optimize.interrupts.Interrupted) or :data:`INTERRUPTED`."""
    return str(exc) or INTERRUPTED


def quiet_interrupts() -> None:
    """Ctrl-C outside :func:`job_log` (imports, start-up of a job) ends the process with one line
    on stderr instead of a traceback (an uncaught KeyboardInterrupt still exits as killed by SIGINT).
    Installed by ``latentopt/__init__`` in Snakemake script jobs only, never in the driver."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            print(interrupt_line(value), file=sys.stderr, flush=True)
            return
        previous(kind, value, tb)

    sys.excepthook = hook


@contextlib.contextmanager
def job_log(path: str | Path | None) -> Iterator[Callable[[str], None]]:
    """Redirect stdout/stderr to ``path`` (keeping earlier attempts, see the module docstring) and
    yield a timestamped ``log(message)``. An exception is written to the log, then re-raised;
    Ctrl-C (KeyboardInterrupt) instead ends the job with one line (:func:`interrupt_line`) in the log
    and on the terminal and exit status 130, without a traceback."""
    if path is None:
        try:
            yield lambda msg: print(time.strftime("%H:%M:%S"), msg, flush=True)
        except KeyboardInterrupt as exc:
            print(interrupt_line(exc), file=sys.stderr, flush=True)
            raise SystemExit(130) from None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    history = history_path(path)
    linked = _attach(path, history)
    try:
        with open(path, "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            print(_header(history), flush=True)

            def log(msg: str) -> None:
                print(time.strftime("%Y-%m-%d %H:%M:%S"), msg, flush=True)

            try:
                yield log
            except KeyboardInterrupt as exc:  # Ctrl-C: one line here and on the terminal, no traceback
                line = interrupt_line(exc)
                log(line)
                with contextlib.suppress(OSError, ValueError):
                    print(line, file=sys.__stderr__, flush=True)
                raise SystemExit(130) from None
            except BaseException:
                traceback.print_exc(file=fh)
                raise
    finally:
        if not linked:
            with contextlib.suppress(OSError):
                shutil.copyfile(path, history)
