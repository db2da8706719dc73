"""One writer per cache (a lock another process cannot take, that a killed holder never leaves stuck)
and creation under a temporary name (a kill while the file is created leaves nothing at its path)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.reader import read_cache
from pipeline.writer import CacheWriter
from pipeline.errors import PipelineError
from pipeline.files import created_atomically, lock_output, lock_path_for, stale_temporaries
from tests.support.caches import fill, layout

ROOT = Path(__file__).resolve().parents[2]


class Holder:
    """Another process that takes `path`'s lock and keeps it until stopped."""

    def __init__(self, path: Path):
        code = textwrap.dedent(f"""
            import sys
            from pipeline.files import lock_output
            lock = lock_output({str(path)!r}, what="extraction")
            print("locked", flush=True)
            sys.stdin.read()
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def holder(tmp_path):
    holders = []

    def start(path):
        holders.append(Holder(path))
        return holders[-1]

    yield start
    for h in holders:
        h.kill()


def test_second_writer_stops_at_once_and_leaves_the_file_alone(tmp_path, holder):
    path = tmp_path / "c.h5"
    w = fill(path, layout(), rows=[np.arange(0, 2)])  # an extraction in progress...
    w.close()
    before = path.read_bytes()
    other = holder(path)  # ...whose writer is another process
    for overwrite in (False, True):
        with pytest.raises(PipelineError) as e:
            CacheWriter.open(path, layout(image_size=96), overwrite=overwrite)
        message = str(e.value)
        assert str(path) in message and f"pid {other.proc.pid}" in message and "\n" not in message
        assert path.read_bytes() == before  # neither deleted nor truncated
    other.kill()
    w = CacheWriter.open(path, layout())  # the kernel dropped the killed holder's lock: resume
    assert w.status == "resumed" and w.pending().tolist() == [2, 3, 4]
    w.close()


def test_stale_lock_file_of_a_killed_process_is_taken_over(tmp_path, holder):
    path = tmp_path / "c.h5"
    other = holder(path)
    lock_file = lock_path_for(path)
    assert f"pid={other.proc.pid}" in lock_file.read_text()
    other.kill()  # SIGKILL: no chance to clean up, the lock file stays
    assert lock_file.exists()
    with lock_output(path) as lock:
        assert lock.locked and f"pid={os.getpid()}" in lock_file.read_text()
    assert not lock_file.exists()  # the holder removes it on release


def test_lock_is_reentrant_within_a_process_and_held_by_the_writer(tmp_path):
    path = tmp_path / "c.h5"
    outer = lock_output(path)
    w = fill(path, layout())  # CacheWriter takes the same lock again
    w.finish()
    assert lock_path_for(path).exists()  # still held by `outer`
    outer.release()
    assert not lock_path_for(path).exists()
    w = CacheWriter.open(path, layout(), overwrite=True)
    assert lock_path_for(path).exists()  # held while the writer is open...
    w.close()
    assert not lock_path_for(path).exists()  # ...and given back by close()


def test_unwritable_directory_is_one_line():
    with pytest.raises(PipelineError, match=r"^/sys/c\.h5: cannot write in /sys \(.+\)$"):
        lock_output("/sys/c.h5")  # sysfs: no regular files, not even for root


KILL_IN_CREATION = textwrap.dedent("""
    import os, signal, sys
    import h5py
    sys.path.insert(0, ".")
    from tests.support.caches import layout
    from pipeline.writer import CacheWriter

    create = h5py.Group.create_dataset
    def create_then_die(self, name, *args, **kwargs):
        if name == "done":  # the file exists, its skeleton is half written
            os.kill(os.getpid(), signal.SIGKILL)
        return create(self, name, *args, **kwargs)
    h5py.Group.create_dataset = create_then_die
    CacheWriter.open(sys.argv[1], layout())
""")


def test_kill_while_creating_leaves_nothing_at_the_path_and_a_rerun_starts_clean(tmp_path):
    path = tmp_path / "c.h5"
    proc = subprocess.run([sys.executable, "-c", KILL_IN_CREATION, str(path)], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not path.exists()  # the output path only ever holds a readable cache
    assert len(stale_temporaries(path)) == 1  # the half-written skeleton, under its temporary name
    w = fill(path, layout())  # the same command again: a new file, the leftover removed
    assert w.status == "new"
    w.finish()
    assert stale_temporaries(path) == [] and read_cache(path).features["original"].shape == (5, 4)


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    fill(path, layout()).finish()
    import pipeline.writer

    def broken(tmp, lay):
        with h5py.File(tmp, "w") as f:
            f["image_id"] = [1]
        raise OSError("disk full")

    monkeypatch.setattr(pipeline.writer, "_write_skeleton", broken)
    with pytest.raises(OSError, match="disk full"):
        CacheWriter.open(path, layout(image_size=96), overwrite=True)
    assert read_cache(path).config["image_size"] == 64  # the old cache is intact and readable
    assert stale_temporaries(path) == [] and not lock_path_for(path).exists()


def test_created_atomically_keeps_default_permissions(tmp_path):
    with created_atomically(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_write_atomically_writes_text_or_bytes_and_leaves_no_temporary(tmp_path):
    from pipeline.files import write_atomically

    path = tmp_path / "sub" / "a.json"
    assert write_atomically(path, '{"x": "é"}') == path and path.read_text(encoding="utf-8") == '{"x": "é"}'
    write_atomically(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and stale_temporaries(path) == []


def test_a_filesystem_without_flock_gets_one_warning_line(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    import pipeline.files

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(pipeline.files, "_warned", set())
    out = tmp_path / "c.h5"
    with lock_output(out) as first, lock_output(out) as second:  # a command, then its writer: warned once
        assert not first.locked and not second.locked
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"warning: {out}: the filesystem of {tmp_path} offers no file locks")


def test_a_complete_cache_in_a_read_only_directory_needs_no_lock(tmp_path, monkeypatch):
    """Root ignores directory modes, so the read-only directory is simulated where the lock file is made."""
    import pipeline.files
    from pipeline.files import OutputNotWritable
    from tests.support.caches import fill, layout

    fill(tmp_path / "c.h5", layout()).finish()

    def read_only(path, lock_file):
        raise OutputNotWritable(f"{path}: cannot write in {lock_file.parent} (Read-only file system)")

    monkeypatch.setattr(pipeline.files, "_open_lock_file", read_only)
    assert read_cache(tmp_path / "c.h5").features["original"].shape == (5, 4)
    writer = CacheWriter.open(tmp_path / "c.h5", layout())  # a rerun with nothing to do
    assert writer.status == "complete" and len(writer.pending()) == 0
    writer.finish()
    for other in (layout(image_size=96), None):  # another configuration, or no file yet: writing is needed
        with pytest.raises(PipelineError, match=r"cannot write in .*\(Read-only file system\)$"):
            CacheWriter.open(tmp_path / ("c.h5" if other else "new.h5"), other or layout())
    with pytest.raises(PipelineError, match="Read-only"):
        CacheWriter.open(tmp_path / "c.h5", layout(), overwrite=True)
