"""A local launcher relays its shards' progress lines as one, as they come (no TensorFlow: stand-in shards)."""

from __future__ import annotations

import time

import pytest

from extract.sharding import launch
from extract.sharding.progress import ShardProgress

# A stand-in shard: a progress line, a pause, 200 kB on stderr (a pipe left unread would fill), then its last line
TALKER = ("-c", "import sys, time; print('progress rows 1/2', flush=True); time.sleep(float(sys.argv[1])); "
                "sys.stderr.write('x' * 200000); print('progress rows 2/2'); print('wrote shard')")


def test_the_shards_rows_are_summed_into_one_progress_line_at_most_once_a_second_and_at_the_end():
    # shards 0 and 1 were planned at 10 and 6 rows; shard 1 resumes and computes only 4 of them
    now, said = [0.0], []
    progress = ShardProgress({0: 10, 1: 6}, said.append, clock=lambda: now[0])
    progress.on_line(0, "progress rows 5/10\n")
    progress.on_line(1, "progress rows 2/4")  # within the second: not said
    progress.on_line(1, "wrote something else")
    now[0] += 1.0
    progress.on_line(0, "progress rows 10/10")
    progress.on_line(1, "progress rows 4/4")  # all done: said at once
    assert said == ["progress rows 5/16", "progress rows 12/14", "progress rows 14/14"]


@pytest.mark.slow
def test_a_local_launch_hears_each_shards_lines_while_it_runs(monkeypatch):
    monkeypatch.setattr(launch, "SHARD_COMMAND", TALKER)
    heard: list[tuple[float, int, str]] = []
    jobs = [launch.ShardJob(i, 2, ("1.0",)) for i in range(2)]
    start = time.monotonic()
    outcomes = launch.run_local(jobs, lambda line: None, on_line=lambda i, line: heard.append(
        (time.monotonic() - start, i, line.strip())))
    ended = time.monotonic() - start
    assert sorted(o.summary for o in outcomes) == ["wrote shard", "wrote shard"] and all(o.ok for o in outcomes)
    first = {i: t for t, i, line in reversed(heard) if line == "progress rows 1/2"}
    assert set(first) == {0, 1} and max(first.values()) < ended - 0.5  # heard before the shards ended
    assert sorted((i, line) for _t, i, line in heard if line.startswith("progress")) == [
        (0, "progress rows 1/2"), (0, "progress rows 2/2"), (1, "progress rows 1/2"), (1, "progress rows 2/2")]
