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
        """Its fits got less than QUIET_SHARE of their CPU, or other runnable tasks (measured during its fits; the
        1-minute load average when they were not) exceeded QUIET_LOAD per core. The load average alone lags: just
        after another job ends it still reads high (2.2 on 2 cores while the fits saw 0.2 other tasks)."""
        demand = self.others if self.others is not None else self.load_avg
        return self.cpu_share < QUIET_SHARE or demand / max(self.cores, 1) > QUIET_LOAD

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


# --- torch's threads on a shared machine -------------------------------------------------------------------
THREADS_EVERY_S = 1.0  # the sweep looks at the other processes' runnable tasks at most this often (a look: 3 samples, 30 ms)


def runnable_others(threads: int = 1, read: Callable[[], str] | None = None, samples: int = 1,
                    gap_s: float = 0.0) -> float | None:
    """Tasks runnable now beyond this process's `threads`: /proc/loadavg's running count (the median of `samples`
    readings `gap_s` apart) less `threads`; None where the system has no /proc/loadavg."""
    def from_proc() -> str:
        with open("/proc/loadavg") as f:
            return f.read()

    read = read or from_proc
    counts = []
    try:
        for i in range(samples):
            counts.append(int(read().split()[3].split("/")[0]))
            if i + 1 < samples and gap_s:
                time.sleep(gap_s)
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, sorted(counts)[len(counts) // 2] - float(threads))


def free_cores(n_cores: int, others: float) -> int:
    """The cores the other runnable tasks leave free, at least 1."""
    return max(1, n_cores - int(round(others)))


@dataclass
class ThreadsForLoad:
    """torch's intra-op threads set to the cores other processes leave free, looked at between runs and between a
    run's epochs (at most every THREADS_EVERY_S, and at once after an epoch that stalled: study.run.sweep_lines'
    SweepLines.stalled): torch's OpenMP threads wait on each other when another process holds one of their cores
    (one busy core slowed a 2-thread sweep 17x against 2.3x on one thread; benchmarks/RESULTS.md). An explicit
    OMP_NUM_THREADS is the user's choice and is left alone."""

    set_threads: Callable[[int], None]
    n_cores: int = field(default_factory=cores)
    others: Callable[[], float | None] = lambda: runnable_others(1, samples=3, gap_s=0.01)  # the reading thread
    clock: Callable[[], float] = time.monotonic
    threads: int | None = None
    checked: float | None = None

    def adjust(self, look: bool = False) -> int | None:
        """Set the threads for the next run when it is time to look (`look`: now, whenever it last looked: the work
        just stalled); the threads now set (None: left alone)."""
        if "OMP_NUM_THREADS" in os.environ:
            return None
        now = self.clock()
        if not look and self.checked is not None and now - self.checked < THREADS_EVERY_S:
            return self.threads
        self.checked = now
        others = self.others()
        if others is None:
            return self.threads
        want = free_cores(self.n_cores, others)
        if want != self.threads:
            self.set_threads(want)
            self.threads = want
        return self.threads


def threads_for_load() -> ThreadsForLoad:
    """ThreadsForLoad on torch's intra-op threads (the sweep, and the calibration that times it, train in this
    process)."""
    import torch

    return ThreadsForLoad(torch.set_num_threads, cores())
