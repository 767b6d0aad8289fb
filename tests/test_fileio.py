"""Files are complete or absent; unwritable results folders fail early and clearly."""

from __future__ import annotations

import errno
import math

import pytest

from latentopt.core.fileio import atomic_path, check_writable, checksum_record, read_json, recorded, sha256_file, write_json


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "partial')
            raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.json.sha256", "a.json"]  # no temporary left
    assert recorded(target).sha256 == sha256_file(target)  # the record still describes the old file


def test_every_atomic_write_records_what_it_wrote_and_any_change_departs_from_it(tmp_path):
    """The writer's record: sha256, size and mtime of the file as written. A cut at a line
    boundary changes the size; one changed digit keeps the size but not the sha256."""
    target = tmp_path / "t.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("image_id,psnr\na,26.22\nb,27.01\n")
    rec = recorded(target)
    assert rec.sha256 == sha256_file(target) and rec.same_stat(target)
    assert checksum_record(target).name == ".t.csv.sha256"
    target.write_text("image_id,psnr\na,29.22\nb,27.01\n")
    assert sha256_file(target) != rec.sha256
    target.write_text("image_id,psnr\na,26.22\n")
    assert not rec.same_stat(target) and sha256_file(target) != rec.sha256
    assert recorded(tmp_path / "never_written.json") is None


def test_a_damaged_checksum_record_is_an_error_naming_it(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    checksum_record(target).write_text('{"format": "latentopt-checksums/1", "files": {"a.json": {"sha256": "x"')
    with pytest.raises(ValueError, match=r"\.a\.json\.sha256"):
        recorded(target)


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
