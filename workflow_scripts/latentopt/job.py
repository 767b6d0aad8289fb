"""One optimization job: a chunk of images of one split, for one arm (baseline or a loss).

For every image it writes <arm>_dataset/per_image/<split>/<id>.pt (initial and optimized latents,
loss history, decoded 8-bit image) and .json (metrics, status, provenance). Failure protocol:
  * an image whose preparation failed, or whose reference no longer verifies, is recorded as failed;
  * CUDA out-of-memory: the batch is halved and retried; at batch size 1 the image moves to the CPU
    (run.cpu_fallback), else it is recorded as failed;
  * any other error in a batch: its images are retried one by one, so only the culprit fails;
  * an image over its time budget (run.timeout_per_image_s) is recorded as failed ("timeout");
  * failure_policy 'fatal' turns every recorded failure into a job failure instead.
A killed job resumes from its checkpoints (see checkpoints.py).
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import layout
from .checkpoints import CheckpointStore
from .config import arm_settings, is_baseline, model_spec, synthetic_parts
from .fileio import atomic_path, check_writable, read_json, sha256_file, sha256_json, write_json
from .images import Region, model_input, read_rgb, to_uint8
from .optimizer import AdamSettings, ImageTrack, optimize_latents
from .precision import exact_fp32


class ImageFailure(RuntimeError):
    pass


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
    """What a job needs beyond the images; built once per job."""

    config: dict
    arm: str
    model: torch.nn.Module
    device: torch.device
    loss_fn: Callable | None
    metric_nets: dict
    store: CheckpointStore | None
    fingerprint: str
    log: Callable[[str], None] = print
    cpu_model_factory: Callable[[], tuple] | None = None

    @property
    def settings(self) -> AdamSettings | None:
        return None if is_baseline(self.arm) else AdamSettings.from_config(self.config["losses"][self.arm])


def _to_tensor(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    batch = np.stack(arrays).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _metrics(ctx: JobContext, decoded: torch.Tensor, targets: torch.Tensor, region: Region):
    from .metrics import tensor_metrics

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


def run_batch(ctx: JobContext, items: list[Item]) -> list[dict]:
    """Encode, optimize and decode one batch of same-shape images; return per-image results."""
    device = ctx.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    targets = _to_tensor([it.model_input for it in items], device)
    region = items[0].region
    ids = [it.image_id for it in items]
    start = time.perf_counter()
    z0 = encode_exact(ctx.model, targets)
    encode_s = time.perf_counter() - start
    settings = ctx.settings
    if settings is None:
        tracks = [ImageTrack(z0=z0[i].cpu(), best_z=z0[i].cpu(), steps=0, stop_reason="baseline") for i in range(len(items))]
    else:
        resume = ctx.store.load_batch(ids) if ctx.store else None
        if resume is not None:
            ctx.log(f"resuming {ids} from iteration {resume['iteration']}")
        timeout = ctx.config["run"]["timeout_per_image_s"] * len(items)
        tracks = optimize_latents(
            ctx.model.decode,
            targets,
            z0,
            ctx.loss_fn,
            settings,
            region=region.slices(),
            precision=ctx.config["run"]["precision"],
            resume=resume,
            on_checkpoint=(lambda state: ctx.store.save_batch(ids, state)) if ctx.store else None,
            time_limit_s=timeout,
            on_step=_progress_logger(ctx.log, settings.iterations, ids),
        )
    best = torch.stack([t.best_z for t in tracks]).to(device)
    initial, final = decode_exact(ctx.model, z0), decode_exact(ctx.model, best)
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
                "device": str(device),
                "status": "failed" if failed else "ok",
                "reason": f"timeout after {track.time_s:.0f} s" if failed else None,
            }
        )
    if ctx.store and settings is not None:
        ctx.store.drop_batch(ids)
    return out


def _progress_logger(log, total: int, ids: list[str], every: int = 10):
    """Progress lines for the job log: step, images still running, rate and ETA of the batch."""
    start, first = time.perf_counter(), None

    def on_step(it: int, active: int) -> None:
        nonlocal first
        first = it - 1 if first is None else first
        if it % every and it != total:
            return
        rate = (it - first) / max(time.perf_counter() - start, 1e-9)
        log(f"  [{len(ids)} img] step {it}/{total} ({100 * it / total:.0f}%), {active} running, "
            f"{rate:.2f} it/s, ETA {(total - it) / rate:.0f} s")

    return on_step


def run_items(ctx: JobContext, items: list[Item], batch_size: int) -> list[dict]:
    """Process items in batches with the OOM/error protocol; never raises for one image's fault."""
    results = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        try:
            results.extend(run_batch(ctx, batch))
        except torch.OutOfMemoryError:
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
            if len(batch) > 1:
                half = max(1, len(batch) // 2)
                ctx.log(f"out of memory with batch {len(batch)}: retrying with batch {half}")
                results.extend(run_items(ctx, batch, half))
            elif ctx.device.type != "cpu" and ctx.config["run"]["cpu_fallback"] and ctx.cpu_model_factory:
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
        if not png.is_file() or sha256_file(png) != record["sha256"]:
            failures.append(_failure(stub, f"reference {png} is missing or does not match its checksum; delete {layout.prepared_record(results, split, image_id)} to regenerate it"))
            continue
        reference = read_rgb(png)
        inp, region = model_input(reference, pre["mode"], pre["multiple"])
        items.append(Item(image_id, split, reference, inp, region, record))
    return items, failures


def group_by_shape(items: list[Item]) -> list[list[Item]]:
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        groups.setdefault(item.model_input.shape, []).append(item)
    return list(groups.values())


def _output_paths(config: dict, arm: str, split: str, image_id: str):
    """The image's declared outputs: (.pt, .json)."""
    return tuple(layout.per_image(config["results_dir"], arm, split, image_id, ext) for ext in ("pt", "json"))


def write_outputs(ctx: JobContext, result: dict) -> dict:
    """Write one image's .pt then .json (the JSON, written last, marks the image complete)."""
    item = result["item"]
    pt_path, json_path = _output_paths(ctx.config, ctx.arm, item.split, item.image_id)

    record = {
        "image_id": item.image_id,
        "split": item.split,
        "arm": ctx.arm,
        "status": result["status"],
        "reason": result.get("reason"),
        "failure_kind": result.get("failure_kind", "optimization") if result["status"] != "ok" else None,
        "fingerprint": ctx.fingerprint,
        "synthetic": synthetic_parts(ctx.config),
        "model": ctx.model.info,
        "finished_at": time.time(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    payload = {"image_id": item.image_id, "split": item.split, "arm": ctx.arm, "status": result["status"]}
    if result["status"] == "ok" or "track" in result:
        track: ImageTrack = result["track"]
        payload.update(  # clones: a view would save the whole batch's storage into this file
            z0=track.z0.detach().cpu().clone(),
            z=track.best_z.detach().cpu().clone(),
            loss_history=track.history,
            decoded=torch.from_numpy(result["decoded"]).clone(),
            region=list(item.region.__dict__.values()),
        )
        record.update(
            initial=result["initial_metrics"],
            final=result["final_metrics"],
            iterations=track.steps,
            converged_at=track.converged_at,
            stop_reason=track.stop_reason,
            initial_loss=track.history[0] if track.history else None,
            best_loss=track.best_loss if track.history else None,
            time_s=track.time_s + result["encode_s"],
            optimization_time_s=track.time_s,
            peak_memory_mb=result["peak_memory_mb"],
            device=result["device"],
            batch_size=result["batch_size"],
            size=list(item.reference.shape[:2]),
        )
    else:
        record["traceback"] = result.get("traceback")
    with atomic_path(pt_path) as tmp:
        torch.save(payload, tmp)
    record["pt_sha256"] = sha256_file(pt_path)
    write_json(json_path, record)
    if ctx.store is not None and result["status"] == "ok":
        ctx.store.keep_done(item.image_id, pt_path, json_path)
    return record


def job_fingerprint(config: dict, arm: str, weights_sha256: str) -> str:
    return sha256_json({"settings": arm_settings(config, arm), "weights": weights_sha256})


def build_context(config: dict, arm: str, split: str, device: str, log, model=None) -> JobContext:
    """Everything a job computes with, on ``device``; ``model``: the autoencoder already loaded
    (on the CPU), moved instead of loaded again."""
    from .autoencoders import load_autoencoder
    from .losses import build_loss, lpips_network

    def make(dev: torch.device, model=None):
        model = model.to(dev) if model is not None else load_autoencoder(model_spec(config), device=dev)
        if config["run"]["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = None if is_baseline(arm) else build_loss(config["losses"][arm]["loss"], device=dev)
        nets = {}
        random_trunk = config["metric_networks"]["lpips_random_trunk"]
        try:
            nets["alex"] = lpips_network("alex", random_trunk=random_trunk, device=dev)
        except FileNotFoundError as exc:
            log(f"LPIPS not recorded per image: {exc}")
        return model, loss_fn, nets

    dev = torch.device(device)
    model, loss_fn, nets = make(dev, model)
    fingerprint = job_fingerprint(config, arm, model.info["weights_sha256"])
    store = None if is_baseline(arm) else CheckpointStore(layout.checkpoint_dir(config["results_dir"], arm, split), fingerprint)
    return JobContext(config, arm, model, dev, loss_fn, nets, store, fingerprint, log, lambda: make(torch.device("cpu")))


def optimize_chunk(config: dict, arm: str, split: str, image_ids: list[str], device, log=print) -> list[dict]:
    """Run one job; return the per-image records written.

    ``device`` is a device string or a context manager yielding one (the GPU lease of
    :func:`latentopt.devices.job_device`). It is entered only after the CPU-side start-up (imports,
    model weights loaded into memory, prepared images read), so with more concurrent jobs than
    GPUs (``--resources gpu=2`` per GPU) the next job starts up while the current one computes,
    and the lease still lets one job at a time compute on each GPU.
    """
    from .autoencoders import load_autoencoder

    check_writable(config["results_dir"])
    start = time.perf_counter()
    model = load_autoencoder(model_spec(config), device="cpu")
    items, failures = load_items(config, split, image_ids, log)
    ready = time.perf_counter()
    lease = contextlib.nullcontext(device) if isinstance(device, str) else device
    with lease as dev:
        leased = time.perf_counter()
        ctx = build_context(config, arm, split, dev, log, model=model)
        log(f"{arm}/{split}: {len(image_ids)} images on {dev}; model {ctx.model.info.get('source')}; "
            f"start-up: {_before(start)} process start and imports, "
            f"{ready - start:.1f} s model load and image reading on the CPU, {leased - ready:.1f} s "
            f"waiting for the device, {time.perf_counter() - leased:.1f} s setting up on it")
        return _optimize_items(ctx, split, image_ids, items, failures)


def _process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), or None where that is unknown."""
    try:
        with open("/proc/self/stat") as fh:  # field 22 = start time in clock ticks after boot
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _before(start: float) -> str:
    """How long the process ran before ``start`` (a perf_counter reading), as text."""
    age = _process_age_s()
    return "?" if age is None else f"{age - (time.perf_counter() - start):.1f} s"


def _optimize_items(ctx: JobContext, split: str, image_ids: list[str], items, failures) -> list[dict]:
    """The job's work once its context is on the device: failures recorded, finished images
    restored from an interrupted run, the rest optimized batch by batch."""
    config, arm, log = ctx.config, ctx.arm, ctx.log
    records = [write_outputs(ctx, f) for f in failures]
    todo = []
    for item in items:
        pt, js = _output_paths(config, arm, split, item.image_id)
        if ctx.store is not None and ctx.store.restore_done(item.image_id, pt, js):
            log(f"{item.image_id}: finished earlier in an interrupted run, restored")
            records.append(read_json(js))
        else:
            todo.append(item)
    batch_size = config["run"]["batch_size"]
    done = 0
    for group in group_by_shape(todo):
        for start in range(0, len(group), batch_size):
            for result in run_items(ctx, group[start : start + batch_size], batch_size):
                records.append(write_outputs(ctx, result))
                done += 1
                rec = records[-1]
                final = rec.get("final", {})
                log(f"[{done}/{len(todo)}] {rec['image_id']}: {rec['status']}"
                    + (f" PSNR {rec['initial']['psnr']:.2f} -> {final['psnr']:.2f} dB, {rec['iterations']} it, {rec['time_s']:.1f} s" if rec["status"] == "ok" else f" ({rec['reason']})"))
    failed = [r for r in records if r["status"] != "ok"]
    if failed and config["run"]["failure_policy"] == "fatal":
        raise ImageFailure(f"{len(failed)} image(s) failed (failure_policy: fatal): " + "; ".join(f"{r['image_id']}: {r['reason']}" for r in failed))
    if ctx.store is not None:
        ctx.store.clear(image_ids)
    return records
