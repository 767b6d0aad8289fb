"""Where an optimize job's wall time goes: a clock that sums named stages, written as JSON.

Import this module FIRST in a job script (it imports nothing heavy): the moment of its import
separates the interpreter and Snakemake's script preamble from the library imports (torch, ...).
The job (:func:`latentopt.optimize.job.optimize_chunk`) adds its stages, then writes
``<log>.stages.json`` beside its log (``logs/optimize/<arm>/<chunk>.stages.json``):

    {"stages_s": {"python_start": ..., "imports": ..., "model_load": ..., "image_reading": ...,
                  "cuda_init": ..., "waiting_for_device": ..., "device_setup": ...,
                  "encode": ..., "optimization": ..., "exact_decodes": ..., "metrics": ...,
                  "writes": ..., "other": ...},
     "outside_adam_loop_s": ..., "wall_s": ..., "images": ..., ...}

``wall_s`` runs from the process start (Linux /proc; null elsewhere) to the end of the job, and
``other`` is what the named stages do not cover, so the stages add up to ``wall_s``. GPU stages
are timed after a ``torch.cuda.synchronize`` (asynchronous kernels are charged to the stage that
launched them).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator

IMPORTED_AT = time.perf_counter()


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), or None where that is unknown."""
    try:
        with open("/proc/self/stat") as fh:  # field 22 = start time in clock ticks after boot
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class StageClock:
    """Sums wall seconds per named stage; ``sync`` (e.g. torch.cuda.synchronize) is called at the
    end of each stage so that asynchronous GPU work is charged where it was launched."""

    def __init__(self, sync: Callable[[], None] | None = None):
        self.started = time.perf_counter()
        age = process_age_s()
        self.process_start = None if age is None else self.started - age
        self.totals: dict[str, float] = {}
        self.sync = sync

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.add(name, time.perf_counter() - start)

    def before_start(self) -> dict[str, float]:
        """The process's life before this clock: interpreter + script preamble, then imports."""
        if self.process_start is None:
            return {}
        if self.process_start <= IMPORTED_AT <= self.started:
            return {"python_start": IMPORTED_AT - self.process_start, "imports": self.started - IMPORTED_AT}
        return {"python_start_and_imports": self.started - self.process_start}

    def summary(self, **extra) -> dict:
        """Stages (before the clock, then in the order first seen), ``other`` and totals."""
        now = time.perf_counter()
        stages = {**self.before_start(), **self.totals}
        wall = now - (self.process_start if self.process_start is not None else self.started)
        stages["other"] = max(0.0, wall - sum(stages.values()))
        return {
            "stages_s": stages,
            "wall_s": wall,
            "outside_adam_loop_s": wall - stages.get("optimization", 0.0),
            "wall_from": "process start" if self.process_start is not None else "job start",
            **extra,
        }
