"""gradient_free under dec-inv's published schedule (dec_inv: cosine warm-up capped at 100 steps, the
rate held from 80 % of it) against the uncapped, unheld cosine_warmup, on TAEF2 and real BSDS500
crops: PSNR of the best latent (psnr as the monitored loss, no early stop), per lr and iterations.

    LATENTOPT_SHARED=/work/shared PYTHONPATH=workflow_scripts:. python -m bench.gradient_free_schedule \
        [--crops 4] [--size 96 144] [--iterations 30 120] [--lr 0.01 0.03 0.1]

Prints one JSON line per (iterations, lr): mean PSNR gain over z0 under each schedule and the
per-crop difference dec_inv - cosine_warmup (dB).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from latentopt.data.images import read_rgb
from latentopt.models.autoencoders import load_autoencoder
from latentopt.optimize.losses import build_loss
from latentopt.optimize.optimizer import optimize_latents
from latentopt.workflow.settings import AdamSettings, StopRule

SHARED = Path(os.environ.get("LATENTOPT_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def crops(n: int, h: int, w: int) -> torch.Tensor:
    """Centre h x w crops of the first n landscape BSDS500 test photos, [n,3,h,w] in [0,1]."""
    out = []
    for path in sorted((SHARED / "data" / "BSR" / "BSDS500" / "data" / "images" / "test").glob("*.jpg")):
        img = read_rgb(path)
        if img.shape[0] > img.shape[1]:
            continue
        top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        out.append(torch.from_numpy(img[top : top + h, left : left + w].astype(np.float32) / 255).permute(2, 0, 1))
        if len(out) == n:
            break
    return torch.stack(out)


def psnr(model, z, x) -> np.ndarray:
    with torch.no_grad():
        return (-10 * torch.log10(((model.decode(z) - x) ** 2).flatten(1).mean(1))).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=[96, 144])
    ap.add_argument("--iterations", type=int, nargs="+", default=[30, 120])
    ap.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    args = ap.parse_args()
    torch.set_num_threads(1)
    taef2 = SHARED / "models" / "taef2"
    model = load_autoencoder({"kind": "taesd", "encoder": str(taef2 / "taef2_encoder.pth"),
                              "decoder": str(taef2 / "taef2_decoder.pth"), "variant": "taef2"})
    x = crops(args.crops, *args.size)
    with torch.no_grad():
        z0 = model.encode(x)
    p0 = psnr(model, z0, x)
    for n in args.iterations:
        for lr in args.lr:
            gains = {}
            for schedule in ("cosine_warmup", "dec_inv"):
                settings = AdamSettings.of(method="gradient_free", schedule=schedule, iterations=n, lr=lr, stopping=StopRule.of("none"))
                tracks = optimize_latents(model.decode, x, z0, build_loss({"name": "psnr"}), settings, encode=model.encode)
                gains[schedule] = psnr(model, torch.stack([t.best_z for t in tracks]), x) - p0
            diff = gains["dec_inv"] - gains["cosine_warmup"]
            print(json.dumps({"iterations": n, "lr": lr, "crops": int(x.shape[0]), "size": args.size,
                              "gain_cosine_warmup_db": round(float(gains["cosine_warmup"].mean()), 3),
                              "gain_dec_inv_db": round(float(gains["dec_inv"].mean()), 3),
                              "dec_inv_minus_cosine_db": [round(float(d), 3) for d in diff]}), flush=True)


if __name__ == "__main__":
    main()
