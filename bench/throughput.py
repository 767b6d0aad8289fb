"""Throughput section: image-iterations/s of the pipeline's Adam loop per configuration, with
MFU, memory and quality deltas vs fp32; per-loss throughput at the fastest fp32-matching config."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .common import REPO, _sync, log, partial_path, write_json
from .configs import Config
from .flops import count_flops, diffusers_checkpointing_check, gpu_peak, saved_activation_bytes, sd_vae_reference_flops
from .models import choose_model, load_images, make_variant
from .quality import quality_deltas

def timed_optimize(decode, targets, z0, loss_fn, iterations, lr, step, device):
    """One optimize_latents call with a fixed number of iterations (stopping rule 'none') and the
    pipeline's decoder step ``step`` (latentopt.optimize.decoder_step.DecoderStep: precision, schedule,
    gradient scaling); returns (tracks, wall seconds, process CPU seconds)."""
    from latentopt.optimize.optimizer import optimize_latents
    from latentopt.workflow.settings import AdamSettings, StopRule

    settings = AdamSettings.of(iterations=iterations, lr=lr, stopping=StopRule.of("none"), checkpoint_interval=10**9)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    tracks = optimize_latents(decode, targets, z0, loss_fn, settings, precision=step.schedule(iterations),
                              grad_scaler=step.grad_scaler(device))
    _sync(device)
    return tracks, time.perf_counter() - t0, time.process_time() - c0


def measure_config(cfg: Config, base, targets_all, loss_fn, nets, ctx: dict) -> dict:
    import torch

    from latentopt.optimize.exact import decode_exact, encode_exact
    from latentopt.metrics.image_metrics import tensor_metrics

    device = ctx["device"]
    x = targets_all[: cfg.batch]
    model, decode, note = make_variant(base, cfg)
    row: dict[str, Any] = {"name": cfg.name, **dataclasses.asdict(cfg), "checkpointing_method": note}
    z0 = encode_exact(model, x)
    if not cfg.compile:
        saved = saved_activation_bytes(decode, z0, x, loss_fn, cfg.precision, device, model.parameters())
        row["saved_activations_per_image_mb"] = saved / cfg.batch / 2**20
    else:
        row["saved_activations_per_image_mb"] = None
    step = cfg.step()
    warm = time.perf_counter()
    if cfg.compile:  # compiled for every precision of the schedule, as a job does before its Adam loop
        step.warm_up(model, z0, ctx["iterations"])
    if ctx["warmup"]:
        timed_optimize(decode, x, z0, loss_fn, ctx["warmup"], ctx["lr"], step, device)
    row["warmup_s"] = time.perf_counter() - warm  # includes the compilation (cold or from the cache)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    tracks, wall, cpu = timed_optimize(decode, x, z0, loss_fn, ctx["iterations"], ctx["lr"], step, device)
    if device.type == "cuda":
        peak_mem = torch.cuda.max_memory_allocated(device)
        row["peak_memory_mb"] = peak_mem / 2**20
        row["peak_memory_per_image_mb"] = (peak_mem - before) / cfg.batch / 2**20
    else:
        row["peak_memory_mb"] = row["peak_memory_per_image_mb"] = None
    steps = cfg.batch * ctx["iterations"]
    row.update(image_iterations=steps, wall_s=wall, cpu_s=cpu,
               image_iterations_per_s=steps / wall, image_iterations_per_cpu_s=steps / cpu if cpu > 0 else None)
    flops = ctx["flops_per_image"]
    model_flops = cfg.batch * (ctx["iterations"] * flops["step"] + flops["forward"])
    row["achieved_flops_per_s"] = model_flops / wall
    peak_flops = ctx["peak_flops"]
    row["mfu"] = row["achieved_flops_per_s"] / peak_flops[cfg.precision] if peak_flops else None
    row["mfu_vs_bf16_peak"] = row["achieved_flops_per_s"] / peak_flops["bf16"] if peak_flops else None
    # final quality, decoded as the pipeline's job does (exact fp32, whatever the run precision)
    best = torch.stack([t.best_z for t in tracks]).to(device)
    initial, final = decode_exact(model, z0), decode_exact(model, best)
    m0 = tensor_metrics(initial, x.float(), nets)
    m1 = tensor_metrics(final, x.float(), nets)
    lp = next((k for k in m1 if k.startswith("lpips_")), None)
    row["per_image"] = {
        "psnr_initial": m0["psnr"].cpu().tolist(),
        "psnr": m1["psnr"].cpu().tolist(),
        "ssim": m1["ssim"].cpu().tolist(),
        "lpips": m1[lp].cpu().tolist() if lp else None,
    }
    del model, decode, tracks, best
    if cfg.compile:
        from latentopt.optimize.decoder_step import clear_compiled

        clear_compiled()  # the compiled decoder holds this config's copy of the model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row



def experiment_losses() -> dict:
    """The three arms of the seed experiment (repo config.yaml, validated: the schema's defaults
    for what it leaves out): loss spec and iterations."""
    from latentopt.workflow.config import load_config

    cfg = load_config()
    return {arm: {"loss": spec["loss"], "iterations": int(spec["iterations"]), "lr": float(spec["lr"])}
            for arm, spec in cfg["losses"].items()}


def _loss_for_bench(spec: dict, device) -> tuple[Any, dict, str | None]:
    """build_loss; LPIPS falls back to a random trunk (same FLOPs) when the trunk weights are absent."""
    from latentopt.metrics.lpips_network import lpips_weight_files
    from latentopt.optimize.losses import build_loss

    spec = dict(spec)
    note = None
    if spec.get("name") == "lpips" and not spec.get("random_trunk"):
        if not all(f.exists() for f in lpips_weight_files(spec.get("net", "alex"), False)):
            spec["random_trunk"] = True
            note = "LPIPS trunk weights absent: random trunk (same FLOPs, uncalibrated values)"
    return build_loss(spec, device=device), spec, note


def run_throughput(args, mode: dict, device, result: dict) -> None:
    import numpy as np
    import torch

    from latentopt.models.autoencoders import load_autoencoder
    from latentopt.optimize.exact import encode_exact
    from latentopt.metrics.lpips_network import lpips_network, lpips_weight_files

    # the pipeline leaves cuDNN autotuning off (PyTorch's default): every new batch shape (the batch
    # shrinks as images stop) would be autotuned again: 21-91 s per new shape on an H100
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    height, width = args.size or (mode["size_cuda"] if device.type == "cuda" else mode["size_cpu"])
    model_label, spec = choose_model(args.model, device.type)
    batches = args.batch_sizes or mode["batches"]
    configs = [Config(b) for b in batches]
    if args.configs:
        configs = list(args.configs)
    elif args.batch_sizes is None:
        configs += [Config(b, p, cl, comp, ck) for b, p, cl, comp, ck in mode["extra"]]
    if args.precisions:
        configs = [c for c in configs if c.precision in args.precisions or (c.precision == "fp32" and c.batch == 1)]
    if args.compile and not any(c.compile for c in configs):
        b = max(batches)
        configs.append(Config(b, "bf16" if device.type == "cuda" else "fp32", device.type == "cuda", True, False))
    if args.no_compile:
        configs = [c for c in configs if not c.compile]
    skipped = []
    kept = []
    for c in configs:
        if c.precision == "tf32" and device.type != "cuda":
            skipped.append({"name": c.name, "reason": "TF32 only changes CUDA matmul/cuDNN math; on CPU it is fp32"})
        else:
            kept.append(c)
    configs = kept
    if device.type == "cpu" and not any(c.compile for c in configs) and not args.compile:
        skipped.append({"name": "compile", "reason": "torch.compile not run on CPU by default (inductor "
                        "compile time exceeds the CI budget); --compile runs it"})
    if not any(c.batch == 1 and c.precision == "fp32" and not (c.channels_last or c.compile or c.checkpointing) for c in configs):
        configs.insert(0, Config(1))
    q = max(c.batch for c in configs)
    reference_cfg = Config(q)
    names = [c.name for c in configs]
    if reference_cfg.name not in names:
        configs.append(reference_cfg)

    images_u8, img_info = load_images(q, height, width, args.images)
    targets = torch.from_numpy(images_u8.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous().to(device)
    arms = experiment_losses()
    first_arm = next(iter(arms))
    loss_fn, loss_spec, loss_note = _loss_for_bench(arms[first_arm]["loss"], device)
    lpips_random = not all(f.exists() for f in lpips_weight_files("alex", False))
    nets = {"alex": lpips_network("alex", random_trunk=lpips_random, device=device)}

    t0 = time.perf_counter()
    base = load_autoencoder(spec, device=device)
    load_s = time.perf_counter() - t0
    # FLOPs per image, counted for this model and size (batch 1, plain fp32 decode = model FLOPs)
    z1 = encode_exact(base, targets[:1])
    flops = count_flops(base.decode, z1, targets[:1], loss_fn, "fp32", device)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak_key, peak = gpu_peak(gpu_name)
    lr = arms[first_arm]["lr"]
    ctx = {"device": device, "iterations": args.iterations or mode["iterations"],
           "warmup": mode["warmup"] if args.warmup is None else args.warmup, "lr": lr,
           "flops_per_image": flops, "peak_flops": peak}
    thresholds = {"psnr_db": args.max_dpsnr, "ssim": args.max_dssim, "lpips": args.max_dlpips}
    result["setup"] = {
        "model": {"label": model_label, "spec": spec, "load_s": load_s,
                  "parameters": sum(p.numel() for p in base.parameters())},
        "images": {**img_info, "n": q, "height": height, "width": width},
        "loss": {"arm": first_arm, "spec": loss_spec, "note": loss_note, "lr": lr},
        "iterations": ctx["iterations"], "warmup_iterations": ctx["warmup"],
        "stopping": "none (fixed iterations; the pipeline's per-image stopping only shortens runs)",
        "quality_metrics": {"lpips_net": "alex", "lpips_random_trunk": lpips_random,
                            "decode": "best latent decoded in exact fp32 (latentopt.optimize.exact.decode_exact), as the pipeline publishes it"},
        "quality_thresholds": thresholds,
    }
    result["flops"] = {
        "per_image_iteration": flops["step"], "final_evaluation_per_image": flops["forward"],
        "method": "torch.utils.flop_counter.FlopCounterMode, batch 1, fp32 decode + loss + backward "
                  "to the latent (weights frozen), i.e. model FLOPs without checkpoint recomputation",
    }
    try:
        result["flops"]["sd_vae_reference_480x320"] = sd_vae_reference_flops(320, 480)
    except Exception as exc:  # noqa: BLE001 - informative only
        result["flops"]["sd_vae_reference_480x320"] = {"error": repr(exc)}
    result["peak_flops"] = ({"gpu": gpu_name, "table_key": peak_key, **peak} if peak else
                            {"gpu": gpu_name, "note": "no peak table entry (CPU or unlisted GPU): MFU not reported"})

    try:
        result["checkpointing_check"] = diffusers_checkpointing_check()
    except Exception as exc:  # noqa: BLE001 - informative only
        result["checkpointing_check"] = {"error": repr(exc)}

    rows = []
    for cfg in configs:
        log(f"throughput: {cfg.name} ({cfg.batch} x {ctx['iterations']} iterations at {height}x{width})")
        try:
            rows.append(measure_config(cfg, base, targets, loss_fn, nets, ctx))
        except Exception as exc:  # noqa: BLE001 - e.g. OOM or compile failure: report, go on
            if device.type == "cuda":
                torch.cuda.empty_cache()
            skipped.append({"name": cfg.name, "reason": f"failed: {type(exc).__name__}: {str(exc)[:300]}"})
            log(f"  {cfg.name} failed: {exc!r}")
        # rows so far, so that a run stopped at a time limit still leaves its measurements
        write_json({**result, "throughput_partial": {"configs": rows, "skipped": skipped}}, partial_path(args.out))
    by_name = {r["name"]: r for r in rows}
    baseline = by_name.get(Config(1).name)
    ref = by_name.get(reference_cfg.name)
    if ref is None:  # e.g. the largest fp32 batch ran out of memory: the largest fp32 batch that ran
        fp32 = [r for r in rows if r["precision"] == "fp32" and not (r["channels_last"] or r["compile"] or r["checkpointing"])]
        ref = max(fp32, key=lambda r: r["batch"]) if fp32 else None
    for r in rows:
        r["ratio_to_baseline"] = (r["image_iterations_per_s"] / baseline["image_iterations_per_s"]) if baseline else None
        r["cpu_time_ratio_to_baseline"] = (
            r["image_iterations_per_cpu_s"] / baseline["image_iterations_per_cpu_s"]
            if baseline and r["image_iterations_per_cpu_s"] and baseline["image_iterations_per_cpu_s"] else None)
        r["quality"] = quality_deltas(r, ref, thresholds) if ref else None
    if baseline:
        baseline["ratio_to_baseline"] = 1.0
        if baseline["cpu_time_ratio_to_baseline"] is not None:
            baseline["cpu_time_ratio_to_baseline"] = 1.0
    # checkpointing: does it do anything with frozen weights?
    ckpt_notes = []
    for r in rows:
        if r["checkpointing"]:
            twin = next((o for o in rows if o["batch"] == r["batch"] and o["precision"] == r["precision"]
                         and o["channels_last"] == r["channels_last"] and not o["checkpointing"]
                         and not o["compile"]), None)
            if twin and r["saved_activations_per_image_mb"] is not None and twin["saved_activations_per_image_mb"]:
                frac = r["saved_activations_per_image_mb"] / twin["saved_activations_per_image_mb"]
                r["checkpointing_effect"] = {
                    "saved_activations_fraction": frac,
                    "peak_memory_fraction": (r["peak_memory_per_image_mb"] / twin["peak_memory_per_image_mb"]
                                             if r["peak_memory_per_image_mb"] and twin["peak_memory_per_image_mb"] else None),
                    "throughput_fraction": r["image_iterations_per_s"] / twin["image_iterations_per_s"],
                    "effective": frac < 0.9,
                }
                ckpt_notes.append(f"{r['name']}: saved activations x{frac:.2f}, throughput "
                                  f"x{r['image_iterations_per_s'] / twin['image_iterations_per_s']:.2f} vs {twin['name']}")
    # precision defaults: a reduced precision is a default only if every measured config matches fp32
    verdicts = {}
    groups = {p: [r for r in rows if r["precision"] == p and not r["final_steps"]] for p in ("tf32", "bf16", "fp16")}
    groups["compile"] = [r for r in rows if r["compile"]]
    groups["precision schedule"] = [r for r in rows if r["final_steps"]]
    for prec, group in groups.items():
        mine = [r for r in group if r["quality"]]
        if mine:
            verdicts[prec] = {
                "all_match_fp32": all(r["quality"]["matches_fp32"] for r in mine),
                "worst_delta_psnr_mean": max((abs(r["quality"]["delta_psnr_mean"]) for r in mine)),
                "best_ratio_to_baseline": max(r["ratio_to_baseline"] or 0 for r in mine),
            }
    eligible = [r for r in rows if r["quality"] and (r["precision"] == "fp32" or r["quality"]["matches_fp32"])]
    recommended = max(eligible, key=lambda r: r["image_iterations_per_s"]) if eligible else None
    result["throughput"] = {
        "baseline": baseline["name"] if baseline else None,
        "quality_reference": ref["name"] if ref else None,
        "configs": rows,
        "skipped": skipped,
        "checkpointing": ckpt_notes,
        "precision_verdicts": verdicts,
        "recommended": ({"name": recommended["name"], "ratio_to_baseline": recommended["ratio_to_baseline"],
                         "image_iterations_per_s": recommended["image_iterations_per_s"]} if recommended else None),
    }

    # per-loss throughput at the recommended configuration (for the projection)
    per_loss = []
    if recommended:
        cfg = Config(recommended["batch"], recommended["precision"], recommended["channels_last"],
                     recommended["compile"], recommended["checkpointing"], recommended["final_steps"],
                     recommended["compile_mode"])
        x = targets[: cfg.batch]
        model, decode, _ = make_variant(base, cfg)
        z0 = encode_exact(model, x)
        n_it = args.loss_iterations or mode["loss_iterations"]
        for arm, a in arms.items():
            fn, used_spec, note = _loss_for_bench(a["loss"], device)
            log(f"per-loss throughput: {arm} at {cfg.name}")
            timed_optimize(decode, x, z0, fn, 1, a["lr"], cfg.step(), device)
            _, wall, _ = timed_optimize(decode, x, z0, fn, n_it, a["lr"], cfg.step(), device)
            per_loss.append({"arm": arm, "loss": used_spec, "note": note, "config": cfg.name,
                             "experiment_iterations": a["iterations"], "measured_iterations": n_it,
                             "image_iterations_per_s": cfg.batch * n_it / wall})
        del model, decode
    result["per_loss"] = per_loss

