"""One progress line per stage: done/total and the ETA; a bar redrawn in place on a terminal, plain lines in a log."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class Progress:
    """done/total of one stage with an ETA: the plan's estimate, corrected by how fast the work really goes."""

    def __init__(self, stage: str, total: float, estimate: float | None, stream: TextIO | None = None,
                 echo: Callable[[str], None] | None = None):
        self.stage, self.total, self.estimate = stage, total, estimate
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.echo = echo
        self.start = time.time()
        self.done_work = 0.0  # estimated seconds of the work done in this process (for the speed ratio)

    def eta(self, done: float, left_estimate: float | None) -> float | None:
        """Seconds left: the plan's estimate of the remaining work x (actual / estimated) so far."""
        elapsed = time.time() - self.start
        if left_estimate is None:  # no estimate: the rate so far, in units of work done
            return elapsed / done * (self.total - done) if done > 0 else None
        ratio = elapsed / self.done_work if self.done_work > 0 and elapsed > 1 else 1.0
        return left_estimate * ratio

    def update(self, done: int, note: str = "", left_estimate: float | None = None, work: float = 0.0) -> None:
        from .units import fmt_seconds

        self.done_work += work
        eta = self.eta(done, left_estimate)
        eta = None if eta is None else max(0.0, eta)
        frac = done / self.total if self.total else 1.0
        text = f"{self.stage}: {done}/{int(self.total)} ETA {fmt_seconds(eta) if eta is not None else '?'}"
        if self.tty:
            bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
            self.stream.write(f"\r{self.stage}: [{bar}] {done}/{int(self.total)} ETA "
                              f"{fmt_seconds(eta) if eta is not None else '?'} {note[:60]:60s}")
            self.stream.flush()
        else:
            self.stream.write(f"{text}{' ' + note if note else ''}\n")
            self.stream.flush()

    def close(self, note: str = "") -> None:
        if self.tty:
            self.stream.write("\n")
        from .units import fmt_seconds

        self.stream.write(f"{self.stage}: done in {fmt_seconds(time.time() - self.start)}{' ' + note if note else ''}\n")
        self.stream.flush()
