"""The background cache writer: order, bounded queue, errors raised in the caller's thread without a hang,
and an extraction whose write fails stopping cleanly with the rows before kept."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

from extract.writer import BackgroundWriter
from pipeline.errors import PipelineError

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)


def test_batches_written_in_order_on_another_thread():
    seen, threads = [], set()

    def write(rows, arrays):
        threads.add(threading.get_ident())
        seen.append((rows.tolist(), arrays["x"].tolist()))

    w = BackgroundWriter(write, "c.h5", depth=1)
    for b in range(5):
        w.submit(np.arange(2 * b, 2 * b + 2), {"x": np.full(2, b)})
    w.close()
    assert seen == [([2 * b, 2 * b + 1], [b, b]) for b in range(5)]
    assert threads and threading.get_ident() not in threads
    with pytest.raises(RuntimeError, match="closed"):
        w.submit(np.arange(2), {})


def test_writer_error_reaches_the_caller_and_nothing_hangs():
    written = []
    release = threading.Event()

    def write(rows, arrays):
        release.wait(5)
        if rows[0] == 2:
            raise OSError("[Errno 28] No space left on device")
        written.append(rows[0])

    w = BackgroundWriter(write, "/data/c.h5", depth=1)
    w.submit(np.array([0, 1]), {})
    w.submit(np.array([2, 3]), {})
    release.set()
    with pytest.raises(PipelineError) as e:  # a queue of 1 behind a failed writer: submit still returns
        for b in range(2, 50):
            w.submit(np.array([2 * b, 2 * b + 1]), {})
    message = str(e.value)
    assert "/data/c.h5: writing rows 2..3 failed (OSError: [Errno 28] No space left on device)" in message
    assert "rerun" in message and "\n" not in message
    with pytest.raises(PipelineError, match="rows 2..3"):
        w.close()
    w.close(check=False)  # the cleanup path of an interrupted run: no second raise, no hang
    assert written == [0]  # nothing after the failed batch reaches the file


def test_extraction_with_a_failing_write_stops_cleanly(sample_root, backbone, tmp_path, monkeypatch):
    from tests.support import IMAGE_SIZE
    from extract.inputs import ViewSpec
    from extract.run import extract_split
    from pipeline.writer import CacheWriter
    from pipeline.cub import load_cub

    real_write, calls = CacheWriter.write, []

    def flaky(self, rows, arrays):
        calls.append(threading.get_ident())
        if len(calls) == 2:
            raise OSError("disk quota exceeded")
        real_write(self, rows, arrays)

    monkeypatch.setattr(CacheWriter, "write", flaky)
    out = tmp_path / "t.h5"
    data = load_cub(sample_root, "test")
    with pytest.raises(PipelineError, match=r"t.h5: writing rows 2..3 failed \(OSError: disk quota exceeded\)"):
        extract_split(data, backbone, out, ViewSpec(("original",), 1, 3, 7, 2), IMAGE_SIZE, 0, False, 2,
                      progress=False)
    assert threading.get_ident() not in calls
    with h5py.File(out, "r") as f:  # the batch before the failure is kept for a resume; nothing claims more
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True, True] + [False] * 4
