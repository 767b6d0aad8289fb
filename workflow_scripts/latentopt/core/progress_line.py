"""The progress line of an optimization job's log, written by the job and read back by the
progress report (:mod:`latentopt.workflow.progress`): one definition of its format for both.

``  [4 img] step 20/50 (40%), 4 running, 1.25 it/s, ETA 24 s`` or, for a batch's non-convergence
retry (which counts against its own iterations), ``  [1 img] retry step 10/100 (10%), ...``.
"""

from __future__ import annotations

# what follows the log's timestamp (and its spaces), as a regular expression
PATTERN = r"\[(?P<n>\d+) img\] (?P<retry>retry )?step (?P<step>\d+)/(?P<total>\d+) "


def progress_line(images: int, step: int, total: int, active: int, rate: float, retry: bool = False) -> str:
    """The line for ``images`` images at ``step`` of ``total`` (``active`` of them still running,
    ``rate`` iterations per second)."""
    return (f"  [{images} img] {'retry ' if retry else ''}step {step}/{total} ({100 * step / total:.0f}%), "
            f"{active} running, {rate:.2f} it/s, ETA {(total - step) / rate:.0f} s")
