"""A local launcher's shards as one progress line: each shard prints its rows done of the rows it computes
(pipeline.progress_lines); the launcher relays their sum as the line its caller reads (`study`'s live ETA,
study.run.stages.ExtractLines), as one extract-features process would print it."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

from pipeline.progress_lines import EVERY_S, parse_progress_line, progress_line


def _say(line: str) -> None:
    """One write per line (from a shard's thread, beside the launcher's own lines: never split by another's)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ShardProgress:
    """Rows done over the shards still to run, summed: a shard not heard from yet counts its planned rows to do
    (a resumed one then says its own, fewer); a line at most every EVERY_S seconds, and one when all are done.
    `on_line` is called from each shard's thread (pipeline.engines.run_local)."""

    def __init__(self, planned: dict[int, int], say: Callable[[str], None] = _say,
                 clock: Callable[[], float] = time.monotonic):
        self.rows = {index: (0, rows) for index, rows in planned.items()}  # shard -> (rows done, rows to compute)
        self.say, self.clock = say, clock
        self.said = float("-inf")
        self.lock = threading.Lock()

    def on_line(self, index: int, line: str) -> None:
        rows = parse_progress_line(line)
        if rows is None or index not in self.rows:
            return
        with self.lock:
            self.rows[index] = rows
            done, total = (sum(r[i] for r in self.rows.values()) for i in (0, 1))
            if self.clock() - self.said >= EVERY_S or done >= total:
                self.say(progress_line(done, total))
                self.said = self.clock()
