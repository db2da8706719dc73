"""One progress line per stage: done/total and an ETA that learns, with a range; a bar redrawn in place on a terminal,
plain lines in a log; each ETA recorded in the study's eta.csv beside the time that really remained.

The ETA (`LearningEta`) is the plan's estimate of the work left x (the time the work done so far took / what the
plan said it would take). The first unit of work carries the process's one-off set-up (lazy imports, the first
figure; the plan counts it in that unit's estimate), so once a second unit is done the ratio leaves the first out.
The ratio over all units and over the most recent ones (a load that starts or stops shows there first) bound the
range; the ETA itself follows the recent one.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

RECENT = 4  # units in the recent ratio (at least; a quarter of the units done when more)
ETA_COLUMNS = ("time", "stage", "done", "total", "eta_s", "low_s", "high_s", "true_left_s")


def _now() -> float:
    return time.time()


class LearningEta:
    """Seconds left from the plan's remaining work x how the work done so far went against its plan: per kind of
    work (a method: the plan can be off by a different factor for each), over its recent units; work of a kind not
    seen yet at the recent pace of all the work."""

    def __init__(self, clock: Callable[[], float] | None = None):
        self.clock = clock or _now
        self.mark = self.clock()
        self.units: list[tuple[str, float, float]] = []  # (kind, planned s, took s) of each unit done, in order

    def done(self, planned: float, kind: str = "") -> None:
        """A unit of work the plan put at `planned` seconds has just finished (0: reused work, not timed)."""
        now = self.clock()
        if planned > 0:
            self.units.append((kind, planned, now - self.mark))
        self.mark = now

    def _timed(self) -> list[tuple[str, float, float]]:
        """The units the ratios use: all but the first (its one-off set-up) once there are two."""
        return self.units[1:] if len(self.units) > 1 else self.units

    def ratios(self, kind: str | None = None) -> tuple[float, float] | None:
        """(over all the units of `kind` (None: every kind), over its recent ones): taken / planned."""
        units = [u for u in self._timed() if kind is None or u[0] == kind]
        if not units:
            return None
        recent = units[-max(RECENT, len(units) // 4):]

        def ratio(us: list[tuple[str, float, float]]) -> float:
            return sum(t for _k, _p, t in us) / max(sum(p for _k, p, _t in us), 1e-9)

        return ratio(units), ratio(recent)

    def eta(self, left_planned: float | dict[str, float]) -> tuple[float, float, float] | None:
        """(ETA, low, high) seconds for the plan's work left (seconds, or seconds per kind); None before any unit is
        done (the caller then shows the plan's own)."""
        every = self.ratios()
        if every is None:
            return None
        left = left_planned if isinstance(left_planned, dict) else {"": left_planned}
        eta = low = high = 0.0
        for kind, seconds in left.items():
            overall, recent = self.ratios(kind) or every
            eta += seconds * recent
            low, high = low + seconds * min(overall, recent, every[1]), high + seconds * max(overall, recent, every[1])
        since = max(self.clock() - self.mark, 0.0)  # the unit under way has run this long already
        spread = _spread([t / p for _k, p, t in self._timed()])
        eta = max(eta, since)
        return eta, min(max(low * (1 - spread), since), eta), max(high * (1 + spread), eta)


def _spread(ratios: list[float]) -> float:
    """Half the interquartile range of the units' ratios over their median (at most 0.5): the range's margin."""
    if len(ratios) < 3:
        return 0.1
    ordered = sorted(ratios)
    q1, q2, q3 = (ordered[int(q * (len(ordered) - 1))] for q in (0.25, 0.5, 0.75))
    return min(0.5, (q3 - q1) / 2 / q2) if q2 > 0 else 0.5


class EtaLog:
    """<study>/eta.csv: each ETA shown (time, stage, done, total, eta_s, low_s, high_s) and, once the stage ends,
    the time that truly remained from each row (true_left_s), so ETA error against progress can be plotted."""

    def __init__(self, path: Path | None, stage: str, clock: Callable[[], float] | None = None):
        self.path, self.stage, self.clock = path, stage, clock or _now
        self.rows: list[dict[str, str]] = []

    def add(self, done: float, total: float, eta: float, low: float, high: float) -> None:
        if self.path is None:
            return
        self.rows.append({"time": f"{self.clock():.3f}", "stage": self.stage, "done": f"{done:g}",
                          "total": f"{total:g}", "eta_s": f"{eta:.3f}", "low_s": f"{low:.3f}", "high_s": f"{high:.3f}",
                          "true_left_s": ""})
        self._write(self.rows, final=False)

    def close(self) -> None:
        """The stage ended now: each of its rows learns the time that truly remained."""
        if self.path is None or not self.rows:
            return
        end = self.clock()
        for row in self.rows:
            row["true_left_s"] = f"{max(end - float(row['time']), 0.0):.3f}"
        self._write(self.rows, final=True)

    def _write(self, rows: list[dict[str, str]], final: bool) -> None:
        """Rows of other stages (and of earlier, resumed processes) are kept; this stage's rows are replaced;
        written to a temporary file and renamed into place (never half-written)."""
        assert self.path is not None
        ours = {row["time"] for row in rows}
        kept = [r for r in read_eta_csv(self.path) if not (r["stage"] == self.stage and r["time"] in ours)]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=ETA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(kept + rows, key=lambda r: float(r["time"])))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(buffer.getvalue())
        os.replace(tmp, self.path)


