"""One progress line per stage: done/total and an ETA that learns, with a range; a bar redrawn in place on a terminal,
plain lines in a log; each ETA recorded in the study's eta.csv beside the time that really remained.

The ETA (`LearningEta`) is the plan's estimate of the work left x how the work done so far went against its plan:
each kind of work (a method) has its bias, the machine its recent pace (a load that starts or stops shows there
first). Units that carried the process's one-off set-up (lazy imports, the first figure) are left out (until an
ordinary unit is done, the plan's own). The sweep
feeds it an epoch at a time (study.run.sweep_lines.SweepLines), so it learns within a run, and counts the work left in
the epochs the runs are expected to train.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

RECENT = 4  # units in the recent ratio (at least; a quarter of the units done when more)
ETA_COLUMNS = ("time", "stage", "done", "total", "elapsed_s", "eta_s", "low_s", "high_s", "true_left_s")
Work = float | dict[str, float]  # the plan's seconds of some work: in all, or per kind (method)
Unit = tuple[str, float, float, str]  # a unit of work done: (kind, planned s, took s, sort within its kind)
ROW_EVERY_S = 1.0  # an ETA within a unit of the progress line (an epoch of a run) is recorded at most this often


def _now() -> float:
    return time.time()


class LearningEta:
    """Seconds left from the plan's remaining work x how the work done so far went against its plan. Two factors:
    each kind of work (a method) has its own bias (the plan can be off by a different factor for each: its taken /
    planned over all its units, relative to all the units'), and the machine has a pace that a load starting or
    stopping moves (the recent units' taken / bias-corrected planned, their median weighted by the plan, whatever
    their kind). A kind not seen yet goes at the recent pace. Each unit also has a `sort` within its kind (an epoch
    of a run alone or of a bank, a run's first epoch, a run's end): the plan can be off by a different factor for
    each, so the pace compares each recent unit with its own sort's ratio, and a sweep that moves from one sort to
    another (banks in halving's first rung, lone survivors after) is not read as the machine slowing down."""

    def __init__(self, clock: Callable[[], float] | None = None, first_one_off: bool = True):
        self.clock = clock or _now
        self.first_one_off = first_one_off  # the first unit carries a one-off set-up when none is marked so
        self.mark = self.clock()
        self.units: list[Unit] = []  # (kind, planned s, took s, sort) of each unit done, in order
        self.one_off: list[Unit] = []  # units that carried a one-off set-up

    def done(self, planned: float, kind: str = "", one_off: bool = False, sort: str = "") -> None:
        """A unit of work the plan put at `planned` seconds has just finished (0: reused work, not timed).
        `one_off`: it carried the process's one-off set-up (the first of its sort: lazy imports, the first figure),
        so the ratios leave it out once another unit is done. `sort`: the unit's sort within its kind."""
        now = self.clock()
        if planned > 0:
            (self.one_off if one_off else self.units).append((kind, planned, now - self.mark, sort))
        self.mark = now

    def _timed(self) -> list[Unit]:
        """The units the ratios use: the first unit is one-off too (unless `first_one_off` is False), and one-off
        units never (their one-off part is the calibration's guess: a resumed sweep's first epoch read 2x its plan
        and put a 5-s run's ETA 105% high; until an ordinary unit is done, the plan's own)."""
        units = self.units if self.one_off or not self.first_one_off else self.units[1:]
        return units

    def eta(self, left_planned: float | dict[str, float],
            bounds: tuple[Work, Work] | None = None) -> tuple[float, float, float] | None:
        """(ETA, low, high) seconds for the plan's work left (seconds, or seconds per kind); None before any unit is
        done (the caller then shows the plan's own). ETA: the work left x its kind's bias x the recent pace; the
        range spans the recent pace and the pace over all the work, widened by the units' own spread, and its ends
        take the least and the most work that may be left (`bounds`, when the work left is uncertain)."""
        units = self._timed()
        if not units:
            return None
        overall = _ratio(units)
        bias = {kind: r / overall for kind, r in _ratios_by(units, lambda u: u[0]).items()}
        sort_bias = {key: r / overall for key, r in _ratios_by(units, lambda u: (u[0], u[3])).items()}
        recent = units[-max(RECENT, len(units) // 4):]
        expected = [u[1] * sort_bias[u[0], u[3]] for u in recent]  # each unit's plan, corrected for its sort
        pace = _weighted_median([u[2] / max(e, 1e-9) for u, e in zip(recent, expected)], expected)
        def base(left: float | dict[str, float]) -> float:
            left = left if isinstance(left, dict) else {"": left}
            return sum(seconds * bias.get(kind, 1.0) for kind, seconds in left.items())

        eta, steady = base(left_planned) * pace, base(left_planned) * overall  # the recent pace; over all the work
        least, most = (min(eta, steady), max(eta, steady)) if bounds is None else (
            base(bounds[0]) * min(pace, overall), base(bounds[1]) * max(pace, overall))
        since = max(self.clock() - self.mark, 0.0)  # the unit under way has run this long already
        spread = _spread([u[2] / u[1] for u in units])
        eta = max(eta, since)
        return eta, min(max(least * (1 - spread), since), eta), max(most * (1 + spread), eta)


def _ratio(units: list[Unit]) -> float:
    """Taken / planned over `units`."""
    return sum(u[2] for u in units) / max(sum(u[1] for u in units), 1e-9)


def _ratios_by(units: list[Unit], key: Callable[[Unit], Any]) -> dict[Any, float]:
    """Taken / planned over the units of each key, in one pass."""
    sums: dict[Any, list[float]] = {}
    for u in units:
        taken_planned = sums.setdefault(key(u), [0.0, 0.0])
        taken_planned[0] += u[2]
        taken_planned[1] += u[1]
    return {k: taken / max(planned, 1e-9) for k, (taken, planned) in sums.items()}


def _weighted_median(values: list[float], weights: list[float]) -> float:
    """The value at half the total weight, values in order: the recent units' pace, each unit weighted by its
    planned seconds, so that a stall of a few units (another process's burst, threads waiting on a core just
    taken) does not move the pace as a load that stays does."""
    pairs = sorted(zip(values, weights))
    half, total = sum(weights) / 2, 0.0
    for value, weight in pairs:
        total += weight
        if total >= half:
            return value
    return pairs[-1][0] if pairs else 1.0


def _spread(ratios: list[float]) -> float:
    """Half the interquartile range of the units' ratios over their median (at most 0.5): the range's margin."""
    if len(ratios) < 3:
        return 0.1
    ordered = sorted(ratios)
    q1, q2, q3 = (ordered[int(q * (len(ordered) - 1))] for q in (0.25, 0.5, 0.75))
    return min(0.5, (q3 - q1) / 2 / q2) if q2 > 0 else 0.5


class EtaLog:
    """<study>/eta.csv: each ETA shown (time, stage, done, total, elapsed_s: the stage's time so far in this
    process, eta_s, low_s, high_s) and, once the stage ends, the time that truly remained from each row
    (true_left_s), so ETA error against progress (elapsed / (elapsed + true left)) can be plotted."""

    def __init__(self, path: Path | None, stage: str, clock: Callable[[], float] | None = None):
        self.path, self.stage, self.clock = path, stage, clock or _now
        self.rows: list[dict[str, str]] = []

    def add(self, done: float, total: float, eta: float, low: float, high: float, elapsed: float = 0.0) -> None:
        if self.path is None:
            return
        row = {"time": f"{self.clock():.3f}", "stage": self.stage, "done": f"{done:g}", "total": f"{total:g}",
               "elapsed_s": f"{elapsed:.3f}", "eta_s": f"{eta:.3f}", "low_s": f"{low:.3f}", "high_s": f"{high:.3f}",
               "true_left_s": ""}
        self.rows.append(row)
        if len(self.rows) == 1:  # the file rewritten once (today's columns), then appended to: a line per ETA
            self._write(self.rows, final=False)
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=ETA_COLUMNS, lineterminator="\n").writerow(row)

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
    """eta.csv's rows (none when there is no file); a line cut short by a stop mid-write is left out."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f) if None not in r and None not in r.values()]


class Progress:
    """done/total of one stage with an ETA: the plan's estimate, corrected by how fast the work really goes."""

    def __init__(self, stage: str, total: float, estimate: float | None, stream: TextIO | None = None,
                 echo: Callable[[str], None] | None = None, eta_file: Path | None = None,
                 clock: Callable[[], float] | None = None, first_one_off: bool = True):
        self.stage, self.total, self.estimate = stage, total, estimate
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.echo = echo
        self.clock = clock or _now
        self.start = self.clock()
        self.learner = LearningEta(self.clock, first_one_off)
        self.log = EtaLog(eta_file, stage, self.clock)
        self.last_row = self.start  # when an ETA was last recorded

    def eta(self, done: float, left_estimate: float | dict[str, float] | None,
            left_range: tuple[Work, Work] | None = None) -> tuple[float, float, float] | None:
        """(seconds left, low, high): the plan's estimate of the remaining work x (taken / planned) so far
        (LearningEta); before any unit is done, the plan's own; without an estimate, the rate so far."""
        elapsed = self.clock() - self.start
        if left_estimate is None:  # no estimate: the rate so far, in units of work done
            return (elapsed / done * (self.total - done),) * 3 if done > 0 else None
        learned = self.learner.eta(left_estimate, left_range)
        if learned is not None:
            return learned
        plan, low, high = (sum(w.values()) if isinstance(w, dict) else w
                           for w in (left_estimate, *(left_range or (left_estimate, left_estimate))))
        return plan, min(low, plan), max(high, plan)

    def update(self, done: int, note: str = "", left_estimate: float | dict[str, float] | None = None,
               work: float = 0.0, kind: str = "", one_off: bool = False,
               left_range: tuple[Work, Work] | None = None, sort: str = "") -> None:
        """A unit counted in done/total has ended: a line (redrawn in place on a terminal). `left_estimate`: the
        plan's seconds of the work left (per kind, e.g. method, when a dict); `work`: the plan's seconds of the work
        done since the last call, of `kind` (`one_off`, `sort`: LearningEta.done); `left_range`: the least and the most
        work that may be left (LearningEta.eta's bounds)."""
        if work > 0 or done > 0:
            self.learner.done(work, kind, one_off, sort)
        self._show(done, note, self._record(done, left_estimate, left_range), line=True)

    def due(self) -> bool:
        """An ETA within a unit is recorded now (ROW_EVERY_S since the last)."""
        return self.clock() - self.last_row >= ROW_EVERY_S

    def tick(self, done: int, left_estimate: Work | None, work: float, kind: str = "", note: str = "",
             one_off: bool = False, left_range: tuple[Work, Work] | None = None, sort: str = "") -> None:
        """Work within a unit has ended (an epoch of a run), planned at `work` seconds: the ETA learns from it at
        once; it is recorded (eta.csv) and redrawn on a terminal when `due` (the caller may then give no
        `left_estimate` otherwise), never printed in a log."""
        self.learner.done(work, kind, one_off, sort)
        if left_estimate is not None and self.due():
            self._show(done, note, self._record(done, left_estimate, left_range), line=False)

    def _record(self, done: float, left_estimate: float | dict[str, float] | None,
                left_range: tuple[Work, Work] | None = None) -> tuple[float, ...] | None:
        eta = self.eta(done, left_estimate, left_range)
        if eta is not None:
            eta = tuple(max(0.0, x) for x in eta)
            self.log.add(done, self.total, *eta, elapsed=self.clock() - self.start)
        self.last_row = self.clock()
        return eta

    def _show(self, done: int, note: str, eta: tuple[float, ...] | None, line: bool) -> None:
        from study.plan.units import fmt_seconds

        shown = "?" if eta is None else fmt_seconds(eta[0]) + (
            f" ({fmt_seconds(eta[1])} - {fmt_seconds(eta[2])})" if eta[2] > eta[1] else "")
        frac = done / self.total if self.total else 1.0
        if self.tty:
            bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
            self.stream.write(f"\r{self.stage}: [{bar}] {done}/{int(self.total)} ETA {shown} {note[:60]:60s}")
        elif line:
            self.stream.write(f"{self.stage}: {done}/{int(self.total)} ETA {shown}{' ' + note if note else ''}\n")
        self.stream.flush()

    def close(self, note: str = "") -> None:
        from study.plan.units import fmt_seconds

        if self.tty:
            self.stream.write("\n")
        self.log.close()
        self.stream.write(f"{self.stage}: done in {fmt_seconds(self.clock() - self.start)}{' ' + note if note else ''}\n")
        self.stream.flush()
