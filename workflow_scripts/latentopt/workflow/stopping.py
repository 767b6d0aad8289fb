"""How the driver stops (pure Python, no torch): what it says when a signal stops it.

Every image an optimization job finishes is written in place at once (its .pt, then its record);
the job's declared output is its chunk's manifest, written last (latentopt.workflow.chunks). A
driver stopped by SIGINT, SIGTERM or SIGKILL while the job ran, or the job killed itself, leaves no
manifest (or one Snakemake marks incomplete): the resume runs the job again, and the job restores
every image it had finished (latentopt.optimize.records.restorable) and resumes a running batch from
its checkpoint (``.checkpoints/``, :mod:`latentopt.optimize.checkpoints`).

:class:`StopWatch` notes the signal that stopped the driver (wrapping the handlers Snakemake
installed, so that Snakemake still stops as it does) and keeps Snakemake's "Will exit after
finishing currently running jobs" to one line; :func:`stopped_paragraph` is what the driver says
last. What Snakemake itself prints on each way of stopping: docs/stopping.md.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Iterable

from latentopt.workflow.messages import absolute

CHECKPOINTS = ".checkpoints"
REPEATED = "Will exit after finishing currently running jobs"


class _Once(logging.Filter):
    """Lets the first record whose message starts with ``prefix`` through, drops the repeats."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix, self.seen = prefix, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        seen, self.seen = self.seen, True
        return not seen


class StopWatch:
    """The signal (SIGINT, SIGTERM) that stopped this driver, if any. :meth:`install` is called in the
    main thread once Snakemake's scheduler has installed its own SIGTERM handler (``onstart``)."""

    def __init__(self):
        self.signal: str | None = None

    def install(self, snakemake_logger: logging.Logger) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):
                continue  # ignored (a background job of a non-interactive shell): leave it so
            signal.signal(signum, self._handler(signum, previous))
        snakemake_logger.addFilter(_Once(REPEATED))

    def _handler(self, signum: int, previous):
        def handler(num, frame):
            self.signal = self.signal or signal.Signals(num).name
            if callable(previous):
                return previous(num, frame)
            if num == signal.SIGINT:  # SIG_DFL: what Python's default handler does
                raise KeyboardInterrupt
            signal.signal(num, signal.SIG_DFL)
            os.kill(os.getpid(), num)
        return handler


def _stores(results_dirs: Iterable[str | Path]) -> list[Path]:
    return [Path(r) / CHECKPOINTS for r in results_dirs if (Path(r) / CHECKPOINTS).is_dir()]


def kept_batches(results_dirs: Iterable[str | Path]) -> int:
    """Batches with a saved optimizer state (they resume from it)."""
    return sum(1 for store in _stores(results_dirs) for _ in store.glob("*/*/batch-*.pt"))


def resume_command() -> str:
    """This driver's own command line (rerun as is, it resumes)."""
    argv = list(sys.argv) or ["snakemake"]
    if Path(argv[0]).name == "__main__.py":
        argv[0:1] = [Path(sys.executable).name, "-m", "snakemake"]
    return shlex.join(argv)


def stopped_paragraph(signal_name: str, results_dirs: Iterable[str | Path]) -> str:
    """What a driver stopped by ``signal_name`` says last: what was kept and the command that resumes."""
    dirs = list(results_dirs)
    batches = kept_batches(dirs)
    where = ", ".join(str(absolute(d)) for d in dirs)
    running = f" {batches} running batch(es) resume from their last checkpoint;" if batches else ""
    return (f"latentopt: stopped by {signal_name}. Every image finished before the stop is kept in place (results in "
            f"{where}) and restored, not recomputed;{running} Snakemake marks the jobs it did not see end as incomplete and runs them again on "
            f"resume. Resume with: {resume_command()}  (Snakemake's own messages on a stop: docs/stopping.md)")
