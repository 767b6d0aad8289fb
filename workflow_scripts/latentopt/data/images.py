"""Finding, reading and preprocessing the images (PIL + numpy only; no torch at import).

Layouts accepted by :func:`discover_splits` for a data root:
  * the official BSDS500 tree ``BSR/BSDS500/data/images/{train,val,test}``, given the folder that
    contains ``BSR``, ``BSR`` itself or any folder below it down to ``images``;
  * a folder holding ``{train,val,test}`` (any requested split names);
  * any folder of images, taken as one split (``single_split_name``).
Non-image files (``Thumbs.db``, ``.DS_Store``, macOS ``._*`` metadata) are ignored. Every other entry
whose name ends like an image is an image of the plan, even when it cannot be opened (dangling or
looping symbolic link, no permission, a folder): its preparation records the failure, so nothing
vanishes silently. Image ids are file names without suffix, made safe for paths (:func:`image_id`).
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
OFFICIAL_SUBPATH = ("BSR", "BSDS500", "data", "images")


class ImageReadError(ValueError):
    """An image file could not be read or converted to RGB."""


@dataclass(frozen=True)
class ImageEntry:
    split: str
    image_id: str
    path: Path


# Characters of a file name that do not reach the results as they are: '{' and '}' (Snakemake reads
# them as wildcards in every path), '%' (the escape itself, so the mapping is reversible).
_ESCAPED = set("{}%")


def image_id(stem: str) -> str:
    """The id of an image in the results, from its file name without suffix: the name itself, with
    '{', '}', '%', control characters and bytes that are not UTF-8 percent-encoded (``a{1}.jpg`` ->
    ``a%7B1%7D``). Reversible with ``urllib.parse.unquote(id, errors="surrogateescape")``."""
    out = []
    for ch in stem:
        if "\udc80" <= ch <= "\udcff":  # an undecodable byte (os.fsdecode's surrogateescape)
            out.append(f"%{ord(ch) - 0xDC00:02X}")
        elif ch in _ESCAPED or unicodedata.category(ch).startswith("C"):
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append(ch)
    return "".join(out)


def _image_files(folder: Path) -> list[Path]:
    """Entries whose name ends like an image, readable or not (see the module docstring)."""
    return sorted(
        folder / name
        for name in os.listdir(folder)
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("._")
    )


def _images_dir(root: Path, splits: list[str]) -> Path:
    """The folder holding the split folders: root or one of the official tree's levels below it."""
    for depth in range(len(OFFICIAL_SUBPATH), -1, -1):
        candidate = root.joinpath(*OFFICIAL_SUBPATH[len(OFFICIAL_SUBPATH) - depth :])
        if any((candidate / s).is_dir() for s in splits):
            return candidate
    return root


def discover_splits(
    root: str | Path,
    splits: list[str],
    *,
    single_split_name: str = "all",
    limit_per_split: int | None = None,
) -> dict[str, list[ImageEntry]]:
    """Map split name -> sorted image entries. Raises FileNotFoundError with the reason."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: folder {root} does not exist")
    images_dir = _images_dir(root, splits)
    present = [s for s in splits if (images_dir / s).is_dir()]
    if present:
        missing = sorted(set(splits) - set(present))
        if missing:
            raise FileNotFoundError(
                f"data.root: {images_dir} has split folders {present} but not {missing} "
                f"(set data.splits to the splits you have)"
            )
        found = {s: _image_files(images_dir / s) for s in splits}
    else:
        found = {single_split_name: _image_files(images_dir)}
    result = {}
    for split, files in found.items():
        if not files:
            raise FileNotFoundError(f"data.root: no images in {images_dir / split if present else images_dir}")
        ids = [image_id(p.stem) for p in files]
        if len(set(ids)) != len(ids):
            dup = sorted({s for s in ids if ids.count(s) > 1})
            raise ValueError(f"data.root: split {split!r} has several files per image id: {dup[:5]}")
        entries = [ImageEntry(split, i, p) for i, p in zip(ids, files)]
        result[split] = entries[:limit_per_split] if limit_per_split else entries
    return result


def read_rgb(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """Read an image as uint8 HxWx3 RGB. Grayscale, palette, CMYK, 16-bit and alpha images are
    converted; unreadable or truncated files raise ImageReadError. ``data``: the file's bytes,
    already read (decoded instead of reading ``path`` again; ``path`` then only names it)."""
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(path if data is None else io.BytesIO(data)) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                peak = 65535.0 if arr.max() > 255 else 255.0
                gray = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            rgb = im.convert("RGB")
            return np.array(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL signals bad files with these
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


@dataclass(frozen=True)
class Region:
    """Where the original pixels sit inside the (possibly padded) model input."""

    top: int
    left: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def _center_crop(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = arr.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return arr[top : top + height, left : left + width]


def preprocess(
    arr: np.ndarray,
    mode: str = "center_crop",
    *,
    multiple: int = 8,
    size: int = 512,
    crop_box: tuple[int, int] | None = None,
) -> np.ndarray:
    """The evaluation reference: the image the optimization must reproduce (uint8 HxWx3).

    center_crop: centre crop to the largest multiple of ``multiple`` in each dimension.
    reflect_pad: unchanged (the padding is added by :func:`model_input`, outside this reference).
    resize_crop: resize the short side to ``size`` (bicubic) then centre crop size x size.
    ``crop_box`` = (height, width) is a centre crop applied first (small runs on CPU).
    """
    from PIL import Image

    if crop_box is not None:
        ch, cw = min(crop_box[0], arr.shape[0]), min(crop_box[1], arr.shape[1])
        arr = _center_crop(arr, ch, cw)
    h, w = arr.shape[:2]
    if mode == "center_crop":
        nh, nw = h - h % multiple, w - w % multiple
        if nh == 0 or nw == 0:
            raise ImageReadError(f"image {w}x{h} is smaller than one {multiple}-pixel block")
        return np.ascontiguousarray(_center_crop(arr, nh, nw))
    if mode == "reflect_pad":
        return np.ascontiguousarray(arr)
    if mode == "resize_crop":
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        resized = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.BICUBIC))
        return np.ascontiguousarray(_center_crop(resized, size, size))
    raise ValueError(f"preprocess.mode: unknown mode {mode!r}")


def model_input(reference: np.ndarray, mode: str, multiple: int = 8) -> tuple[np.ndarray, Region]:
    """What the autoencoder sees for a reference image, and where the reference sits in it.
    Only reflect_pad differs from the reference: reflect padding up to a multiple (split evenly)."""
    h, w = reference.shape[:2]
    if mode != "reflect_pad":
        return reference, Region(0, 0, h, w)
    ph, pw = (-h) % multiple, (-w) % multiple
    top, left = ph // 2, pw // 2
    padded = np.pad(reference, ((top, ph - top), (left, pw - left), (0, 0)), mode="reflect")
    return padded, Region(top, left, h, w)


def write_png(path: str | Path, arr: np.ndarray) -> None:
    """Write uint8 HxWx3 losslessly, atomically."""
    from PIL import Image

    from latentopt.core.fileio import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def to_uint8(img01: np.ndarray) -> np.ndarray:
    """[0,1] float HxWx3 -> uint8 with rounding (the PNG that is published)."""
    return np.clip(np.round(img01 * 255.0), 0, 255).astype(np.uint8)
