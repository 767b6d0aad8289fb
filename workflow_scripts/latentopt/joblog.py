"""Job logs: a Snakemake script's stdout/stderr (tqdm, warnings, tracebacks) go to its log file."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def job_log(path: str | Path | None) -> Iterator[Callable[[str], None]]:
    """Redirect stdout/stderr to ``path`` (appending: a retried job keeps earlier attempts' logs)
    and yield a timestamped ``log(message)``. An exception is written to the log, then re-raised."""
    if path is None:
        yield lambda msg: print(time.strftime("%H:%M:%S"), msg, flush=True)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):

        def log(msg: str) -> None:
            print(time.strftime("%Y-%m-%d %H:%M:%S"), msg, flush=True)

        try:
            yield log
        except BaseException:
            traceback.print_exc(file=fh)
            raise
