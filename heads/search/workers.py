"""A sweep's runs spread over workers: `sweep-heads ... --launcher local|slurm|ray --workers N`.

`executor_for(plan, caches, progress, log)` gives the sweep its `execute(runs)`: in this
process (`heads.search.sweep.in_process_executor`, as without --launcher), or `Workers`, which deals the runs not
finished yet out to N workers on an engine of pipeline.engines (local processes, a submitit job array,
Ray tasks) and waits. A worker is `python -m heads.search.workers PLAN I`: it loads the caches once and trains
its share as the sweep does in process (`heads.search.sweep.in_process_executor`: the one experiment function per run), each run written under
<run>.partial and renamed when done. The results are read back from the runs' files by the caller, who
selects on validation, scores the test split once and writes the summary, as in process; a search
strategy calls `execute` once per rung and decides the survivors from the finished runs' files.

Faults: a worker killed mid-run leaves its run .partial, which the next launch redoes; a failed worker
is reported with the runs it did not finish (one line each) and the finished runs are kept; Ctrl-C
stops the workers started. The sweep directory (and the caches) must be on storage every worker sees.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline import engines
from pipeline.errors import PipelineError, fail
from pipeline.files import write_atomically

from heads.training import artifacts
from heads.search.settings import LaunchSettings
from heads.spec import RunSpec
from heads.search.grid import PlannedRun, Setting, SweepPlan
from heads.search.sweep import OnEpoch, OnRun, in_process_executor

Execute = Callable[[list[PlannedRun]], None]
WORKER_COMMAND = ("-m", "heads.search.workers")  # what a worker runs: `python -m heads.search.workers PLAN I`


WorkerOutcome = engines.Outcome  # how a worker ended (its line names it a worker)


def run_worker(job: engines.Job, echo: bool = False, running: engines.Running | None = None) -> WorkerOutcome:
    """One worker in a subprocess (`python -m heads.search.workers PLAN I`); how it ended."""
    return engines.run_module(WORKER_COMMAND, "worker", job, echo, running)


_failed = engines.failed("worker")


def run_name(run: PlannedRun) -> str:
    return f"{run.label} seed={run.seed}"


# --- the parent: plan the shares, launch, wait, report ----------------------------------------------
def deal(runs: Sequence[PlannedRun], workers: int) -> list[list[PlannedRun]]:
    """The runs dealt out in order, one to each worker in turn (neighbouring settings cost alike)."""
    n = min(workers, len(runs))
    return [list(runs[i::n]) for i in range(n)]


def write_launch_plan(sweep_dir: Path, caches: dict[str, Any], shares: list[list[PlannedRun]]) -> Path:
    """sweep_dir/workers/launch-<time>-<pid>.json: the caches to load and each worker's runs."""
    def run_entry(run: PlannedRun) -> dict[str, Any]:
        return {"aux": run.setting.aux, "values": [list(v) for v in run.setting.values], "label": run.label,
                "seed": run.seed, "run_dir": str(Path(run.run_dir).resolve()), "spec": run.spec.record()}

    path = sweep_dir.resolve() / "workers" / f"launch-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.json"
    write_atomically(path, json.dumps({**caches, "shares": [[run_entry(r) for r in s] for s in shares]}, indent=1))
    return path


