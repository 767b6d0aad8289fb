"""One optimization job: a chunk of images of one split, for one arm (baseline or a loss).

For every image it writes <arm>_dataset/per_image/<split>/<id>.pt (initial and optimized latents,
loss history, decoded 8-bit image) and .json (metrics, status, provenance). Failure protocol:
  * an image whose preparation failed is recorded as failed (an input failure);
  * a reference that no longer verifies (changed after planning) is recorded as failed, naming the
    file (its chunk-mates finish): the next run's check before planning (latentopt.workflow.integrity, the same check) moves it to
    quarantine and prepares it again;
  * CUDA out-of-memory: the batch is halved and retried; at batch size 1 the image moves to the CPU
    (run.cpu_fallback), else it is recorded as failed;
  * any other error in a batch: its images are retried one by one, so only the culprit fails;
  * an image over its time budget (run.timeout_per_image_s) is recorded as failed ("timeout");
  * failure_policy 'fatal' turns every recorded failure into a job failure instead.
A killed job resumes from its checkpoints (see checkpoints.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from latentopt.compute.precision import exact_fp32
from latentopt.core.fileio import check_writable, read_json, sha256_json, write_json
from latentopt.core.stage_times import StageClock
from latentopt.data.images import Region, model_input, read_rgb, to_uint8
from latentopt.metrics.image_metrics import tensor_metrics
from latentopt.models import autoencoders
from latentopt.optimize.checkpoints import CheckpointStore
from latentopt.optimize.decoder_step import DecoderStep
from latentopt.metrics.lpips_network import lpips_network
from latentopt.optimize.losses import build_loss
from latentopt.optimize.methods import method_class
from latentopt.optimize.optimizer import ImageTrack, optimize_with_retry
from latentopt.optimize.records import image_files, output_paths, write_image_files
from latentopt.workflow import layout
from latentopt.workflow.config import model_spec, synthetic_parts
from latentopt.workflow.integrity import reference_problem
from latentopt.workflow.settings import AdamSettings, ArmSettings, RunSettings


class ImageFailure(RuntimeError):
    pass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a job; its message is the one line the user sees
    (:func:`latentopt.core.joblog.job_log` prints it instead of a traceback)."""


@dataclass
class Item:
    image_id: str
    split: str
    reference: np.ndarray  # uint8 HxWx3, the evaluation reference
    model_input: np.ndarray  # uint8, what the encoder sees (padded for reflect_pad)
    region: Region
    record: dict


@dataclass
class JobContext:
    """What a job needs beyond the images; built once per job, its settings with it."""

    config: dict
    arm: str
    arm_settings: ArmSettings
    run: RunSettings
    step: DecoderStep
    model: torch.nn.Module
    device: torch.device
    loss_fn: Callable | None
    metric_nets: dict
    store: CheckpointStore | None
    fingerprint: str
    log: Callable[[str], None] = print
    cpu_model_factory: Callable[[], tuple] | None = None
    clock: StageClock | None = None  # where the job's wall time goes (stage_times)

    def stage(self, name: str):
        return self.clock.stage(name) if self.clock is not None else contextlib.nullcontext()

    @property
    def settings(self) -> AdamSettings | None:
        """The arm's Adam settings (None for the baseline)."""
        return self.arm_settings.adam


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


