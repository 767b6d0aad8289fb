"""Files that are either complete or absent, each with the checksum its writer recorded.

Every output is written through :func:`atomic_path` (or a writer built on it: :func:`write_json`,
:func:`write_text`): the content goes to a temporary file, is fsynced, its sha256 is written to the
file's checksum record, and only then is it renamed into place. A file in place therefore always
has a record written by its writer; a change of any byte afterwards (a cut at a line boundary, one
changed digit) makes the file differ from its record (:func:`recorded`), which is what
latentopt.workflow.integrity compares.

A checksum record is a small JSON file, ``{"format": "latentopt-checksums/1", "files": {name:
{"sha256", "size", "mtime_ns"}}}``, names relative to the record's folder. Each output has its own, hidden beside it:
``.<name>.sha256`` (:func:`checksum_record`); parallel jobs writing into one folder never share
one. A record listing several files (a job's manifest of its chunk) has the same format and is
read by the same :func:`read_checksums`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


CHECKSUM_FORMAT = "latentopt-checksums/1"
CHECKSUM_SUFFIX = ".sha256"


@dataclass(frozen=True)
class Recorded:
    """What a writer recorded of one file: its sha256, and its size and mtime as written (a file
    whose size and mtime still equal them is taken as unchanged in the fast check)."""

    sha256: str
    size: int
    mtime_ns: int

    def same_stat(self, path: str | Path) -> bool:
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


def stat_stamp(path: str | Path) -> list[int]:
    """[size, mtime, ctime] (ns) of a file: what a hash is trusted against while it stays the same
    (a copy with preserved times, a restored backup or ``rsync -t`` changes the ctime)."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def checksum_record(path: str | Path) -> Path:
    """Where the writer of ``path`` records its sha256: ``.<name>.sha256`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}{CHECKSUM_SUFFIX}")


def _replace_synced(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def record_of(path: str | Path) -> Recorded:
    """The record of ``path`` as it is now (its sha256, size and mtime)."""
    st = os.stat(path)
    return Recorded(sha256_file(path), st.st_size, st.st_mtime_ns)


def write_checksums(record: str | Path, files: dict[str, Recorded]) -> None:
    """Write a checksum record (atomically; a record has no record of its own)."""
    record = Path(record)
    tmp = record.with_name(f"{record.name}.tmp-{os.getpid()}")
    body = {name: {"sha256": r.sha256, "size": r.size, "mtime_ns": r.mtime_ns} for name, r in files.items()}
    try:
        tmp.write_text(json.dumps({"format": CHECKSUM_FORMAT, "files": body}, indent=1, sort_keys=True) + "\n")
        _replace_synced(tmp, record)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_checksums(record: str | Path) -> dict[str, Recorded]:
    """The {name: Recorded} of a checksum record; ValueError naming it when it is not one."""
    try:
        data = json.loads(Path(record).read_text())
    except ValueError as exc:
        raise ValueError(f"checksum record {record} is damaged ({exc})") from None
    files = data.get("files") if isinstance(data, dict) and data.get("format") == CHECKSUM_FORMAT else None
    try:
        return {name: Recorded(str(v["sha256"]), int(v["size"]), int(v["mtime_ns"])) for name, v in files.items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ValueError(f"checksum record {record} is not a {CHECKSUM_FORMAT} record") from None


def recorded(path: str | Path) -> Recorded | None:
    """What the writer of ``path`` recorded; None when it has no record (written before records
    existed, or by something else); ValueError when the record is damaged or does not name it."""
    path = Path(path)
    record = checksum_record(path)
    try:
        files = read_checksums(record)
    except FileNotFoundError:
        return None
    if path.name not in files:
        raise ValueError(f"checksum record {record} does not name {path.name}")
    return files[path.name]


def remove_with_record(path: str | Path) -> int:
    """Delete a file and its writer's checksum record (either may be missing); return how many were deleted."""
    removed = 0
    for p in (Path(path), checksum_record(path)):
        try:
            p.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def move_with_record(src: str | Path, dst: str | Path) -> None:
    """Move a file and, when it has one, its writer's checksum record (to the record of ``dst``)."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    if checksum_record(src).exists():
        shutil.move(str(checksum_record(src)), str(checksum_record(dst)))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it, record its sha256, size and
    mtime (:func:`checksum_record`) and rename it into place (a rename keeps the mtime). A crash
    leaves either the old file or none, never a partial one; a crash between the record and the
    rename leaves a file that differs from its record, which verification redoes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        write_checksums(checksum_record(path), {path.name: record_of(tmp)})
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


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
    """Place ``src`` at ``dst`` (hard link when possible, else an atomic copy). A restored output
    keeps the checksum record its writer left beside it (Snakemake removes the outputs of a job
    that reruns, not their records); a copy records what it copied."""
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
