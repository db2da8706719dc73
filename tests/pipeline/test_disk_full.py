"""A full disk while a cache is written: one line naming the file and the bytes, nothing marked done that was not
written, and the same command finishing the same file once there is room (pipeline.writer)."""

from __future__ import annotations

import errno
import shutil
from collections import namedtuple

import h5py
import numpy as np
import pytest

from pipeline.files import DiskFull, created_atomically
from pipeline.writer import CacheWriter, damaged_marker
from tests.support.caches import assert_same_cache, fill, layout

Usage = namedtuple("Usage", "total used free")


def test_a_block_the_disk_cannot_hold_is_refused_before_any_byte(tmp_path, monkeypatch):
    w = fill(tmp_path / "c.h5", layout(), rows=[np.arange(0, 2)])
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskFull) as e:
        w.write(np.arange(2, 5), {"features/original": np.zeros((3, 4)), "features/jigsaw": np.zeros((3, 2, 4))})
    assert str(e.value).startswith(f"{tmp_path / 'c.h5'}: out of disk space while writing rows 2..4 (needs about ")
    assert "1,000 bytes free" in str(e.value)
    assert w.pending().tolist() == [2, 3, 4] and not damaged_marker(tmp_path / "c.h5").exists()
    w.close()


def test_a_write_that_fails_marks_the_file_and_the_rerun_rebuilds_it_from_its_finished_rows(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    w = fill(path, layout(), rows=[np.arange(0, 2)])
    real = h5py.Dataset.__setitem__

    def no_space(self, key, value):
        if self.name == "/features/jigsaw":
            raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28)")
        return real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_space)
    with pytest.raises(DiskFull, match=r"out of disk space while writing rows 2\.\.4"):
        w.write(np.arange(2, 5), {"features/original": np.full((3, 4), 7.0), "features/jigsaw": np.zeros((3, 2, 4))})
    w.close()
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real)
    assert damaged_marker(path).exists()
    with h5py.File(path, "r") as f:
        assert f["done"][...].tolist() == [True, True, False, False, False]  # the failed block is not done
    before = path.stat().st_ino
    resumed = CacheWriter.open(path, layout())  # rebuilt from rows 0..1 into a fresh file, then resumed
    assert path.stat().st_ino != before, "the damaged file was resumed as it was, not rebuilt"
    assert resumed.status == "resumed" and resumed.pending().tolist() == [2, 3, 4]
    assert not damaged_marker(path).exists()
    resumed.write(np.arange(2, 5), {"features/original": np.full((3, 4), np.arange(2, 5)[:, None], np.float32),
                                    "features/jigsaw": np.ones((3, 2, 4), np.float32)})
    resumed.finish()
    fill(tmp_path / "ref.h5", layout()).finish()
    assert_same_cache(path, tmp_path / "ref.h5")


def test_an_atomic_file_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    target = tmp_path / "report.html"
    with pytest.raises(DiskFull, match=f"{target}: out of disk space while writing it"):
        with created_atomically(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
