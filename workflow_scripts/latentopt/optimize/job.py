"""One optimization job: a chunk of images of one split, for one arm (baseline or a loss).

The entry point of the optimize rules (:func:`optimize_chunk`): the job reads the prepared
records its input manifests list and writes, for every image,
<arm>_dataset/per_image/<split>/<id>.pt (initial and optimized latents, loss history, decoded 8-bit
image) and .json (metrics, status, provenance; :mod:`latentopt.optimize.records`). Its settings are
its rule's params: ``settings`` (the rerun trigger and the fingerprint,
:meth:`latentopt.workflow.settings.ArmSettings.from_params`) and ``run``. Failure protocol:
  * an image whose preparation failed is recorded as failed (an input failure);
  * a reference that no longer verifies (changed after planning) is recorded as failed, naming the
    file (its chunk-mates finish): the next run's check before planning
    (latentopt.workflow.integrity, the same check) moves it to quarantine and prepares it again;
  * out of memory, an error in a batch, a timeout: :mod:`latentopt.optimize.batches`;
  * failure_policy 'fatal' turns every recorded failure into a job failure instead.
then its chunk's manifest, its one declared output (latentopt.workflow.chunks). A killed job
resumes: the images it finished are in place and restored, a running batch resumes from its
checkpoint (see checkpoints.py).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from latentopt.compute.devices import acquire_device
from latentopt.core.fileio import check_writable, write_json
from latentopt.core.stage_times import StageClock
from latentopt.models import autoencoders
from latentopt.optimize.batches import run_items
from latentopt.optimize.context import JobContext, build_context
from latentopt.optimize.items import group_by_shape, load_items
from latentopt.optimize.records import image_files, restorable, write_image_files
from latentopt.workflow import layout
from latentopt.workflow.chunks import write_manifest
from latentopt.workflow.config import describe_synthetic
from latentopt.workflow.settings import ArmSettings, RunSettings

Outputs = dict[str, tuple[Path, Path]]  # image id -> its (.pt, .json)


class ImageFailure(RuntimeError):
    pass


def write_outputs(ctx: JobContext, result: dict, outputs: Outputs) -> dict:
    """Write one image's .pt then .json (:mod:`latentopt.optimize.records`; the JSON, written last,
    marks the image complete)."""
    item = result["item"]
    pt_path, json_path = outputs[item.image_id]
    payload, record = image_files(item, ctx.arm, result, fingerprint=ctx.fingerprint,
                                  synthetic=list(ctx.synthetic), model_info=ctx.model.info, settings=ctx.arm_settings)
    write_image_files(pt_path, json_path, payload, record)
    return record


def optimize_chunk(arm: str, split: str, image_ids: list[str], *, prepared: list[str], json: list[str],
                   pt: list[str], settings: dict, run: dict, lpips_random_trunk: bool, synthetic: dict,
                   results_dir: str, manifest: str | None = None, device=None, log=print,
                   stages_path=None) -> list[dict]:
    """Run one job; return the per-image records written.

    ``prepared``, ``json``, ``pt``: the prepared records it reads and the files it writes, one per
    image of ``image_ids``; ``manifest``: the chunk's manifest, its declared output, written last
    (latentopt.workflow.chunks);
    ``settings``: the arm's settings params (:meth:`ArmSettings.params`, the rerun trigger, read
    back by :meth:`ArmSettings.from_params`); ``run``: :class:`RunSettings` as a dict;
    ``lpips_random_trunk``: the per-image LPIPS network's trunk is random; ``synthetic``: what every
    record says is random or demo-only (:func:`latentopt.workflow.config.synthetic_spec`, described
    once here); ``results_dir``: where the references are verified and checkpoints kept.
    (:func:`latentopt.workflow.job_params.optimize_job_args` builds all of them from a config.)

    ``device`` is a device string or a context manager yielding one; None: the GPU lease of the run
    settings (:func:`latentopt.compute.devices.acquire_device`). It is entered only after the
    CPU-side start-up (imports, model weights loaded into memory, prepared images read, CUDA driver
    initialised), so with more concurrent jobs than GPUs (``--resources gpu=2`` per GPU) the next
    job starts up while the current one computes, and the lease still lets one job at a time compute
    on each GPU. ``stages_path``: where to write the job's wall-time split
    (:mod:`latentopt.core.stage_times`).
    """
    clock = StageClock()
    run = RunSettings(**run)
    arm_settings = ArmSettings.from_params(settings, cache_dir=run.compile_cache_dir)
    outputs = {i: (Path(p), Path(j)) for i, p, j in zip(image_ids, pt, json, strict=True)}
    parts = describe_synthetic(synthetic)
    check_writable(results_dir)
    with clock.stage("model_load"):
        model = autoencoders.load_autoencoder(arm_settings.model, device="cpu")
    with clock.stage("image_reading"):
        items, failures = load_items(prepared, split, image_ids, arm_settings.preprocess, results_dir, log)
    with clock.stage("cuda_driver_init"):
        if run.device != "cpu" and torch.cuda.is_available():
            torch.cuda.init()  # the CUDA runtime (device count, allocator) before the lease; unverified on a GPU
    if device is None:
        device = acquire_device(run.device, run.gpu_lock_dir, run.n_gpus)
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
            ctx = build_context(arm_settings, run, str(dev), checkpoints=layout.checkpoint_dir(results_dir, arm, split),
                                lpips_random_trunk=lpips_random_trunk, log=log, model=model, synthetic=parts,
                                results_dir=results_dir)
        ctx.clock = clock
        log(f"{arm}/{split}: {len(image_ids)} images on {dev}; model {ctx.model.info.get('source')}; start-up: "
            + ", ".join(f"{v:.1f} s {k.replace('_', ' ')}" for k, v in clock.summary()["stages_s"].items() if k != "other")
            + " (waiting for the device: while another job computes on it)")
        try:
            records = _optimize_items(ctx, image_ids, items, failures, outputs)
            if manifest is not None:
                write_manifest(manifest, "optimize", split, [(i, {"json": outputs[i][1], "pt": outputs[i][0]}) for i in image_ids])
            return records
        finally:
            summary = clock.summary(arm=arm, split=split, images=len(image_ids), device=str(dev),
                                    batch_size=ctx.run.batch_size)
            log("wall-time split: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary["stages_s"].items())
                + f"; {summary['outside_adam_loop_s']:.1f} s of {summary['wall_s']:.1f} s outside the Adam loop")
            if stages_path is not None:
                with contextlib.suppress(OSError):  # never hide the job's own outcome
                    write_json(stages_path, summary)


def _optimize_items(ctx: JobContext, image_ids: list[str], items, failures, outputs: Outputs) -> list[dict]:
    """The job's work once its context is on the device: failures recorded, images already finished
    in place restored (:func:`latentopt.optimize.records.restorable`), the rest optimized batch by batch."""
    log = ctx.log
    records = [write_outputs(ctx, f, outputs) for f in failures]
    todo = []
    for item in items:
        pt, js = outputs[item.image_id]
        kept = restorable(pt, js, ctx.fingerprint, item.record["sha256"])
        if kept is not None:
            log(f"{item.image_id}: finished earlier with these settings (a stopped job, or a chunk rerun), restored")
            records.append(kept)
        else:
            todo.append(item)
    settings = ctx.settings  # stopping.rule reference runs at batch size 1, as the original
    batch_size = 1 if settings is not None and settings.reference else ctx.run.batch_size
    done = 0
    for group in group_by_shape(todo):
        for start in range(0, len(group), batch_size):
            for result in run_items(ctx, group[start : start + batch_size], batch_size):
                with ctx.stage("writes"):
                    records.append(write_outputs(ctx, result, outputs))
                done += 1
                rec = records[-1]
                final = rec.get("final", {})
                log(f"[{done}/{len(todo)}] {rec['image_id']}: {rec['status']}"
                    + (f" PSNR {rec['initial']['psnr']:.2f} -> {final['psnr']:.2f} dB, {rec['iterations']} it, {rec['time_s']:.1f} s" if rec["status"] == "ok" else f" ({rec['reason']})"))
    failed = [r for r in records if r["status"] != "ok"]
    if failed and ctx.run.failure_policy == "fatal":
        raise ImageFailure(f"{len(failed)} image(s) failed (failure_policy: fatal): " + "; ".join(f"{r['image_id']}: {r['reason']}" for r in failed))
    return records
