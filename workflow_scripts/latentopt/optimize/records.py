"""The per-image record of an optimization job: the two files written for every image of a chunk.

``<arm>_dataset/per_image/<split>/<id>.pt`` (torch.save of a dict, the payload):
    image_id, split, arm, status; for an optimized image also z0 and z (initial and returned
    latent, CPU tensors [C,h,w]), loss_history, decoded (the published uint8 H x W x 3 image) and
    region (top, left, height, width of the reference inside the model input); method gradient_free
    adds residual_history (mean (E(D(z_t)) - z_0)**2 of every latent a step was taken from).
``<arm>_dataset/per_image/<split>/<id>.json`` (the record, written last: it marks the image done):
    image_id, split, arm, status ("ok" or "failed"), reason, failure_kind ("input" or
    "optimization", None when ok), fingerprint (the job's, see ``context.job_fingerprint``), synthetic,
    model (the autoencoder's info), finished_at, host, slurm_job_id, cuda_visible_devices; with a
    result also initial and final (metrics), iterations, converged_at, stop_reason, initial_loss,
    best_loss, final_loss, returned_latent, retry, time_s (optimization + encode share),
    optimization_time_s, peak_memory_mb, device, batch_size, batch (the batch's clock,
    image_ids, the images optimized together, and rows, the batch size every step ran at:
    optimizer.at_rows), size, counted_work (FLOPs of the image's passes,
    :func:`latentopt.optimize.work.image_work`; ``tflop`` its total) (method gradient_free:
    initial_residual, last_residual, from residual_history); always ``settings``, what produced
    the image (:func:`arm_record`: method, loss spec, lr, iterations, schedule, stop rule, ...);
    for a failure without a result the traceback; always reference_sha256 (of the prepared reference
    PNG it was computed from) and pt_sha256 (of the .pt).

Read back by the dataset build (:func:`latentopt.data.datasets.read_verified`), the evaluation, the
quality gate and the integrity check (:mod:`latentopt.workflow.integrity`).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch

from latentopt.core.fileio import atomic_path, read_json, recorded, sha256_file, write_json


def arm_record(settings) -> dict:
    """The arm's settings as a record states them (``settings``: the job's
    :class:`latentopt.workflow.settings.ArmSettings`): method, loss spec, Adam's lr/betas/eps,
    iterations (the budget; the record's ``iterations`` is what ran), schedule and its warm-up
    share, stop rule, retry, decoder precision. The baseline: method ``None`` (encode + decode)."""
    adam = settings.adam
    out = {"arm": settings.arm, "method": None if adam is None else adam.method, "loss": settings.loss,
           "precision": settings.numerics.precision}
    if adam is not None:
        out.update(lr=adam.lr, betas=list(adam.betas), eps=adam.eps, iterations=adam.iterations, schedule=adam.schedule,
                   warmup_fraction=None if adam.schedule == "constant" else adam.warmup_fraction,
                   stopping={"rule": adam.stopping.rule, "threshold": adam.stopping.threshold, "patience": adam.stopping.patience},
                   retry={"enabled": adam.retry.enabled, "lr_factor": adam.retry.lr_factor, "iterations_factor": adam.retry.iterations_factor})
    return out


def image_files(item, arm: str, result: dict, *, fingerprint: str, synthetic: list[str], model_info: dict,
                settings=None) -> tuple[dict, dict]:
    """(payload, record) of one image from a job's result (see the module docstring);
    ``settings``: the job's ArmSettings (the record's ``settings``, :func:`arm_record`)."""
    record = {
        "image_id": item.image_id,
        "split": item.split,
        "arm": arm,
        "status": result["status"],
        "reason": result.get("reason"),
        "failure_kind": result.get("failure_kind", "optimization") if result["status"] != "ok" else None,
        "fingerprint": fingerprint,
        "reference_sha256": (item.record or {}).get("sha256"),
        "settings": None if settings is None else arm_record(settings),
        "synthetic": synthetic,
        "model": model_info,
        "finished_at": time.time(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    payload = {"image_id": item.image_id, "split": item.split, "arm": arm, "status": result["status"]}
    if result["status"] == "ok" or "track" in result:
        track = result["track"]  # an optimizer.ImageTrack
        payload.update(  # clones: a view would save the whole batch's storage into this file
            z0=track.z0.detach().cpu().clone(),
            z=track.best_z.detach().cpu().clone(),
            loss_history=track.history,
            decoded=torch.from_numpy(result["decoded"]).clone(),
            region=list(item.region.__dict__.values()),
        )
        if track.residual is not None:  # method gradient_free
            payload["residual_history"] = track.residual
        record.update(
            initial=result["initial_metrics"],
            final=result["final_metrics"],
            iterations=track.steps,
            converged_at=track.converged_at,
            stop_reason=track.stop_reason,
            initial_loss=track.history[0] if track.history else None,
            best_loss=track.best_loss if track.history and track.returned == "best" else None,
            final_loss=track.final_loss,
            returned_latent=track.returned,
            retry=track.retry,
            time_s=track.time_s + result["encode_s"],
            optimization_time_s=track.time_s,
            peak_memory_mb=result["peak_memory_mb"],
            device=result["device"],
            batch_size=result["batch_size"],
            batch=result.get("batch"),
            size=list(item.reference.shape[:2]),
            counted_work=result.get("work"),
            tflop=(result.get("work") or {}).get("tflop"),
        )
        if track.residual is not None:  # method gradient_free: mean (E(D(z_t)) - z_0)**2, first and last step
            record.update(initial_residual=track.residual[0], last_residual=track.residual[-1])
    else:
        record["traceback"] = result.get("traceback")
    return payload, record


def write_image_files(pt_path: Path, json_path: Path, payload: dict, record: dict) -> dict:
    """Write the .pt, then the record with the .pt's checksum; return the record."""
    with atomic_path(pt_path) as tmp:
        torch.save(payload, tmp)
    record["pt_sha256"] = sha256_file(pt_path)
    write_json(json_path, record)
    return record


def restorable(pt_path: Path, json_path: Path, fingerprint: str, reference_sha256: str) -> dict | None:
    """The record of an image already finished in place that this job would compute again, or None.

    An optimization job rerun for a chunk (its manifest missing: a stopped job, a damaged or
    deleted file of the chunk, a new chunking; latentopt.workflow.chunks) keeps each image whose
    record is as its writer wrote it, finished ('ok'), has this job's fingerprint (settings, model,
    library) and was computed from this reference, and whose .pt matches the record: restored, never
    recomputed. Anything else is computed again."""
    try:
        rec = recorded(json_path)
        if rec is None or not pt_path.is_file():
            return None
        if not rec.same_stat(json_path) and sha256_file(json_path) != rec.sha256:
            return None
        record = read_json(json_path)
        if not (isinstance(record, dict) and record.get("status") == "ok" and record.get("fingerprint") == fingerprint
                and record.get("reference_sha256") == reference_sha256):
            return None
        return record if sha256_file(pt_path) == record.get("pt_sha256") else None
    except (OSError, ValueError):
        return None
