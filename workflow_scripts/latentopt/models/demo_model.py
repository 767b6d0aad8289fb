"""The demo's autoencoder: a tiny convolutional autoencoder the project trains itself, on the CPU.

Pretrained autoencoders cannot be downloaded on a fresh machine without the network, and a random
one reconstructs coloured noise. So the demo trains this one first (the ``train_demo_model`` rule,
or ``python -m latentopt.models.demo_model <folder>``): random crops of the scikit-image photos that the
demo images are cut from (:data:`latentopt.data.demo_data.DEMO_IMAGES`, so the demo's own images are
inside the training photos: a demo, not a held-out evaluation), seeded and deterministic on the
CPU. It writes ``demo_autoencoder.pt`` (state dict + architecture + training summary) and
``demo_autoencoder.json`` (the training summary: settings, seed, number of crops, train time,
final training PSNR, library versions).

Architecture (:func:`build_network`): RGB in [0, 1] -> 4-channel latent at 1/8 resolution -> a
decoder whose last conv is linear; ``decode`` clamps to [0, 1] (the
:class:`latentopt.models.autoencoders.Autoencoder` convention ``demo``), so the decoder is not saturated
by a sigmoid and latent optimization has gradients to follow. Training loss: MSE plus a
small L1 term, plus a small latent L2 penalty. After training the latent is rescaled to unit
standard deviation over held-out crops, folded exactly into the encoder's last and the decoder's
first convolution (:func:`normalise_latent`): the demo's Adam learning rates (0.05-0.1 per latent
element and step) assume latents of about unit scale; the raw latent's std was ~0.2, at which the
first Adam steps overshot and the stopping rule ended 9 of 24 optimizations at iteration 5 with
no gain.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import skimage.data
import torch
from torch import nn

from latentopt.compute.devices import torch_threads
from latentopt.core.fileio import atomic_path, write_json
from latentopt.core.provenance import versions
from latentopt.data.demo_data import DEMO_IMAGES
from latentopt.workflow.demo_model_spec import FORMAT, SUMMARY_NAME, WEIGHTS_NAME, TrainSettings, describe

DOWNSAMPLE_FACTOR = 8


def build_network(latent_channels: int = 4, widths=(32, 48, 64)):
    """The untrained network: a module with ``encoder`` and ``decoder`` (nn.Sequential).

    Encoder: space-to-depth (2x2 -> 12 channels at 1/2), conv stages at 1/2, 1/4 and 1/8, a linear
    conv to ``latent_channels``. Decoder: convs at 1/8, nearest upsampling to 1/4 and 1/2, a linear
    conv to 12 channels and depth-to-space to full resolution. LeakyReLU(0.1) throughout (plain
    ReLU died within a few hundred steps in trials). No full-resolution convolution: ~56 MFLOP
    forward per 48x48 crop, so a thousand CPU training steps fit in about a minute.
    """
    w1, w2, w3 = (int(w) for w in widths)

    def conv(n_in, n_out, stride=1):
        return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1)

    def act():
        return nn.LeakyReLU(0.1)

    class DemoAutoencoderNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.latent_channels = int(latent_channels)
            self.encoder = nn.Sequential(
                nn.PixelUnshuffle(2), conv(12, w1), act(),
                conv(w1, w2, 2), act(), conv(w2, w2), act(),
                conv(w2, w3, 2), act(), conv(w3, w3), act(),
                conv(w3, latent_channels),
            )  # fmt: skip
            self.decoder = nn.Sequential(
                conv(latent_channels, w3), act(), conv(w3, w3), act(),
                nn.Upsample(scale_factor=2), conv(w3, w2), act(), conv(w2, w2), act(),
                nn.Upsample(scale_factor=2), conv(w2, w1), act(), conv(w1, w1), act(),
                conv(w1, 12), nn.PixelShuffle(2),
            )  # fmt: skip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.encoder(x))

    return DemoAutoencoderNet()


def training_photos() -> list[np.ndarray]:
    """The full scikit-image photos the demo images are cut from (uint8 HxWx3, each once)."""
    photos = []
    for func in dict.fromkeys(d[2] for d in DEMO_IMAGES):
        img = np.asarray(getattr(skimage.data, func)())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        photos.append(np.ascontiguousarray(img[:, :, :3]))
    return photos


def random_crops(photos: list[np.ndarray], rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` random ``size``x``size`` crops (uniform photo, position, horizontal flip), float32
    [n,3,size,size] in [0, 1]."""
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = photos[rng.integers(len(photos))]
        top = rng.integers(img.shape[0] - size + 1)
        left = rng.integers(img.shape[1] - size + 1)
        crop = img[top : top + size, left : left + size]
        if rng.integers(2):
            crop = crop[:, ::-1]
        out[i] = crop.transpose(2, 0, 1) / 255.0
    return out


