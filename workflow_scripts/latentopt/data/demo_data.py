"""The embedded demo data set: small crops of the real photos that scikit-image ships.

``python -m latentopt.data.demo_data demo/data`` writes a BSDS500-like tree (train/val/test, mixed
landscape and portrait sizes that are not multiples of 8, one grayscale photo, a stray Thumbs.db)
so the pipeline runs end to end with nothing downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

# (split, name, skimage.data function, (top, left), (height, width))
DEMO_IMAGES = [
    ("train", "astronaut", "astronaut", (40, 140), (65, 97)),
    ("train", "coffee", "coffee", (100, 200), (65, 97)),
    ("train", "chelsea", "chelsea", (60, 100), (97, 65)),
    ("val", "rocket", "rocket", (150, 250), (97, 65)),
    ("val", "camera", "camera", (60, 180), (65, 97)),
    ("test", "hubble", "hubble_deep_field", (200, 200), (65, 97)),
    ("test", "ihc", "immunohistochemistry", (100, 100), (65, 97)),
    ("test", "astronaut_face", "astronaut", (30, 160), (97, 65)),
]


def write_demo_data(root: str | Path) -> list[Path]:
    root = Path(root)
    written = []
    for split, name, func, (top, left), (h, w) in DEMO_IMAGES:
        img = np.asarray(getattr(skimage.data, func)())
        crop = img[top : top + h, left : left + w]
        path = root / split / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(path, quality=95)
        written.append(path)
    (root / "test" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    return written


if __name__ == "__main__":
    paths = write_demo_data(sys.argv[1] if len(sys.argv) > 1 else "demo/data")
    print(f"wrote {len(paths)} demo images")
