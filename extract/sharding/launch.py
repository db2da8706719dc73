"""Run the shards of one extraction on an engine that already exists: local processes, SLURM through
submitit, or Ray — never a scheduler of our own (the engines themselves: pipeline.engines, which the
sweep's workers use too).

Every launcher runs the same thing for shard I of N: `python -m extract <the command's options>
--shard I/N --out OUT` in a subprocess (`run_shard`), so a shard behaves exactly as if typed by hand
(its lock, resume and one-line errors included), a crash inside TensorFlow cannot take an engine's
worker with it, and its error line comes back from whichever machine ran it. The shards write beside
OUT, so on a cluster OUT (and the dataset and model) must be on storage every node sees.

submitit and Ray are imported only in pipeline.engines, only when their launcher is asked for: the base
install needs neither (`pip install -e ".[slurm]"`, `".[ray]"`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from pipeline import engines
from pipeline.engines import LAUNCHERS, SUBMITIT_CLUSTERS, Report, Running, thread_env  # noqa: F401  (re-exported)


class ShardJob(engines.Job):
    """One shard's command: `python -m extract ARGV` (ARGV ends with --shard I/N)."""


ShardOutcome = engines.Outcome  # how a shard ended (its line names it a shard)


SHARD_COMMAND = ("-m", "extract")  # what a shard runs: `python -m extract ARGV`


def run_shard(job: ShardJob, echo: bool = False, running: Running | None = None,
              on_line: Callable[[str], None] | None = None) -> ShardOutcome:
    """Run one shard in a subprocess and report how it ended. `echo` copies its output to ours (a
    SLURM job's log); `running` tracks the process so that a Ctrl-C can stop it; `on_line` hears each line
    of its output as it comes."""
    return engines.run_module(SHARD_COMMAND, "shard", job, echo, running, on_line)


_failed = engines.failed("shard")


def run_local(jobs: Sequence[ShardJob], report: Report, max_parallel: int | None = None,
              devices: Sequence[str] = (), on_line: Callable[[int, str], None] | None = None) -> list[ShardOutcome]:
    """Each shard as a local process, at most `max_parallel` at once (default: all, or one per device);
    `on_line(shard index, line)` hears each line of their output as it comes (their progress lines)."""
    def run(job: ShardJob, running: Running) -> ShardOutcome:
        hear = (lambda line: on_line(job.index, line)) if on_line is not None else None
        return run_shard(job, running=running, on_line=hear)

    return engines.run_local(jobs, run, report, max_parallel, devices)


def run_submitit(jobs: Sequence[ShardJob], report: Report, folder: Path, cluster: str = "slurm",
                 partition: str | None = None, time_min: int = 120, gpus_per_task: int | None = None,
                 cpus_per_task: int | None = None, max_parallel: int | None = None) -> list[ShardOutcome]:
    """The shards as one job array through submitit (`cluster="local"`: local processes). Waits for every job."""
    settings = engines.SubmititSettings(folder, cluster, partition, time_min, gpus_per_task, cpus_per_task, max_parallel)
    return engines.run_submitit(jobs, run_shard, _failed, report, settings, "extract-features", "shards")


def run_ray(jobs: Sequence[ShardJob], report: Report, address: str | None = None, gpus_per_task: float | None = None,
            cpus_per_task: float | None = None) -> list[ShardOutcome]:
    """The shards as Ray tasks on the cluster at `address` (or the one joined already, or a new local one)."""
    return engines.run_ray(jobs, run_shard, _failed, report, "extract-features", "shard", address, gpus_per_task,
                           cpus_per_task)
