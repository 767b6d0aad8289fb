"""How far batched optimization drifts from one-by-one optimization in floating point, and how far
the pipeline's best-latent rule is from the original's (stopping.rule reference), on TAEF2 + real
BSDS500 crops (needs ../shared). Prints per-image PSNR differences; no pass/fail.

  .venv/bin/python bench/drills/batching_delta.py --images 8 --crop 64 96 --iterations 50

Summed loss + per-element Adam make a batch mathematically identical to one-by-one runs; a batched
decoder forward rounds differently from single-image forwards, and Adam's normalised steps carry
that rounding on. Measured values go in docs/configuration.md (run.batch_size)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow_scripts"))

from latentopt.models.autoencoders import load_autoencoder  # noqa: E402
from latentopt.data.images import read_rgb  # noqa: E402
from latentopt.workflow.sources import discover_splits  # noqa: E402
from latentopt.optimize.exact import decode_exact, encode_exact  # noqa: E402
from latentopt.optimize.losses import build_loss  # noqa: E402
from latentopt.metrics.image_metrics import tensor_metrics  # noqa: E402
from latentopt.optimize.optimizer import optimize_latents  # noqa: E402
from latentopt.workflow.settings import AdamSettings, StopRule  # noqa: E402


def crops(root: Path, n: int, h: int, w: int) -> torch.Tensor:
    entries = discover_splits(root, ["test"], single_split_name="all", limit_per_split=n)["test"]
    out = []
    for e in entries:
        img = read_rgb(e.path)
        y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        out.append(img[y : y + h, x : x + w])
    return torch.from_numpy(np.stack(out).astype(np.float32) / 255).permute(0, 3, 1, 2).contiguous()


def final_psnr(model, targets, tracks) -> np.ndarray:
    decoded = decode_exact(model, torch.stack([t.best_z for t in tracks]))
    return tensor_metrics(decoded, targets)["psnr"].numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--crop", type=int, nargs=2, default=[64, 96])
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    torch.set_num_threads(1)
    taef2 = args.shared / "models" / "taef2"
    model = load_autoencoder({"kind": "taesd", "encoder": str(taef2 / "taef2_encoder.pth"),
                              "decoder": str(taef2 / "taef2_decoder.pth"), "variant": "taef2"})
    targets = crops(args.shared / "data" / "BSR", args.images, *args.crop)
    z0 = encode_exact(model, targets)
    loss = build_loss({"name": "psnr"})
    print(f"TAEF2, {len(targets)} BSDS500 test crops {args.crop[0]}x{args.crop[1]}, psnr loss, lr {args.lr}, "
          f"{args.iterations} iterations, CPU fp32, torch {torch.__version__}")

    none = AdamSettings.of(iterations=args.iterations, lr=args.lr, stopping=StopRule.of("none"))
    batched = final_psnr(model, targets, optimize_latents(model.decode, targets, z0, loss, none))
    solo = np.concatenate([final_psnr(model, targets[i : i + 1], optimize_latents(model.decode, targets[i : i + 1], z0[i : i + 1], loss, none))
                           for i in range(len(targets))])
    d = batched - solo
    print(f"batch {len(targets)} vs one by one, final PSNR (dB): per image {np.round(d, 4).tolist()}")
    print(f"  max |d| {np.abs(d).max():.4f} dB, mean d {d.mean():+.4f} dB, images identical: {int((d == 0).sum())}/{len(d)}")

    seed = dict(iterations=args.iterations, lr=args.lr)
    best, last = [], []
    for i in range(len(targets)):
        t, z = targets[i : i + 1], z0[i : i + 1]
        best.append(final_psnr(model, t, optimize_latents(model.decode, t, z, loss, AdamSettings.of(**seed, stopping=StopRule("absolute", 1e-5, 1))))[0])
        last.append(final_psnr(model, t, optimize_latents(model.decode, t, z, loss, AdamSettings.of(**seed, stopping=StopRule("reference", 1e-5, 1))))[0])
    d = np.array(best) - np.array(last)
    print(f"rule absolute (patience 1, best latent) minus rule reference (original), threshold 1e-5, batch 1: "
          f"per image {np.round(d, 4).tolist()} dB; mean {d.mean():+.4f} dB")


if __name__ == "__main__":
    main()
