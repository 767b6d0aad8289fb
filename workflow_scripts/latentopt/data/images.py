"""Reading, preprocessing and writing the images (PIL + numpy); finding them is
:mod:`latentopt.workflow.sources`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from latentopt.core.fileio import atomic_path


class ImageReadError(ValueError):
    """An image file could not be read or converted to RGB."""


def read_rgb(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """Read an image as uint8 HxWx3 RGB. Grayscale, palette, CMYK, 16-bit and alpha images are
    converted; unreadable or truncated files raise ImageReadError. ``data``: the file's bytes,
    already read (decoded instead of reading ``path`` again; ``path`` then only names it)."""
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
    except UnidentifiedImageError as exc:  # its message names the in-memory buffer, not the file
        raise ImageReadError(f"cannot read image {path}: not an image file in a format Pillow reads (or damaged beyond recognition)") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # PIL signals bad files with these
        raise ImageReadError(f"cannot read image {path}: {_plain(exc)}") from exc


def _plain(exc: BaseException) -> str:
    """The exception's message as a sentence: no Python object reprs (a buffer's memory address)."""
    text = re.sub(r"<[\w.]+ object at 0x[0-9a-f]+>", "the file", str(exc)).strip()
    if "truncated" in text.lower():
        return f"the file ends early: truncated, or still being copied ({text})"
    return text or type(exc).__name__


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


# preprocess.resize_filter -> PIL's resampling filter (resize_crop)
RESIZE_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS, "box": Image.BOX}


def preprocess(
    arr: np.ndarray,
    mode: str = "center_crop",
    *,
    multiple: int = 8,
    size: int = 512,
    crop_box: tuple[int, int] | None = None,
    resize_filter: str = "bicubic",
) -> np.ndarray:
    """The evaluation reference: the image the optimization must reproduce (uint8 HxWx3).

    center_crop: centre crop to the largest multiple of ``multiple`` in each dimension.
    reflect_pad: unchanged (the padding is added by :func:`model_input`, outside this reference).
    resize_crop: resize the short side to ``size`` with PIL's ``resize_filter`` (RESIZE_FILTERS)
    then centre crop size x size.
    ``crop_box`` = (height, width) is a centre crop applied first (small runs on CPU).
    """
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
        if resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"preprocess.resize_filter: unknown filter {resize_filter!r}, one of {list(RESIZE_FILTERS)}")
        resized = np.asarray(Image.fromarray(arr).resize((nw, nh), RESIZE_FILTERS[resize_filter]))
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
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def to_uint8(img01: np.ndarray) -> np.ndarray:
    """[0,1] float HxWx3 -> uint8 with rounding (the PNG that is published)."""
    return np.clip(np.round(img01 * 255.0), 0, 255).astype(np.uint8)
