"""Thumbnails of finished reconstructions for the live page, torch-free (driver side).

An optimization job publishes each image's decoded reconstruction inside its per-image ``.pt``
(``decoded``: a uint8 H x W x 3 tensor, :mod:`latentopt.optimize.records`); the PNGs of an arm
are only written when its dataset is built, after the arm's last image. So the live page reads
the ``.pt`` itself: a torch ``.pt`` is a zip archive of a pickle and raw storages; the pickle is
read with every class it names replaced by a stand-in (nothing of the file is ever called), the
``decoded`` tensor's storage is taken from the archive, subsampled to at most ``size`` pixels a
side and written as a small PNG (zlib), returned as a ``data:`` address the page embeds.
"""

from __future__ import annotations

import base64
import io
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

SIZE = 128          # longest side of a thumbnail, pixels (the page shows them 96 px high)
_CACHE: dict[tuple[str, int, int], str | None] = {}  # (path, mtime_ns, size) -> data address
_CACHE_MAX = 64


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, size, stride)


class _Stand_in:
    """Whatever class or function a pickle names, other than the two understood here."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return None

    def __setstate__(self, state):
        pass


class _Reader(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        return type(name, (_Stand_in,), {"__module__": "stand_in"})

    def persistent_load(self, pid):
        # torch's zip format: ('storage', storage type, key, location, numel)
        return ("storage", str(pid[2]))


def read_decoded(pt: str | Path) -> tuple[int, int, bytes] | None:
    """(height, width, RGB bytes row by row) of the ``decoded`` image of a per-image ``.pt``, or
    None (no such tensor, not H x W x 3, an unreadable file). The tensor is uint8 (records.py)."""
    try:
        with zipfile.ZipFile(pt) as zf:
            names = zf.namelist()
            pkl = next(n for n in names if n.endswith("/data.pkl") or n == "data.pkl")
            prefix = pkl[: -len("data.pkl")]
            payload = _Reader(io.BytesIO(zf.read(pkl))).load()
            t = payload.get("decoded") if isinstance(payload, dict) else None
            if not isinstance(t, _Tensor) or len(t.size) != 3 or t.size[2] != 3:
                return None
            h, w, _ = t.size
            data = zf.read(f"{prefix}data/{t.storage[1]}")
    except (OSError, zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, EOFError, KeyError, ValueError,
            TypeError, AttributeError, IndexError):
        return None
    s0, s1, s2 = t.stride
    if min(t.stride) < 1 or t.offset < 0 or t.offset + (h - 1) * s0 + (w - 1) * s1 + 2 * s2 >= len(data):
        return None
    if t.stride == (w * 3, 3, 1):  # row order already
        return h, w, bytes(data[t.offset: t.offset + h * w * 3])
    # any other layout (the job's image is a channel-last view of a C x H x W tensor): per channel
    # and row, a strided slice; the three planes interleaved
    rgb = bytearray(h * w * 3)
    for c in range(3):
        rgb[c::3] = b"".join(data[t.offset + y * s0 + c * s2: t.offset + y * s0 + c * s2 + (w - 1) * s1 + 1: s1]
                             for y in range(h))
    return h, w, bytes(rgb)


def _png(h: int, w: int, rgb: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def thumbnail(h: int, w: int, rgb: bytes, size: int = SIZE) -> tuple[int, int, bytes]:
    """Nearest-pixel subsampling to at most ``size`` pixels a side."""
    step = max(1, -(-max(h, w) // size))
    if step == 1:
        return h, w, rgb
    out = bytearray()
    for y in range(0, h, step):
        row = rgb[y * w * 3:(y + 1) * w * 3]
        for x in range(0, w, step):
            out += row[x * 3:x * 3 + 3]
    return len(range(0, h, step)), len(range(0, w, step)), bytes(out)


def thumbnail_uri(pt: str | Path, size: int = SIZE) -> str | None:
    """The ``decoded`` image of a per-image ``.pt`` as a ``data:image/png`` thumbnail (None
    where it cannot be read); each file version is read once."""
    try:
        st = Path(pt).stat()
    except OSError:
        return None
    key = (str(pt), st.st_mtime_ns, size)
    if key not in _CACHE:
        image = read_decoded(pt)
        _CACHE[key] = None if image is None else (
            "data:image/png;base64," + base64.b64encode(_png(*thumbnail(*image, size=size))).decode())
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
    return _CACHE[key]