class Workers:
    """`execute(runs)` on an engine: the runs not finished yet go to the workers; returns once all ended."""

    def __init__(self, settings: LaunchSettings, sweep_dir: Path, caches: dict[str, Any], log: Callable[[str], None]):
        self.settings, self.sweep_dir, self.caches, self.log = settings, Path(sweep_dir), caches, log

    def __call__(self, runs: list[PlannedRun]) -> None:
        pending = [r for r in runs if not artifacts.is_complete(r.run_dir)]
        if len(pending) < len(runs):
            self.log(f"{len(runs) - len(pending)} of {len(runs)} runs done earlier, skipped")
        if not pending:
            return
        shares = deal(pending, self.settings.workers)
        plan = write_launch_plan(self.sweep_dir, {**self.caches, "threads": self.settings.threads()}, shares)
        env = engines.thread_env(self.settings.threads())
        jobs = [engines.Job(i, len(shares), (str(plan), str(i)), env) for i in range(len(shares))]
        self.log(f"{len(pending)} runs on {len(shares)} {self.settings.launcher} workers "
                 f"({', '.join(str(len(s)) for s in shares)} runs each; plan {plan})")
        try:
            outcomes = self.launch(jobs)
        except KeyboardInterrupt:
            raise PipelineError(f"{self.sweep_dir}: interrupted; the workers started were stopped and the finished runs "
                                "are kept: rerun the same command to resume") from None
        self.check(outcomes, shares, len(runs))

    def launch(self, jobs: list[engines.Job]) -> list[WorkerOutcome]:
        s = self.settings
        if s.launcher == "local":
            return engines.run_local(jobs, lambda job, running: run_worker(job, running=running), self.log)
        if s.launcher == "slurm":
            folder = Path(s.slurm_logs) if s.slurm_logs else self.sweep_dir / "workers" / "submitit"
            settings = engines.SubmititSettings(folder.resolve(), s.submitit_cluster, s.slurm_partition, s.slurm_time,
                                                s.gpus_per_task, s.cpus_per_task, None)
            return engines.run_submitit(jobs, run_worker, _failed, self.log, settings, "sweep-heads", "workers")
        return engines.run_ray(jobs, run_worker, _failed, self.log, "sweep-heads", "worker", s.ray_address,
                               s.gpus_per_task, s.cpus_per_task)

    def check(self, outcomes: list[WorkerOutcome], shares: list[list[PlannedRun]], total: int) -> None:
        """Name each failed worker's unfinished runs, one line each; refuse to go on while any is unfinished."""
        unfinished = 0
        for outcome in sorted(outcomes, key=lambda o: o.index):
            missing = [r for r in shares[outcome.index] if not artifacts.is_complete(r.run_dir)]
            unfinished += len(missing)
            if missing and outcome.ok:  # cannot happen unless the files vanished: say so all the same
                self.log(f"worker {outcome.index}/{outcome.count} ended, but its runs below are not complete")
            for run in missing:
                self.log(f"  not finished (worker {outcome.index}/{outcome.count}): {run_name(run)}")
        if unfinished:
            failed = sum(not o.ok for o in outcomes)
            raise PipelineError(f"{unfinished} of {total} runs not finished ({failed} of {len(shares)} workers failed); "
                                "the finished runs are kept: fix the cause and rerun the same command, which trains "
                                "only the runs not finished")


def executor_for(plan: SweepPlan, caches: Any, progress: bool, log: Callable[[str], None],
                 on_run: OnRun | None = None, on_epoch: OnEpoch | None = None) -> Execute:
    """The sweep's `execute(runs)`: in this process (no launcher in the plan's settings; `on_run` hears of each
    run, `on_epoch` of each epoch of the runs training together), else `Workers` loading the same caches."""
    how = plan.how
    if how.launch.launcher is None:
        return in_process_executor(caches, progress, log, on_run, on_epoch)
    spec = {"train": str(Path(caches.train.path).resolve()), "test": str(Path(caches.test.path).resolve()),
            "auxes": list(plan.auxes), "device": how.device, "maps_in_memory": how.maps_in_memory}
    return Workers(how.launch, plan.sweep_dir, spec, log)


# --- the worker: `python -m heads.search.workers PLAN I` ---------------------------------------------------
def planned_run(entry: dict[str, Any]) -> PlannedRun:
    setting = Setting(entry["aux"], tuple((k, v) for k, v in entry["values"]))
    return PlannedRun(setting, entry["label"], int(entry["seed"]), Path(entry["run_dir"]),
                      RunSpec.from_record(entry["spec"]))


def work(plan_file: Path, index: int) -> int:
    """Load the caches once, then train this worker's runs not finished yet in order, as the sweep does in process."""
    import torch

    from heads.training.experiment import Caches, device_of

    plan = json.loads(Path(plan_file).read_text())
    runs = [planned_run(e) for e in plan["shares"][index]]
    threads = plan.get("threads") or int(os.environ.get("SLURM_CPUS_PER_TASK", "0"))
    if threads:
        torch.set_num_threads(threads)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    auxes = plan.get("auxes") or sorted({r.setting.aux for r in runs})
    caches = Caches.load(plan["train"], plan["test"], auxes, device_of(plan["device"]), log=log,
                         maps_in_memory=plan.get("maps_in_memory", "auto"))  # --maps-in-memory, as in process
    pending = [r for r in runs if not artifacts.is_complete(r.run_dir)]
    say = lambda m: print(m, flush=True)  # noqa: E731  (stdout: the engine keeps its last line)
    try:
        in_process_executor(caches, False, say)(pending)  # the runs one after another, as in process
    finally:
        done = sum(artifacts.is_complete(r.run_dir) for r in pending)
        say(f"worker {index}/{len(plan['shares'])}: {done} of {len(pending)} runs trained "
            f"({len(runs) - len(pending)} done earlier)")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        fail("usage: python -m heads.search.workers PLAN.json INDEX (started by sweep-heads --launcher)")
    try:
        raise SystemExit(work(Path(args[0]), int(args[1])))
    except PipelineError as e:
        fail(e)


if __name__ == "__main__":
    main()
