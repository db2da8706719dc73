"""How a sweep runs, typed once at the edge: its search (grid or halving), its selection (validation or
cross-validation), which weights it keeps, and where its runs train (device, maps, launcher and workers).

sweep-heads fills it from its options (`SweepSettings.of_command`), a study from its spec
(study.plan.make.sweep_plan); the sweep engine (heads.search.sweep) and the executors (heads.search.workers)
read it, never the command's options."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline.errors import PipelineError

from heads.options import LAUNCH_OPTIONS

DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class LaunchSettings:
    """--launcher and its settings (heads.options.launch_options); launcher None: in process."""

    launcher: str | None = None
    workers: int = DEFAULT_WORKERS
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    slurm_partition: str | None = None
    slurm_time: int = 120
    slurm_logs: str | None = None
    submitit_cluster: str = "slurm"
    ray_address: str | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> "LaunchSettings":
        """From the command's options; one line for a setting its launcher ignores."""
        launcher = options.get("launcher")
        given = {k: options[k] for k in LAUNCH_OPTIONS if options.get(k) not in (None, cls.__dataclass_fields__[k].default)}
        for name in given:
            if launcher not in LAUNCH_OPTIONS[name]:
                raise PipelineError(f"--{name.replace('_', '-')} is for --launcher {' or '.join(LAUNCH_OPTIONS[name])}")
        return cls(launcher, **given)

    def threads(self) -> int | None:
        """torch threads per worker: --cpus-per-task, else (local) this machine's cores / workers."""
        if self.cpus_per_task:
            return self.cpus_per_task
        if self.launcher == "local":
            return max(1, len(os.sched_getaffinity(0)) // self.workers)
        return None  # on a cluster: what the scheduler gave the task (SLURM_CPUS_PER_TASK), else torch's default


@dataclass(frozen=True)
class SweepSettings:
    """Everything about a sweep that is not a run's own setting (heads.spec.RunSpec)."""

    keep_weights: str = "selected"  # "selected" or "all": model.pt of which runs survives selection
    search: str = "grid"  # "grid" or "halving" (heads.search.halving)
    halving_eta: int = 3
    halving_rungs: int = 3
    selection: str = "val"  # "val" or "cv" (heads.search.cv)
    cv_folds: int | None = None
    device: str = "auto"
    maps_in_memory: str = "auto"
    launch: LaunchSettings = field(default_factory=LaunchSettings)

    @property
    def cv(self) -> bool:
        return self.selection == "cv"

    @classmethod
    def of_command(cls, options: Mapping[str, Any]) -> "SweepSettings":
        """sweep-heads' options, parsed once (a launcher setting without its launcher: one line)."""
        return cls(options.get("keep_weights") or "selected", options.get("search") or "grid",
                   options.get("halving_eta") or 3, options.get("halving_rungs") or 3,
                   options.get("selection") or "val", options.get("cv_folds"), options.get("device") or "auto",
                   options.get("maps_in_memory") or "auto", LaunchSettings.of(options))
