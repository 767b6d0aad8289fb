"""The benchmark's printed tables."""

from __future__ import annotations

def _fmt(v, spec=".2f", none="-"):
    if v is None:
        return none
    if isinstance(v, bool):
        return "yes" if v else "NO"
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def format_tables(result: dict) -> str:
    lines = []
    m = result["machine"]
    lines.append(f"Machine: {m['description']} | device {m['device']} | torch {m['torch']} | load avg "
                 f"{m.get('loadavg_start')} -> {m.get('loadavg_end')}")
    lines.append(f"GPU figures: {result['gpu_figures']}")
    load = m.get("loadavg_start") or [0.0]
    if m.get("cpu_count") and max(load[0], (m.get("loadavg_end") or [0.0])[0]) > 0.75 * m["cpu_count"]:
        lines.append(f"WARNING: the machine was busy (load average {load[0]} on {m['cpu_count']} cores): "
                     "absolute times are inflated and ratios noisier than on an idle machine")
    setup = result.get("setup")
    if setup:
        lines.append(f"Model: {setup['model']['label']}; images: {setup['images']['n']} x "
                     f"{setup['images']['height']}x{setup['images']['width']} from {setup['images']['source']}; "
                     f"loss {setup['loss']['arm']}; {setup['iterations']} iterations (+{setup['warmup_iterations']} warm-up)")
        fl = result.get("flops", {})
        ref = fl.get("sd_vae_reference_480x320", {})
        lines.append(f"FLOPs per image-iteration (counted): {fl.get('per_image_iteration', 0) / 1e9:.3f} GFLOP; "
                     f"SD-VAE decoder at 480x320 (counted on meta): forward {ref.get('decoder_forward', 0) / 1e12:.3f} TFLOP, "
                     f"fwd+bwd {ref.get('decoder_forward_backward_frozen', 0) / 1e12:.3f} TFLOP")
    tp = result.get("throughput")
    if tp:
        head = ["config", "img-it/s", "ratio", "cpu-ratio", "act MB/img", "peak MB/img", "MFU", "PSNR", "dPSNR",
                "dSSIM", "dLPIPS", "=fp32"]
        rows = []
        for r in tp["configs"]:
            q = r.get("quality") or {}
            rows.append([r["name"], _fmt(r["image_iterations_per_s"], ".3f"), _fmt(r["ratio_to_baseline"], ".3f"),
                         _fmt(r.get("cpu_time_ratio_to_baseline"), ".3f"),
                         _fmt(r.get("saved_activations_per_image_mb"), ".1f"),
                         _fmt(r.get("peak_memory_per_image_mb"), ".1f"), _fmt(r.get("mfu"), ".3f"),
                         _fmt(q.get("psnr_final_mean"), ".2f"), _fmt(q.get("delta_psnr_mean"), "+.3f"),
                         _fmt(q.get("delta_ssim_mean"), "+.4f"), _fmt(q.get("delta_lpips_mean"), "+.4f"),
                         _fmt(q.get("matches_fp32"))])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines.append("")
        lines.append("Throughput (ratio = img-it/s over the fp32 b1 baseline; deltas vs fp32 on the same images)")
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for row in rows:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        for s in tp["skipped"]:
            lines.append(f"  skipped {s['name']}: {s['reason']}")
        for note in tp["checkpointing"]:
            lines.append(f"  checkpointing {note}")
        cc = result.get("checkpointing_check") or {}
        if "saved_fraction" in cc:
            lines.append(f"  diffusers enable_gradient_checkpointing() on the frozen SD-VAE decoder ({cc['size']}, eval): "
                         f"saved activations x{cc['saved_fraction']:.2f}, latent-gradient max diff "
                         f"{cc['latent_grad_max_abs_diff']:.1e} -> {'works' if cc['effective'] else 'NO EFFECT'}")
        for prec, v in tp["precision_verdicts"].items():
            lines.append(f"  {prec}: matches fp32 in every config: {_fmt(v['all_match_fp32'])} "
                         f"(worst |mean dPSNR| {v['worst_delta_psnr_mean']:.3f} dB; best ratio {v['best_ratio_to_baseline']:.2f})")
        if tp.get("recommended"):
            lines.append(f"  fastest config that matches fp32: {tp['recommended']['name']} "
                         f"(x{tp['recommended']['ratio_to_baseline']:.2f})")
    if result.get("per_loss"):
        lines.append("")
        lines.append("Per-loss throughput at that config: " + "; ".join(
            f"{p['arm']} {p['image_iterations_per_s']:.3f} img-it/s" for p in result["per_loss"]))
    orch = result.get("orchestration")
    if orch:
        lines.append("")
        lines.append(f"Orchestration (snakemake --cores {orch['snakemake_cores']}; efficiency = sum optimization_time_s / wall)")
        head = ["data", "img/job", "jobs prep+opt", "wall s", "sum opt s", "efficiency", "overhead/opt job s",
                "load before"]
        rows = []
        for r in orch["runs"]:
            if r.get("error"):
                rows.append([r["data"], r["images_per_job"], "-", "-", "-", "FAILED", "-", "-"])
                continue
            rows.append([r["data"], r["images_per_job"], f"{r['n_prepare_jobs']}+{r['n_optimize_jobs']}",
                         _fmt(r["wall_s"], ".1f"), _fmt(r["optimization_time_sum_s"], ".1f"),
                         _fmt(r["efficiency"], ".3f"), _fmt(r["overhead_per_optimize_job_s"], ".1f"),
                         _fmt((r.get("loadavg_before") or [None])[0], ".1f")])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for row in rows:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        if any(sm["runs"] > 1 for sm in orch.get("summary", [])):
            lines.append("  medians: " + "; ".join(
                f"{sm['data']} ipj {sm['images_per_job']}: efficiency {sm['efficiency_median']:.3f} "
                f"(wall {sm['wall_s_median']:.0f} s, {sm['runs']} runs)" for sm in orch["summary"]))
        for name, mdl in orch["overhead_model"].items():
            lines.append(f"  {name}: job start-up {mdl['optimize_job_startup_s']:.1f} s, per image in job "
                         f"{mdl['per_image_in_job_extra_s']:.2f} s, driver {mdl['driver_s']:.1f} s, "
                         f"per prepare job {mdl['per_prepare_job_s']:.1f} s")
    pj = result.get("projection")
    if pj and pj.get("total_s") is not None:
        lines.append("")
        oh = pj.get("orchestration_overhead_s")
        lines.append(f"Projection ({pj['n_images']} images, losses {', '.join(pj.get('per_loss', {}))}, "
                     f"images_per_job {pj['images_per_job']}): optimization {pj['optimization_s'] / 60:.1f} min + "
                     f"orchestration {_fmt(oh / 60 if oh is not None else None, '.1f')} min = {pj['total_min']:.1f} min "
                     f"(upper bound); meets <= 15 min on one H100: {_fmt(pj['meets_15_min_on_one_h100'], none='not claimed')}")
        lines.append(f"  claim: {pj['claim']}")
    return "\n".join(lines)