def _exact_one_by_one(fn, batch: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to each image of ``batch`` alone, in exact fp32, without gradients. One at a
    time: on an H100, cuDNN's default fp32 convolution choice for the SD-VAE was measured 4-7x
    slower at batch 2-4 than at batch 1, and the last batch of a job is often that small."""
    with torch.no_grad(), exact_fp32():
        return torch.cat([fn(batch[i : i + 1]).float() for i in range(batch.shape[0])])


def encode_exact(model, x: torch.Tensor) -> torch.Tensor:
    """z0 = encode(x) in exact fp32, whatever run.precision the optimization uses: the baseline
    and the starting point do not depend on the speed setting."""
    return _exact_one_by_one(model.encode, x)


def decode_exact(model, z: torch.Tensor) -> torch.Tensor:
    """The published decode of latents, in exact fp32 whatever run.precision the optimization
    used: outputs and metrics depend on the latent alone."""
    return _exact_one_by_one(model.decode, z)


class _BatchClock:
    """Cost of one batch (encode + optimization steps) with the clock that fits the device:
    CUDA events on a GPU (device time, not host waits), process CPU time on a CPU (all threads
    of this process; other processes on a loaded machine do not inflate it), plus wall time."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self.events[0].record()
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()

    def stop(self, batch_id: str, images: int, image_iterations: int) -> dict:
        if self.cuda:
            self.events[1].record()
            self.events[1].synchronize()
            compute_s, clock = self.events[0].elapsed_time(self.events[1]) / 1000.0, "cuda_events"
        else:
            compute_s, clock = time.process_time() - self.cpu0, "process_cpu_time"
        return {"id": batch_id, "images": images, "image_iterations": int(image_iterations), "clock": clock,
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
    clock = _BatchClock(device)
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
        with ctx.stage("optimization"), _interruptible(ctx, ids, where, settings):
            tracks = optimize_with_retry(
                step.decode(ctx.model, max(len(items), batch_size or 0)),
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
                on_step=_progress_logger(ctx.log, settings.iterations, ids, where=where),
                retry_on_step=lambda total, todo: _progress_logger(
                    ctx.log, total, [ids[i] for i in todo], where=where, retry=True),
                log=ctx.log,
            )
    batch = clock.stop(f"{items[0].split}/{ids[0]}", len(items), sum(t.steps + (t.retry["first_attempt"]["steps"] if t.retry else 0) for t in tracks))
    best = torch.stack([t.best_z for t in tracks]).to(device)
    with ctx.stage("exact_decodes"):
        initial, final = decode_exact(ctx.model, z0), decode_exact(ctx.model, best)
    with ctx.stage("metrics"):
        m0 = _metrics(ctx, initial, targets, region)
        m1 = _metrics(ctx, final, targets, region)
    rows, cols = region.slices()
    decoded_u8 = [to_uint8(final[i, :, rows, cols].permute(1, 2, 0).cpu().numpy()) for i in range(len(items))]
    peak = _peak_memory_mb(device)
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
                "device": str(device),
                "status": "failed" if failed else "ok",
                "reason": f"timeout after {track.time_s:.0f} s" if failed else None,
            }
        )
    if ctx.store and settings is not None:
        ctx.store.drop_batch(ids)
    return out


# A progress line of the job log ("  [4 img] step 20/50 (40%), ..." or "  [1 img] retry step 10/100
# (10%), ...": the retry counts against its own iterations); latentopt.workflow.progress reads them.
PROGRESS_LINE = r"\[(?P<n>\d+) img\] (?P<retry>retry )?step (?P<step>\d+)/(?P<total>\d+) "


def _progress_logger(log, total: int, ids: list[str], every: int = 10, where: dict | None = None,
                     retry: bool = False):
    """Progress lines for the job log: step, images still running, rate and ETA of the batch (or
    of its non-convergence retry: ``retry``, with the retry's own ``total``). ``where`` gets the
    current step (for the message of an interrupted job)."""
    start, first = time.perf_counter(), None
    if where is not None and retry:
        where.update(step=0, retry=True)

    def on_step(it: int, active: int) -> None:
        nonlocal first
        first = it - 1 if first is None else first
        if where is not None:
            where["step"] = it
        if it % every and it != total:
            return
        rate = (it - first) / max(time.perf_counter() - start, 1e-9)
        log(f"  [{len(ids)} img] {'retry ' if retry else ''}step {it}/{total} ({100 * it / total:.0f}%), "
            f"{active} running, {rate:.2f} it/s, ETA {(total - it) / rate:.0f} s")

    return on_step