def read_eta_csv(path: Path) -> list[dict[str, str]]:
    """eta.csv's rows (none when there is no file)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


class Progress:
    """done/total of one stage with an ETA: the plan's estimate, corrected by how fast the work really goes."""

    def __init__(self, stage: str, total: float, estimate: float | None, stream: TextIO | None = None,
                 echo: Callable[[str], None] | None = None, eta_file: Path | None = None,
                 clock: Callable[[], float] | None = None):
        self.stage, self.total, self.estimate = stage, total, estimate
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.echo = echo
        self.clock = clock or _now
        self.start = self.clock()
        self.learner = LearningEta(self.clock)
        self.log = EtaLog(eta_file, stage, self.clock)
        self.done_work = 0.0  # estimated seconds of the work done in this process

    def eta(self, done: float, left_estimate: float | dict[str, float] | None) -> tuple[float, float, float] | None:
        """(seconds left, low, high): the plan's estimate of the remaining work x (taken / planned) so far
        (LearningEta); before any unit is done, the plan's own; without an estimate, the rate so far."""
        elapsed = self.clock() - self.start
        if left_estimate is None:  # no estimate: the rate so far, in units of work done
            return (elapsed / done * (self.total - done),) * 3 if done > 0 else None
        learned = self.learner.eta(left_estimate)
        plan = sum(left_estimate.values()) if isinstance(left_estimate, dict) else left_estimate
        return learned if learned is not None else (plan, plan, plan)

    def update(self, done: int, note: str = "", left_estimate: float | dict[str, float] | None = None,
               work: float = 0.0, kind: str = "") -> None:
        """`left_estimate`: the plan's seconds of the work left (per kind, e.g. method, when a dict); `work`: the
        plan's seconds of the unit just done, of `kind`."""
        from study.plan.units import fmt_seconds

        if work > 0 or done > 0:
            self.done_work += work
            self.learner.done(work, kind)
        eta = self.eta(done, left_estimate)
        if eta is not None:
            eta = tuple(max(0.0, x) for x in eta)
            self.log.add(done, self.total, *eta)
        shown = "?" if eta is None else fmt_seconds(eta[0]) + (
            f" ({fmt_seconds(eta[1])} - {fmt_seconds(eta[2])})" if eta[2] > eta[1] else "")
        frac = done / self.total if self.total else 1.0
        if self.tty:
            bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
            self.stream.write(f"\r{self.stage}: [{bar}] {done}/{int(self.total)} ETA {shown} {note[:60]:60s}")
        else:
            self.stream.write(f"{self.stage}: {done}/{int(self.total)} ETA {shown}{' ' + note if note else ''}\n")
        self.stream.flush()

    def close(self, note: str = "") -> None:
        from study.plan.units import fmt_seconds

        if self.tty:
            self.stream.write("\n")
        self.log.close()
        self.stream.write(f"{self.stage}: done in {fmt_seconds(self.clock() - self.start)}{' ' + note if note else ''}\n")
        self.stream.flush()
