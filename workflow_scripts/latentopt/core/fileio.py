"""Files that are either complete or absent: atomic writes, JSON with checksums, hard links."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync and rename it into place.
    A crash leaves either the old file or none, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _null_nonfinite(obj: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null (readers treat null as missing)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _null_nonfinite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_null_nonfinite(v) for v in obj]
    return obj


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_null_nonfinite(data), indent=2, default=_json_default) + "\n")


def as_json(data: Any) -> Any:
    """``data`` as :func:`write_json` then :func:`read_json` would give it back (tuples as lists, ...)."""
    return json.loads(json.dumps(_null_nonfinite(data), default=_json_default))


def read_json(path: str | Path) -> Any:
    """The parsed file; a file that does not parse raises json.JSONDecodeError naming it."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(f"{path} is not valid JSON (damaged or cut off?): {exc.msg}", exc.doc, exc.pos) from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(data: Any) -> str:
    """A stable fingerprint of JSON-able data (sorted keys)."""
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, default=_json_default).encode()
    ).hexdigest()


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Place ``src`` at ``dst`` (hard link when possible, else an atomic copy)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)


def _nearest_existing(folder: Path) -> Path:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_folder_path(folder: str | Path) -> Path:
    """Fail clearly when ``folder`` can never be a folder (a file stands on its path); reads only,
    so inspection of a read-only results folder still works. Returns the nearest existing folder."""
    folder = Path(folder).absolute()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OSError(f"results_dir: cannot write to {folder} ({existing} is not a folder); check the path")
    return existing


def check_writable(folder: str | Path) -> None:
    """Fail early and clearly when the results folder cannot be written (read-only, not a
    folder, full disk): creates it and writes a probe file."""
    existing = check_folder_path(folder)
    folder = Path(folder).absolute()
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OSError(
            f"results_dir: cannot write to {folder} ({existing} is not a writable folder); "
            "check the path and its permissions"
        )
    probe_file = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe_file, "wb") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OSError(
            f"results_dir: cannot write to {folder} ({exc.strerror or exc}); "
            "check permissions and free disk space"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe_file.unlink()