@contextlib.contextmanager
def _interruptible(ctx: JobContext, ids: list[str], where: dict, settings):
    """Ctrl-C in the Adam loop becomes :class:`Interrupted` with one line for the user: the step
    reached and what a rerun resumes from (the last checkpoint, if any was written)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(_interrupt_message(ctx, ids, where, settings)) from None


def _interrupt_message(ctx: JobContext, ids: list[str], where: dict, settings) -> str:
    saved = ctx.store.load_batch(ids) if ctx.store else None
    step = f"{'retry ' if where.get('retry') else ''}step {where.get('step', 0)}"
    head = f"{ctx.arm} {ids[0]}{f' (+{len(ids) - 1} more)' if len(ids) > 1 else ''}: interrupted at {step}"
    if saved is not None:
        kept = f"first attempt, step {saved['iteration']}; the retry restarts" if where.get("retry") else f"step {saved['iteration']}"
        return f"{head}; checkpoint kept ({kept}); rerun the same command to resume"
    return (f"{head}; no checkpoint of this batch yet (one every {settings.checkpoint_interval} steps); "
            "finished images are kept; rerun the same command to resume")


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
                cpu_ctx = JobContext(**{**ctx.__dict__, "model": model, "loss_fn": loss_fn, "metric_nets": nets, "device": torch.device("cpu")})
                results.extend(run_items(cpu_ctx, batch, 1))
            else:
                results.append(_failure(batch[0], "CUDA out of memory at batch size 1", traceback.format_exc()))
        except Exception as exc:  # noqa: BLE001 - one image's fault must not stop the others
            if len(batch) > 1:
                ctx.log(f"batch {[b.image_id for b in batch]} failed ({exc!r}): retrying one by one")
                results.extend(run_items(ctx, batch, 1))
            else:
                ctx.log(traceback.format_exc())
                results.append(_failure(batch[0], f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    return results


def _failure(item: Item, reason: str, tb: str | None = None) -> dict:
    return {"item": item, "status": "failed", "reason": reason, "traceback": tb}


def load_items(config: dict, split: str, image_ids: list[str], log) -> tuple[list[Item], list[dict]]:
    """Read each prepared reference (verifying its checksum); return items and failures."""
    results, pre = config["results_dir"], config["preprocess"]
    items, failures = [], []
    for image_id in image_ids:
        record = read_json(layout.prepared_record(results, split, image_id))
        stub = Item(image_id, split, None, None, None, record)
        if record["status"] != "ok":
            failures.append({**_failure(stub, f"preparation failed: {record['reason']}"), "failure_kind": "input"})
            continue
        png = layout.original_png(results, split, image_id)
        data = {}  # read once: the bytes checked are the bytes decoded

        def digest(path):
            data["png"] = Path(path).read_bytes()
            return hashlib.sha256(data["png"]).hexdigest()

        problem = reference_problem(results, split, image_id, record, sha256=digest)
        if problem:  # changed after planning: this image fails, its chunk-mates finish
            failures.append(_failure(stub, f"{problem} (it changed after planning); the next run's check before "
                                           "planning moves it to quarantine and prepares it again"))
            continue
        reference = read_rgb(png, data=data["png"])
        inp, region = model_input(reference, pre["mode"], pre["multiple"])
        items.append(Item(image_id, split, reference, inp, region, record))
    return items, failures


def group_by_shape(items: list[Item]) -> list[list[Item]]:
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        groups.setdefault(item.model_input.shape, []).append(item)
    return list(groups.values())


def write_outputs(ctx: JobContext, result: dict) -> dict:
    """Write one image's .pt then .json (:mod:`latentopt.optimize.records`; the JSON, written last,
    marks the image complete)."""
    item = result["item"]
    pt_path, json_path = output_paths(ctx.config, ctx.arm, item.split, item.image_id)
    payload, record = image_files(item, ctx.arm, result, fingerprint=ctx.fingerprint,
                                          synthetic=synthetic_parts(ctx.config), model_info=ctx.model.info)
    write_image_files(pt_path, json_path, payload, record)
    if ctx.store is not None and result["status"] == "ok":
        ctx.store.keep_done(item.image_id, pt_path, json_path)
    return record


def job_fingerprint(settings: dict, weights_sha256: str) -> str:
    """``settings``: :meth:`ArmSettings.params` (the rule's ``settings`` param)."""
    return sha256_json({"settings": settings, "weights": weights_sha256})


def job_settings(config: dict, arm: str, params: dict | None = None) -> ArmSettings:
    """The arm's settings, built once for the job. ``params``: the rule's declared ``settings``
    param (the rerun trigger), which must be what this config gives (else the job would run with,
    and fingerprint, something other than what Snakemake tracks)."""
    settings = ArmSettings.from_config(config, arm, model_spec(config))
    if params is not None and dict(params) != settings.params():
        raise ValueError(f"{arm}: the rule's params.settings {dict(params)} differ from the config's {settings.params()}")
    return settings


def build_context(config: dict, arm: str, split: str, device: str, log, model=None,
                  settings: ArmSettings | None = None, run: RunSettings | None = None) -> JobContext:
    """Everything a job computes with, on ``device``; ``model``: the autoencoder already loaded
    (on the CPU), moved instead of loaded again; ``settings``, ``run``: the job's, built once
    (:func:`job_settings`, :class:`RunSettings`)."""
    settings = settings or job_settings(config, arm)
    run = run or RunSettings.from_config(config)

    def make(dev: torch.device, model=None):
        model = model.to(dev) if model is not None else autoencoders.load_autoencoder(settings.model, device=dev)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = None if settings.is_baseline else build_loss(settings.loss, device=dev)
        nets = {}
        random_trunk = config["metric_networks"]["lpips_random_trunk"]
        try:
            nets["alex"] = lpips_network("alex", random_trunk=random_trunk, device=dev)
        except FileNotFoundError as exc:
            log(f"LPIPS not recorded per image: {exc}")
        return model, loss_fn, nets

    dev = torch.device(device)
    model, loss_fn, nets = make(dev, model)
    fingerprint = job_fingerprint(settings.params(), model.info["weights_sha256"])
    store = None if settings.is_baseline else CheckpointStore(layout.checkpoint_dir(config["results_dir"], arm, split), fingerprint)
    return JobContext(config, arm, settings, run, DecoderStep.from_numerics(settings.numerics), model, dev, loss_fn, nets,
                      store, fingerprint, log, lambda: make(torch.device("cpu")))


def optimize_chunk(config: dict, arm: str, split: str, image_ids: list[str], device, log=print,
                   stages_path=None, params: dict | None = None) -> list[dict]:
    """Run one job; return the per-image records written.

    ``device`` is a device string or a context manager yielding one (the GPU lease of
    :func:`latentopt.compute.devices.job_device`). It is entered only after the CPU-side start-up (imports,
    model weights loaded into memory, prepared images read, CUDA driver initialised), so with more
    concurrent jobs than GPUs (``--resources gpu=2`` per GPU) the next job starts up while the
    current one computes, and the lease still lets one job at a time compute on each GPU.
    ``stages_path``: where to write the job's wall-time split (:mod:`latentopt.core.stage_times`).
    ``params``: the rule's ``settings`` param, checked against the config (:func:`job_settings`).
    """
    clock = StageClock()
    settings, run = job_settings(config, arm, params), RunSettings.from_config(config)
    check_writable(config["results_dir"])
    with clock.stage("model_load"):
        model = autoencoders.load_autoencoder(settings.model, device="cpu")
    with clock.stage("image_reading"):
        items, failures = load_items(config, split, image_ids, log)
    with clock.stage("cuda_driver_init"):
        if run.device != "cpu" and torch.cuda.is_available():
            torch.cuda.init()  # the CUDA runtime (device count, allocator) before the lease; unverified on a GPU
    lease = contextlib.nullcontext(device) if isinstance(device, str) else device
    waiting = time.perf_counter()
    with lease as dev:
        clock.add("waiting_for_device", time.perf_counter() - waiting)
        dev = torch.device(dev)
        if dev.type == "cuda":
            with clock.stage("cuda_context"):
                torch.zeros(1, device=dev)
            clock.sync = lambda: torch.cuda.synchronize(dev)
        with clock.stage("device_setup"):
            ctx = build_context(config, arm, split, str(dev), log, model=model, settings=settings, run=run)
        ctx.clock = clock
        log(f"{arm}/{split}: {len(image_ids)} images on {dev}; model {ctx.model.info.get('source')}; start-up: "
            + ", ".join(f"{v:.1f} s {k.replace('_', ' ')}" for k, v in clock.summary()["stages_s"].items() if k != "other")
            + " (waiting for the device: while another job computes on it)")
        try:
            return _optimize_items(ctx, split, image_ids, items, failures)
        finally:
            summary = clock.summary(arm=arm, split=split, images=len(image_ids), device=str(dev),
                                    batch_size=ctx.run.batch_size)
            log("wall-time split: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary["stages_s"].items())
                + f"; {summary['outside_adam_loop_s']:.1f} s of {summary['wall_s']:.1f} s outside the Adam loop")
            if stages_path is not None:
                with contextlib.suppress(OSError):  # never hide the job's own outcome
                    write_json(stages_path, summary)


def _optimize_items(ctx: JobContext, split: str, image_ids: list[str], items, failures) -> list[dict]:
    """The job's work once its context is on the device: failures recorded, finished images
    restored from an interrupted run, the rest optimized batch by batch."""
    config, arm, log = ctx.config, ctx.arm, ctx.log
    records = [write_outputs(ctx, f) for f in failures]
    todo = []
    for item in items:
        pt, js = output_paths(config, arm, split, item.image_id)
        if ctx.store is not None and ctx.store.restore_done(item.image_id, pt, js):
            log(f"{item.image_id}: finished earlier in an interrupted run, restored")
            records.append(read_json(js))
        else:
            todo.append(item)
    settings = ctx.settings  # stopping.rule reference runs at batch size 1, as the original
    batch_size = 1 if settings is not None and settings.reference else ctx.run.batch_size
    done = 0
    for group in group_by_shape(todo):
        for start in range(0, len(group), batch_size):
            for result in run_items(ctx, group[start : start + batch_size], batch_size):
                with ctx.stage("writes"):
                    records.append(write_outputs(ctx, result))
                done += 1
                rec = records[-1]
                final = rec.get("final", {})
                log(f"[{done}/{len(todo)}] {rec['image_id']}: {rec['status']}"
                    + (f" PSNR {rec['initial']['psnr']:.2f} -> {final['psnr']:.2f} dB, {rec['iterations']} it, {rec['time_s']:.1f} s" if rec["status"] == "ok" else f" ({rec['reason']})"))
    failed = [r for r in records if r["status"] != "ok"]
    if failed and ctx.run.failure_policy == "fatal":
        raise ImageFailure(f"{len(failed)} image(s) failed (failure_policy: fatal): " + "; ".join(f"{r['image_id']}: {r['reason']}" for r in failed))
    if ctx.store is not None:
        ctx.store.clear(image_ids)
    return records
