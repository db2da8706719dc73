"""One record of a study's time: each stage's seconds, what the plan said, their ratio and the load seen, as
study.json keeps them (stage_seconds, stage_planned, stage_planned_by, stage_load) and as the console and the
report both print them (`time_text`: the same words from the same numbers).

The load seen over a stage (`StageMeter`) is the machine's 1-minute load average (at its start and end, averaged)
against the cores, and the CPU time the study received (this process and its extraction children) against the
cores' wall time.

A study killed during a stage writes nothing to study.json, so the meter also rewrites `<out>/stage_clock.json`
every BEAT_S seconds with the stage's time so far; a rerun adds what the killed process recorded last
(`interrupted_stage`) before it goes on, and the stage's time is the sum over the processes that ran it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pipeline.files import write_atomically

from study.plan.load import cores, load_average


CLOCK_FILE = "stage_clock.json"  # the running stage's time so far: what a rerun adds when this process is killed
BEAT_S = 5.0  # how often it is rewritten (a killed study loses at most this much of its time)


class StageMeter:
    """The wall seconds and the load of one stage (clocks injectable for tests). With `record` (a study's
    directory) and `stage`, the time so far is rewritten to its CLOCK_FILE every `beat_s` seconds until `stop`."""

    def __init__(self, wall: Callable[[], float] = time.time, times: Callable[[], Any] = os.times,
                 load: Callable[[], float] = load_average, n_cores: int | None = None, record: Path | None = None,
                 stage: str = "", beat_s: float = BEAT_S):
        self.wall, self.times, self.load, self.cores = wall, times, load, n_cores or cores()
        self.t0, self.cpu0, self.load0 = wall(), self._cpu(), load()
        self.record, self.stage, self.halt = record, stage, threading.Event()
        self.beats = threading.Thread(target=self._beat_every, args=(beat_s,), daemon=True) if record else None
        if self.beats is not None:
            self.beats.start()

    def _beat_every(self, beat_s: float) -> None:
        while not self.halt.wait(beat_s):
            self.beat()

    def beat(self) -> None:
        """Rewrite the record with the stage's time and load so far (atomically: a kill leaves the last one whole)."""
        assert self.record is not None
        seconds, load = self.read()
        write_atomically(self.record / CLOCK_FILE,
                         json.dumps({"stage": self.stage, "seconds": round(seconds, 3), "load": load}))

    def _cpu(self) -> float:
        t = self.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> tuple[float, dict[str, float]]:
        """(seconds, {"load_avg", "cores", "cpu_share"}) since the meter began; the record is removed (the caller
        writes the stage's time to study.json next)."""
        if self.beats is not None:
            self.halt.set()
            self.beats.join()
            (self.record / CLOCK_FILE).unlink(missing_ok=True)  # type: ignore[operator]
        return self.read()

    def read(self) -> tuple[float, dict[str, float]]:
        """(seconds, load) so far."""
        seconds, cpu = self.wall() - self.t0, self._cpu() - self.cpu0
        share = cpu / (seconds * self.cores) if seconds > 0 else 0.0
        return seconds, {"load_avg": round((self.load0 + self.load()) / 2, 2), "cores": self.cores,
                         "cpu_share": round(min(share, 1.0), 3)}


def interrupted_stage(out: Path) -> tuple[str, float, dict[str, float]] | None:
    """(stage, seconds, load) that a study killed during a stage recorded last in `out`'s CLOCK_FILE (removed), or
    None when the last run ended its stages."""
    path = out / CLOCK_FILE
    try:
        record = json.loads(path.read_text())
        found = (str(record["stage"]), float(record["seconds"]), dict(record["load"]))
    except (OSError, ValueError, KeyError, TypeError):
        found = None
    path.unlink(missing_ok=True)
    return found


def merge_load(before: dict[str, float] | None, seconds_before: float, now: dict[str, float],
               seconds_now: float) -> dict[str, float]:
    """A stage's load over resumes: each figure weighted by the seconds it covered."""
    if not before or seconds_before <= 0:
        return now
    total = seconds_before + seconds_now
    return {"load_avg": round((before["load_avg"] * seconds_before + now["load_avg"] * seconds_now) / total, 2),
            "cores": now["cores"],
            "cpu_share": round((before["cpu_share"] * seconds_before + now["cpu_share"] * seconds_now) / total, 3)}


def stage_line(stage: str, took: float, planned: float | None, planned_by: str | None,
               load: dict[str, float] | None) -> str:
    """'sweep 3 min 40 s (planned 2 min 10 s by the quick calibration), 1.69x the plan, load 2.1 on 2 cores, the
    study got 48% of them'."""
    from study.plan.units import fmt_seconds as fmt_time

    text = f"{stage} {fmt_time(took)}"
    if planned:
        quick = " by the quick calibration" if planned_by == "quick" else ""
        text += f" (planned {fmt_time(planned)}{quick}), {took / planned:.2f}x the plan"
    if load and took >= 1:  # a stage of no work (a reused cache) has no load worth naming
        text += (f", load {load['load_avg']:.1f} on {int(load['cores'])} cores, the study got "
                 f"{100 * load['cpu_share']:.0f}% of them")
    return text


def time_text(took: dict[str, float], planned: dict[str, float], planned_by: dict[str, str],
              loads: dict[str, dict[str, float]]) -> str:
    """Every stage's line (`stage_line`), joined: the report's 'Time per stage' and the console's closing line."""
    return "; ".join(stage_line(k, v, planned.get(k), planned_by.get(k), loads.get(k)) for k, v in took.items())


def stage_loads(out: Path) -> dict[str, dict[str, float]]:
    """study.json's stage_load (none before a study recorded it)."""
    import json

    try:
        return json.loads((out / "study.json").read_text()).get("stage_load", {})
    except (OSError, ValueError):
        return {}


def state_time_text(state: dict[str, Any]) -> str:
    """time_text from study.json's contents."""
    return time_text(state.get("stage_seconds", {}), state.get("stage_planned", {}),
                     state.get("stage_planned_by", {}), state.get("stage_load", {}))
