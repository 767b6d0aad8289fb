"""How the driver stops (pure Python, no torch): what it says when a signal stops it, and when the
images a job finished may be forgotten by the checkpoint store.

An optimization job keeps every image it finishes in its arm's checkpoint store
(``.checkpoints/<arm>/<split>/done/``, :mod:`latentopt.optimize.checkpoints`) and leaves it there
when it ends: the job cannot know whether Snakemake will accept its outputs. A driver stopped by
SIGINT or SIGKILL while the job ran marks the job incomplete even when the job finished, and the
resume deletes its outputs and runs it again; the job then restores its images from the store
instead of recomputing them. The driver releases the store's entries only once a run has succeeded
(``onsuccess``), and only those of jobs of that run's DAG (their outputs are accepted by then), so
that a later deletion or ``--forcerun`` recomputes.

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

from latentopt.core.fileio import checksum_record
from latentopt.workflow import layout
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


def kept_in_stores(results_dirs: Iterable[str | Path]) -> tuple[int, int]:
    """(images a job finished that wait in a checkpoint store, batches with a saved optimizer state)."""
    images = batches = 0
    for store in _stores(results_dirs):
        images += sum(1 for _ in store.glob("*/*/done/*.json"))
        batches += sum(1 for _ in store.glob("*/*/batch-*.pt"))
    return images, batches


def resume_command() -> str:
    """This driver's own command line (rerun as is, it resumes)."""
    argv = list(sys.argv) or ["snakemake"]
    if Path(argv[0]).name == "__main__.py":
        argv[0:1] = [Path(sys.executable).name, "-m", "snakemake"]
    return shlex.join(argv)


def stopped_paragraph(signal_name: str, results_dirs: Iterable[str | Path]) -> str:
    """What a driver stopped by ``signal_name`` says last: what was kept and the command that resumes."""
    dirs = list(results_dirs)
    images, batches = kept_in_stores(dirs)
    where = ", ".join(str(absolute(d)) for d in dirs)
    waiting = (f" {images} image(s) finished by interrupted jobs wait in {CHECKPOINTS}/ and are restored, not "
               "recomputed;" if images else "")
    running = f" {batches} running batch(es) resume from their last checkpoint;" if batches else ""
    return (f"latentopt: stopped by {signal_name}. Every image finished before the stop is kept (results in {where});"
            f"{waiting}{running} Snakemake marks the jobs it did not see end as incomplete and runs them again on "
            f"resume. Resume with: {resume_command()}  (Snakemake's own messages on a stop: docs/stopping.md)")


def release_finished(results_dirs: Iterable[str | Path], accepted_outputs: Iterable[str | Path]) -> int:
    """After a successful run: forget the stored copies of images whose outputs Snakemake accepted
    (``accepted_outputs``: the outputs of the run's jobs); return how many images were released."""
    accepted = {os.path.abspath(p) for p in accepted_outputs}
    released = 0
    for store in _stores(results_dirs):
        for done in store.glob("*/*/done"):
            arm, split = done.parent.parent.name, done.parent.name
            for record in list(done.glob("*.json")):
                output = layout.per_image(store.parent, arm, split, record.stem, "json")
                if os.path.abspath(output) in accepted:
                    for ext in (".json", ".pt", ".reference"):
                        record.with_suffix(ext).unlink(missing_ok=True)
                        checksum_record(record.with_suffix(ext)).unlink(missing_ok=True)  # its writer's record
                    released += 1
            for folder in (done, done.parent):
                try:
                    folder.rmdir()
                except OSError:
                    break
    return released
