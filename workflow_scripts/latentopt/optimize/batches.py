"""One batch of same-shape images through the arm (encode, optimize, exact decode, metrics), and
the protocol that keeps one image's fault from failing the others:
  * CUDA out-of-memory: the batch is halved and retried; at batch size 1 the image moves to the CPU
    (run.cpu_fallback), else it is recorded as failed;
  * any other error in a batch: its images are retried one by one, so only the culprit fails;
  * an image over its time budget (run.timeout_per_image_s) is recorded as failed ("timeout").
"""

from __future__ import annotations

import dataclasses
import resource
import time
import traceback

import numpy as np
import torch

from latentopt.data.images import Region, to_uint8
from latentopt.metrics.image_metrics import tensor_metrics
from latentopt.optimize.context import JobContext
from latentopt.optimize.exact import decode_exact, encode_exact
from latentopt.optimize.interrupts import interruptible, progress_logger
from latentopt.optimize.items import Item, failure
from latentopt.optimize.methods import method_class
from latentopt.optimize.optimizer import ImageTrack, optimize_with_retry
from latentopt.optimize.work import WorkCounter, image_work


def _to_tensor(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    batch = np.stack(arrays).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _metrics(ctx: JobContext, decoded: torch.Tensor, targets: torch.Tensor, region: Region):
    rows, cols = region.slices()
    with torch.no_grad():
        values = tensor_metrics(decoded[:, :, rows, cols].float(), targets[:, :, rows, cols].float(), ctx.metric_nets)
    return {k: v.detach().cpu().tolist() for k, v in values.items()}


class BatchClock:
    """Cost of one batch (encode + optimization steps) with the clock that fits the device:
    CUDA events on a GPU (device time, not host waits), process CPU time on a CPU (all threads
    of this process; other processes on a loaded machine do not inflate it), plus wall time."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self.events[0].record()
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()

    def stop(self, batch_id: str, image_ids: list[str], image_iterations: int) -> dict:
        if self.cuda:
            self.events[1].record()
            self.events[1].synchronize()
            compute_s, clock = self.events[0].elapsed_time(self.events[1]) / 1000.0, "cuda_events"
        else:
            compute_s, clock = time.process_time() - self.cpu0, "process_cpu_time"
        return {"id": batch_id, "images": len(image_ids), "image_ids": list(image_ids), "image_iterations": int(image_iterations), "clock": clock,
                "compute_s": compute_s, "wall_s": time.perf_counter() - self.wall0}


def run_batch(ctx: JobContext, items: list[Item], batch_size: int | None = None) -> list[dict]:
    """Encode, optimize and decode one batch of same-shape images; return per-image results.
    ``batch_size``: the batch size in force (a compiled decoder pads the batch to it)."""
    device = ctx.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    targets = _to_tensor([it.model_input for it in items], device)
    region = items[0].region
    ids = [it.image_id for it in items]
    batch_rows = max(len(items), batch_size or 0)  # every step runs at this batch size (optimizer.at_rows)
    clock = BatchClock(device)
    with ctx.stage("encode"):
        z0 = encode_exact(ctx.model, targets)
    encode_s = time.perf_counter() - clock.wall0
    settings = ctx.settings
    if settings is None:
        tracks = [ImageTrack(z0=z0[i].cpu(), best_z=z0[i].cpu(), steps=0, stop_reason="baseline") for i in range(len(items))]
    else:
        resume = ctx.store.load_batch(ids) if ctx.store else None
        if resume is not None:
            ctx.log(f"resuming {ids} from iteration {resume['iteration']}")
        timeout = ctx.run.timeout_per_image_s * len(items)
        step = ctx.step
        backprop = method_class(settings.method).needs_grad  # gradient_free: forward passes only, eager
        with ctx.stage("compile"):
            if backprop:
                step.warm_up(ctx.model, z0, settings.iterations, batch_size)
        where = {"step": resume["iteration"] if resume else 0, "retry": False}
        with ctx.stage("optimization"), interruptible(ctx, ids, where, settings):
            tracks = optimize_with_retry(
                step.decode(ctx.model, batch_rows),
                targets,
                z0,
                ctx.loss_fn,
                settings,
                region=region.slices(),
                precision=step.schedule(settings.iterations),
                grad_scaler=step.grad_scaler(device) if backprop else None,
                encode=None if backprop else ctx.model.encode,
                resume=resume,
                on_checkpoint=(lambda state: ctx.store.save_batch(ids, state)) if ctx.store else None,
                time_limit_s=timeout,
                on_step=progress_logger(ctx.log, settings.iterations, ids, where=where),
                retry_on_step=lambda total, todo: progress_logger(
                    ctx.log, total, [ids[i] for i in todo], where=where, retry=True),
                log=ctx.log,
                rows=batch_rows,
            )
    batch = clock.stop(f"{items[0].split}/{ids[0]}", ids, sum(t.steps + (t.retry["first_attempt"]["steps"] if t.retry else 0) for t in tracks))
    batch["rows"] = batch_rows  # the batch size every step ran at (optimizer.at_rows)
    best = torch.stack([t.best_z for t in tracks]).to(device)
    with ctx.stage("exact_decodes"):
        initial, final = decode_exact(ctx.model, z0), decode_exact(ctx.model, best)
    with ctx.stage("metrics"):
        m0 = _metrics(ctx, initial, targets, region)
        m1 = _metrics(ctx, final, targets, region)
    rows, cols = region.slices()
    decoded_u8 = [to_uint8(final[i, :, rows, cols].permute(1, 2, 0).cpu().numpy()) for i in range(len(items))]
    peak = _peak_memory_mb(device)
    with ctx.stage("flop_count"):  # after the clock: counting is not the batch's cost
        passes = ctx.work.passes(tuple(targets.shape[1:]), region.slices()) if ctx.work is not None else None
    out = []
    for i, (item, track) in enumerate(zip(items, tracks)):
        failed = track.stop_reason == "timeout"
        out.append(
            {
                "item": item,
                "track": track,
                "decoded": decoded_u8[i],
                "initial_metrics": {k: v[i] for k, v in m0.items()},
                "final_metrics": {k: v[i] for k, v in m1.items()},
                "encode_s": encode_s / len(items),
                "peak_memory_mb": peak,
                "batch_size": len(items),
                "batch": batch,
                "work": image_work(passes, None if settings is None else track, settings is not None and settings.reference) if passes else None,
                "device": str(device),
                "status": "failed" if failed else "ok",
                "reason": f"timeout after {track.time_s:.0f} s" if failed else None,
            }
        )
    if ctx.store and settings is not None:
        ctx.store.drop_batch(ids)
    return out


def run_items(ctx: JobContext, items: list[Item], batch_size: int) -> list[dict]:
    """Process items in batches with the OOM/error protocol; never raises for one image's fault."""
    results = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        try:
            results.extend(run_batch(ctx, batch, batch_size))
        except torch.OutOfMemoryError:
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) > 1:
                half = max(1, len(batch) // 2)
                ctx.log(f"out of memory with batch {len(batch)}: retrying with batch {half}")
                results.extend(run_items(ctx, batch, half))
            elif ctx.device.type != "cpu" and ctx.run.cpu_fallback and ctx.cpu_model_factory:
                ctx.log(f"out of memory for {batch[0].image_id} at batch 1: retrying on the CPU")
                model, loss_fn, nets = ctx.cpu_model_factory()
                cpu = torch.device("cpu")
                cpu_ctx = dataclasses.replace(ctx, model=model, loss_fn=loss_fn, metric_nets=nets, device=cpu,
                                              work=WorkCounter(model, loss_fn, ctx.work.needs_grad, cpu) if ctx.work else None)
                results.extend(run_items(cpu_ctx, batch, 1))
            else:
                results.append(failure(batch[0], "CUDA out of memory at batch size 1", traceback.format_exc()))
        except Exception as exc:  # noqa: BLE001 - one image's fault must not stop the others
            if len(batch) > 1:
                ctx.log(f"batch {[b.image_id for b in batch]} failed ({exc!r}): retrying one by one")
                results.extend(run_items(ctx, batch, 1))
            else:
                ctx.log(traceback.format_exc())
                results.append(failure(batch[0], f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    return results
