"""The load a measurement was taken under: the machine's load average against its cores, the CPU time this process
received against its wall time, and the rule for reusing a saved calibration taken under load.

A measurement on a machine whose cores another process holds is slow in wall time while the CPU time it receives
stays near what the work needs: `CpuMeter` records both (time.process_time counts every thread of this process,
time.perf_counter the wall), so a calibration knows the share of the cores it got (cpu / (wall x threads)). A share
below QUIET_SHARE, or a load average (before the calibration, i.e. the other processes') above QUIET_LOAD per core,
marks it as loaded: the plan then gives both what a quiet machine would take (the CPU-time figures) and what this
load implies (those x the cores' fair share: (others' runnable tasks + threads) / cores), up to 1 / the share the
calibration's short fits got (they fare worse than long runs: issue 36). A saved calibration taken under load is measured again when the machine is quiet
now; on a machine still loaded it is reused, and the plan says it is (`reuse_verdict`).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

QUIET_SHARE = 0.8  # a calibration that received less than this share of its threads' wall time was contended
QUIET_LOAD = 0.5  # other processes' 1-minute load average per core above which the machine is not quiet
MAX_SLOWDOWN = 8.0  # the implied slowdown of a loaded calibration is capped here (a share near 0 is noise)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """The machine's 1-minute load average (0 where the system has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


@dataclass
class CpuMeter:
    """Wall and CPU seconds of this process between `start()` and now (clocks injectable for tests)."""

    wall: Callable[[], float] = time.perf_counter
    cpu: Callable[[], float] = time.process_time
    wall0: float = 0.0
    cpu0: float = 0.0

    def start(self) -> "CpuMeter":
        self.wall0, self.cpu0 = self.wall(), self.cpu()
        return self

    def read(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds) since start."""
        return self.wall() - self.wall0, self.cpu() - self.cpu0


def cpu_share(wall_s: float, cpu_s: float, threads: int) -> float:
    """The share of `threads` cores' wall time this process received (1 on a quiet machine, within noise)."""
    if wall_s <= 0 or threads <= 0:
        return 1.0
    return max(0.0, min(1.0, cpu_s / (wall_s * threads)))


@dataclass
class LoadRecord:
    """The load a calibration was taken under (saved with it in calibration.json)."""

    load_avg: float = 0.0  # 1-minute load average when it began: the other processes' load
    cores: int = 1
    cpu_share: float = 1.0  # CPU time received / (wall time x threads), over its timed work
    threads: int = 1  # the compute threads it ran (torch's intra-op threads, at most the cores)
    taken_at: float = 0.0  # time.time() when it was taken
    shares: dict[str, float] = field(default_factory=dict)  # per method: its measurements' share
    others: float | None = None  # other processes' runnable tasks, the mean over its fits (None: the load average)

    @property
    def loaded(self) -> bool:
        return self.cpu_share < QUIET_SHARE or self.load_avg / max(self.cores, 1) > QUIET_LOAD

    @property
    def slowdown(self) -> float:
        """What this load implies for long runs against a quiet machine: the cores' fair share, (other runnable
        tasks + this process's threads) / cores, at least 1 and capped; 1 when quiet or when the measurements got
        their CPU time anyway. (A calibration's short fits get less than their fair share: `worst_slowdown`.)"""
        if not self.loaded or self.cpu_share >= QUIET_SHARE:  # busy, but its measurements got their CPU
            return 1.0
        demand = self.others if self.others is not None else self.load_avg
        return min(MAX_SLOWDOWN, max(1.0, (demand + self.threads) / max(self.cores, 1)))

    @property
    def worst_slowdown(self) -> float:
        """1 / the share the calibration's own fits received (at least `slowdown`, capped): the range's high end."""
        if self.slowdown <= 1.0:
            return 1.0
        return max(self.slowdown, min(MAX_SLOWDOWN, 1.0 / max(self.cpu_share, 1.0 / MAX_SLOWDOWN)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "LoadRecord | None":
        if not data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        """'load 2.6 on 2 cores, 45% of its CPU time received'."""
        return (f"load average {self.load_avg:.1f} on {self.cores} cores, {100 * self.cpu_share:.0f}% of the wall "
                f"time of its {self.threads} thread{'s' if self.threads != 1 else ''} received as CPU time")


def machine_is_quiet(load_avg: float | None = None, n_cores: int | None = None) -> bool:
    """The load average now is below QUIET_LOAD per core."""
    load_avg = load_average() if load_avg is None else load_avg
    return load_avg / max(n_cores or cores(), 1) <= QUIET_LOAD


def fmt_age(seconds: float) -> str:
    """'3 min ago', '2 h ago', '4 days ago'."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def reuse_verdict(record: LoadRecord | None, now: float, quiet_now: bool) -> tuple[bool, str]:
    """(reuse the saved calibration?, the line --plan prints about it). A calibration taken under load is measured
    again when the machine is quiet now; on a loaded machine it is reused and the line says it was loaded. One
    saved before loads were recorded is measured again when quiet (its load is unknown)."""
    if record is None:
        if quiet_now:
            return False, "saved calibration has no load record (saved by an older version): measured again"
        return True, "reused a saved calibration with no load record (an older version's); its load is unknown"
    age = fmt_age(now - record.taken_at) if record.taken_at else "at an unknown time"
    if record.loaded and quiet_now:
        return False, (f"the saved calibration (taken {age}) was taken under load ({record.describe()}): the machine "
                       "is quiet now, so it was measured again")
    if record.loaded:
        return True, (f"reused the saved calibration taken {age} UNDER LOAD ({record.describe()}); the machine is "
                      "still loaded; delete calibration.json or rerun --plan when it is quiet for a quiet figure")
    return True, f"reused the saved calibration taken {age} ({record.describe()})"
