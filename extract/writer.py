"""Cache writes off the critical path: a thread writes batch i while the backbone computes batch i + 1.

The queue is bounded (`depth` batches waiting), so memory stays flat when the disk is slower than the
model. Batches are written in the order submitted, each by one call of `write` (which marks its rows
done only after their arrays are written), so what reaches the file is always a prefix of what was
submitted. A failure in the thread is raised in the caller's thread by the next `submit` or by
`close`; after a failure the thread keeps taking (and dropping) batches, so `submit` never blocks
on a writer that has stopped.

On Linux the thread runs at a low scheduling priority (nice 19 for this thread only): the backbone's
threads keep the cores, and compression fills the time they leave idle. When the writer falls
`depth` batches behind, `submit` waits, the model pauses and the writer catches up.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import PipelineError

WriteFn = Callable[[np.ndarray, dict[str, np.ndarray]], None]


class BackgroundWriter:
    """`submit(rows, arrays)` returns at once (or waits while `depth` batches are queued); `write` runs on
    a thread. `close()` waits for every submitted batch and raises the thread's error, if any."""

    def __init__(self, write: WriteFn, path: str | Path, depth: int = 2, nice: int = 19):
        self._write = write
        self._nice = nice
        self._path = Path(path)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: PipelineError | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"write {self._path.name}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        if self._nice and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
            try:  # Linux: the thread id names this thread alone
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except OSError:  # elsewhere the id may not be a schedulable entity: keep the normal priority
                pass
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: the caller learns of the error on its next submit or close
            rows, arrays = item
            try:
                self._write(rows, arrays)
            except PipelineError as e:  # already one line naming the file (e.g. a full disk)
                self._error = e
            except BaseException as e:  # noqa: BLE001  (raised again in the caller's thread)
                first = str(e).splitlines()[0] if str(e) else ""
                error = PipelineError(f"{self._path}: writing rows {int(rows[0])}..{int(rows[-1])} failed "
                                      f"({type(e).__name__}: {first[:200]}); rows written before are kept, "
                                      "rerun the same command to resume")
                error.__cause__ = e
                self._error = error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, rows: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Queue one batch; raises the writer thread's error if an earlier batch failed.

        The arrays must not be modified afterwards: the thread reads them later.
        """
        if self._closed:
            raise RuntimeError("BackgroundWriter is closed")
        self._raise_if_failed()
        self._queue.put((rows, arrays))

    def close(self, check: bool = True) -> None:
        """Wait until every submitted batch is written (or dropped after a failure); then raise the
        thread's error when `check`. Idempotent: the `finally` of an interrupted run calls it again."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()  # again after an interrupted join: the file must not close under the thread
        if check:
            self._raise_if_failed()
