"""Concurrent jobs on one host each own a distinct GPU (observed without GPUs: the lease itself)."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from latentopt.compute.devices import acquire_device, gpu_lease


def _hold(lock_dir, n_gpus, hold_s, out_queue):
    with gpu_lease(lock_dir, n_gpus, poll_s=0.05) as index:
        out_queue.put((index, time.monotonic()))
        time.sleep(hold_s)
        out_queue.put((index, time.monotonic()))


def test_concurrent_jobs_get_distinct_gpus_and_wait_for_a_free_one(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), 2, 1.5, q)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    events = [q.get(timeout=5) for _ in range(6)]
    spans = {}
    for index, t in events:
        spans.setdefault(index, []).append(t)
    assert set(spans) == {0, 1}
    # never two holders of one GPU at once: the intervals per GPU do not overlap
    for index, times in spans.items():
        times.sort()
        intervals = list(zip(times[::2], times[1::2]))
        for (s1, e1), (s2, e2) in zip(intervals, intervals[1:]):
            assert s2 >= e1 - 1e-3


def test_lease_is_released_when_the_holder_dies(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_hold, args=(str(tmp_path), 1, 60, q))
    p.start()
    q.get(timeout=30)
    p.kill()
    p.join()
    with gpu_lease(tmp_path, 1, timeout_s=5) as index:
        assert index == 0


def test_cpu_and_auto_without_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr("latentopt.compute.devices.cuda_device_count", lambda: 0)
    with acquire_device("cpu", tmp_path) as d:
        assert d == "cpu"
    with acquire_device("auto", tmp_path) as d:
        assert d == "cpu"
    with pytest.raises(RuntimeError, match="run.device"):
        with acquire_device("cuda", tmp_path):
            pass


def test_auto_with_gpus_leases_and_slurm_uses_its_assignment(tmp_path, monkeypatch):
    monkeypatch.setattr("latentopt.compute.devices.cuda_device_count", lambda: 2)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with acquire_device("auto", tmp_path) as first:
        with acquire_device("auto", tmp_path) as second:
            assert {first, second} == {"cuda:0", "cuda:1"}
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    slurm_locks = tmp_path / "slurm"
    with acquire_device("auto", slurm_locks) as d:
        assert d == "cuda:0"
    assert not slurm_locks.exists()  # SLURM isolates devices: no lease taken
