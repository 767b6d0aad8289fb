"""Files are complete or absent; unwritable results folders fail early and clearly."""

from __future__ import annotations

import errno
import math

import pytest

from latentopt.core.fileio import atomic_path, check_writable, read_json, sha256_file, write_json


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "partial')
            raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_json_has_no_nan(tmp_path):
    write_json(tmp_path / "x.json", {"a": math.nan, "b": [math.inf, 1.0]})
    assert read_json(tmp_path / "x.json") == {"a": None, "b": [None, 1.0]}


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_results_dir_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="results_dir: cannot write"):
        check_writable(tmp_path / "file" / "results")


def test_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("latentopt.core.fileio.os.fsync", no_space)
    with pytest.raises(OSError, match="No space left on device.*free disk space"):
        check_writable(tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []  # the probe is cleaned up


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_results_dir_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(OSError, match="results_dir: cannot write"):
        check_writable(ro)
