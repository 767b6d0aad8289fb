"""Which device a job runs on, and a lease that gives every concurrent job its own GPU.

Snakemake sets no CUDA_VISIBLE_DEVICES, so on a multi-GPU host every job would land on cuda:0.
A job therefore leases a GPU: it takes an exclusive, non-blocking flock on
``<lock_dir>/gpu<i>.lock`` for the first free i and holds it until it ends (the kernel releases the
lock when the process dies, so a killed job never leaves a stale lease). Under a scheduler that
already isolates devices (SLURM sets CUDA_VISIBLE_DEVICES per job) the job uses its first visible
device and takes no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

import torch



def cuda_device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def scheduler_assigned_gpus() -> bool:
    """True when a batch scheduler (SLURM) already restricted this job's visible GPUs."""
    return bool(os.environ.get("SLURM_JOB_ID")) and bool(os.environ.get("CUDA_VISIBLE_DEVICES"))


@contextlib.contextmanager
def gpu_lease(lock_dir: str | Path, n_gpus: int, poll_s: float = 0.5, timeout_s: float | None = None) -> Iterator[int]:
    """Hold an exclusive lease on one of ``n_gpus`` GPUs; yield its index."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for index in range(n_gpus):
            fh = open(lock_dir / f"gpu{index}.lock", "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(f"{os.getpid()}\n")
                fh.flush()
                yield index
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {n_gpus} in {lock_dir}")
        time.sleep(poll_s)


@contextlib.contextmanager
def acquire_device(requested: str, lock_dir: str | Path, n_gpus: int | None = None) -> Iterator[str]:
    """Resolve ``run.device`` (auto|cpu|cuda|cuda:N) to a concrete device for this job."""
    if requested == "cpu":
        yield "cpu"
        return
    if requested.startswith("cuda:"):
        yield requested
        return
    available = cuda_device_count()
    if available == 0:
        if requested == "cuda":
            raise RuntimeError("run.device is 'cuda' but no CUDA device is visible to this job")
        yield "cpu"
        return
    if scheduler_assigned_gpus():
        yield "cuda:0"
        return
    count = min(n_gpus, available) if n_gpus else available
    with gpu_lease(lock_dir, count) as index:
        yield f"cuda:{index}"


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[int]:
    """torch's intra-op threads set to ``threads`` (a job's: what its scheduler gave it,
    ``snakemake.threads``) for the block, restored after; yields the count."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
