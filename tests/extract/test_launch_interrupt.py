"""Ctrl-C during a launch stops the shards it started and starts no other (no TensorFlow: stand-in shards)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from extract.sharding import launch

pytestmark = pytest.mark.slow

# A stand-in shard: writes its pid to the file named by its first argument, then sleeps a minute.
SLEEPER = ("-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) is not running
        return f.read().split(")")[-1].split()[0] != "Z"


def wait_for(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def ctrl_c():
    """Python's Ctrl-C handler for the test, even when the suite was started in the background (`cmd &` in a
    script), which leaves SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_local_launch_stops_its_shards(tmp_path, monkeypatch, ctrl_c):
    monkeypatch.setattr(launch, "SHARD_COMMAND", SLEEPER)
    pids = [tmp_path / f"shard{i}.pid" for i in range(3)]
    jobs = [launch.ShardJob(i, 3, (str(p),)) for i, p in enumerate(pids)]

    def interrupt() -> None:  # Ctrl-C once two shards run (the third waits for a free slot)
        if wait_for(lambda: all(p.is_file() and p.read_text() for p in pids[:2])):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        launch.run_local(jobs, lambda line: None, max_parallel=2)
    started = [int(p.read_text()) for p in pids[:2]]
    assert wait_for(lambda: not any(alive(pid) for pid in started), 15)
    time.sleep(0.5)
    assert not pids[2].exists()  # the queued shard never started


def test_a_shard_dies_with_the_process_that_started_it(tmp_path):
    """What stops a Ray task's shard when Ray kills its worker: the shard gets SIGTERM when its parent dies."""
    import subprocess

    pid_file = tmp_path / "shard.pid"
    parent = ("import sys; from extract.sharding import launch; launch.SHARD_COMMAND = " + repr(SLEEPER)
              + f"; launch.run_shard(launch.ShardJob(0, 1, ({str(pid_file)!r},)))")
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=Path(__file__).resolve().parents[2])
    try:
        assert wait_for(lambda: pid_file.is_file() and pid_file.read_text())
        shard = int(pid_file.read_text())
        proc.kill()  # as Ray's force cancel kills a worker
        proc.wait()
        assert wait_for(lambda: not alive(shard), 15)
    finally:
        proc.kill()
        proc.wait()