def normalise_latent(net, x) -> float:
    """Rescale ``net``'s latent to unit std over the images ``x`` without changing what it
    reconstructs: encoder's last conv divided by s, decoder's first conv weights multiplied by s.
    Returns s (the std before)."""
    with torch.no_grad():
        scale = float(net.encoder(x).std())
        last, first = net.encoder[-1], net.decoder[0]
        last.weight /= scale
        last.bias /= scale
        first.weight *= scale
    return scale


def train(settings: TrainSettings = TrainSettings(), log=print):
    """Train the network; return ``(network, summary)``. Deterministic on the CPU for the same
    settings, thread count and library versions (deterministic algorithms, seeded crops)."""
    s = settings
    prev_det = torch.are_deterministic_algorithms_enabled()
    with torch_threads(s.threads):
        torch.use_deterministic_algorithms(True)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s.seed)
                net = build_network(s.latent_channels, s.widths)
            rng = np.random.default_rng(s.seed)
            photos = training_photos()
            opt = torch.optim.Adam(net.parameters(), lr=s.lr)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=s.steps, pct_start=0.05)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            history, window = [], []
            for step in range(1, s.steps + 1):
                x = torch.from_numpy(random_crops(photos, rng, s.batch_size, s.crop_size))
                z = net.encoder(x)
                y = net.decoder(z)
                mse = torch.mean((y - x) ** 2)
                loss = mse + s.l1_weight * torch.mean(torch.abs(y - x)) + s.latent_l2_weight * torch.mean(z**2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():  # PSNR of the clamped output, as decode() publishes it
                    window.append(float(torch.mean((y.clamp(0, 1) - x) ** 2)))
                if step % 100 == 0 or step == s.steps:  # the last window is the "final training PSNR"
                    psnr = float(-10 * np.log10(np.mean(window)))
                    history.append({"step": step, "psnr_db": round(psnr, 3)})
                    log(f"step {step}/{s.steps}: training PSNR {psnr:.2f} dB (mean of the last {len(window)} batches), "
                        f"{time.perf_counter() - wall0:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU")
                    window = []
            # held-out crops (another seed) to measure the latent scale on
            held_out = torch.from_numpy(random_crops(photos, np.random.default_rng(s.seed + 10_000), 256, s.crop_size))
            latent_scale = normalise_latent(net, held_out)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            torch.use_deterministic_algorithms(prev_det)
    net.eval().requires_grad_(False)
    settings_dict = asdict(s)
    settings_dict["widths"] = list(s.widths)
    summary = {
        "format": FORMAT,
        "description": describe(s.n_crops, wall),
        "settings": settings_dict,
        "seed": s.seed,
        "n_crops": s.n_crops,
        "training_photos": list(dict.fromkeys(d[2] for d in DEMO_IMAGES)),
        "train_time_s": round(wall, 2),
        "train_cpu_time_s": round(cpu, 2),
        "final_training_psnr_db": history[-1]["psnr_db"],
        "training_psnr_definition": "10*log10(1/MSE) of the clamped output, MSE averaged over the "
        "crops of the last (up to) 100 training batches, each scored before its update",
        "psnr_history": history,
        "latent_channels": s.latent_channels,
        "downsample_factor": DOWNSAMPLE_FACTOR,
        "latent_std_before_normalisation": round(latent_scale, 5),
        "loss": f"MSE + {s.l1_weight} * L1 + {s.latent_l2_weight} * mean(z^2); Adam, one-cycle lr",
        "versions": {**versions(), "torch_threads": s.threads},
    }
    return net, summary


def save(net, summary: dict, folder: str | Path) -> tuple[Path, Path]:
    """Write ``demo_autoencoder.pt`` then ``demo_autoencoder.json`` atomically into ``folder``."""
    folder = Path(folder)
    weights, summary_path = folder / WEIGHTS_NAME, folder / SUMMARY_NAME
    with atomic_path(weights) as tmp:
        torch.save({"format": FORMAT, "state_dict": net.state_dict(), "summary": summary}, tmp)
    write_json(summary_path, summary)
    return weights, summary_path


def load_network(path: str | Path):
    """``(network, summary)`` from a ``demo_autoencoder.pt``; ValueError if it is not one."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file (train it with python -m latentopt.models.demo_model)")
    summary = data["summary"]
    st = summary["settings"]
    net = build_network(st["latent_channels"], st["widths"])
    net.load_state_dict(data["state_dict"], strict=True)
    return net, summary


def main(argv=None) -> int:
    defaults = TrainSettings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default="results/demo/demo_model", help="output folder [%(default)s]")
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--steps", type=int, default=defaults.steps)
    ap.add_argument("--threads", type=int, default=defaults.threads)
    args = ap.parse_args(argv)
    settings = TrainSettings(seed=args.seed, steps=args.steps, threads=args.threads)
    net, summary = train(settings)
    weights, js = save(net, summary, args.folder)
    print(f"wrote {weights} and {js}: {summary['description']}; final training PSNR "
          f"{summary['final_training_psnr_db']:.2f} dB; {summary['train_cpu_time_s']:.0f} s CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
