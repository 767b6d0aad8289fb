"""Finding the source images (pure Python, no image is opened): their ids, splits and checksums.

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

from latentopt.core.fileio import sha256_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
OFFICIAL_SUBPATH = ("BSR", "BSDS500", "data", "images")


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
    if stem.isascii() and stem.isprintable() and not _ESCAPED.intersection(stem):
        return stem  # the common case, without the per-character walk
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
    names = sorted(  # as strings: the same order as the paths, without comparing Path objects
        name for name in os.listdir(folder)
        if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith("._")
    )
    return [folder / name for name in names]


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
        relative = "" if root.is_absolute() else f" (relative to {os.getcwd()})"
        raise FileNotFoundError(f"data.root: folder {root} does not exist{relative}")
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


def source_sha256(path) -> str | None:
    """The checksum of a source image, or None when it cannot be opened (broken link, permission)."""
    try:
        return sha256_file(path)
    except OSError:
        return None
