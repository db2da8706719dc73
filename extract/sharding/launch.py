"""Run the shards of one extraction on an engine that already exists: local processes, SLURM through
submitit, or Ray — never a scheduler of our own.

Every launcher runs the same thing for shard I of N: `python -m extract <the command's options>
--shard I/N --out OUT` in a subprocess (`run_shard`), so a shard behaves exactly as if typed by hand
(its lock, resume and one-line errors included), a crash inside TensorFlow cannot take an engine's
worker with it, and its error line comes back from whichever machine ran it. The shards write beside
OUT, so on a cluster OUT (and the dataset and model) must be on storage every node sees.

submitit and Ray are imported only here, only when their launcher is asked for: the base install
needs neither (`pip install -e ".[slurm]"`, `".[ray]"`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.errors import PipelineError

LAUNCHERS = ("local", "slurm", "ray")
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class ShardJob:
    """One shard's command: `python -m extract ARGV` (ARGV ends with --shard I/N)."""

    index: int
    count: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)  # added to the environment of its process


@dataclass(frozen=True)
class ShardOutcome:
    index: int
    count: int
    returncode: int
    summary: str  # the shard's last line of output ("wrote ...", "... nothing to do")
    error: str = ""  # its error line when it failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def line(self) -> str:
        if self.ok:  # the shard's own line names its file and shard
            return self.summary or f"shard {self.index}/{self.count}: done"
        return f"shard {self.index}/{self.count} FAILED: {self.error}"


def thread_env(cpus: int | None) -> dict[str, str]:
    """Environment that keeps TensorFlow (and oneDNN/OpenMP) to `cpus` threads; empty when None."""
    if not cpus:
        return {}
    return {"TF_NUM_INTRAOP_THREADS": str(cpus), "TF_NUM_INTEROP_THREADS": str(cpus), "OMP_NUM_THREADS": str(cpus)}


def _error_line(stderr: str, returncode: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    if lines:
        return lines[-1]
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


SHARD_COMMAND = ("-m", "extract")  # what a shard runs: `python -m extract ARGV`


class Running:
    """The shard processes one launch has started: `stop()` (on Ctrl-C) ends them and starts no more."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopped = False

    def start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen | None:
        with self._lock:
            if self.stopped:
                return None
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    text=True, env=env, preexec_fn=_death_signal())
            self._procs.add(proc)
            return proc

    def done(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every shard still running (SIGKILL after `grace` seconds); no shard starts after this."""
        with self._lock:
            self.stopped = True
            procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _death_signal() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the shard when the thread that started it dies (a launcher
    or a Ray worker that was stopped), so no shard outlives it; None where prctl is not available.
    Resolved here, in the parent: the child, forked from a threaded process, must not import anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_shard(job: ShardJob, echo: bool = False, running: Running | None = None) -> ShardOutcome:
    """Run one shard in a subprocess and report how it ended. `echo` copies its output to ours (a
    SLURM job's log); `running` tracks the process so that a Ctrl-C can stop it."""
    running = running or Running()
    proc = running.start([sys.executable, *SHARD_COMMAND, *job.argv], {**os.environ, **job.env})
    if proc is None:
        return ShardOutcome(job.index, job.count, 1, "", "not started: the launch was interrupted")
    try:
        stdout, stderr = proc.communicate()
    finally:
        running.done(proc)
    if echo:
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    lines = [line for line in stdout.splitlines() if line.strip()]
    error = "" if proc.returncode == 0 else _error_line(stderr, proc.returncode)
    return ShardOutcome(job.index, job.count, proc.returncode, lines[-1] if lines else "", error)


Report = Callable[[str], None]


def _engine(module: str, launcher: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PipelineError(f"--launcher {launcher} needs {module}, which is not installed: "
                            f"pip install -e '.[{extra}]' (or pip install {module})") from None


def _import_submitit() -> Any:
    """submitit, imported without its logging set-up: on import it calls logging.config.dictConfig, which
    closes every logging handler this process already has (a host program's, pytest's). Its jobs, in
    their own processes, still configure it as usual."""
    if "submitit" in sys.modules:
        return sys.modules["submitit"]
    previous = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        return _engine("submitit", "slurm", "slurm")
    finally:
        if previous is None:
            os.environ.pop("SUBMITIT_LOG_LEVEL", None)
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = previous


def run_local(jobs: Sequence[ShardJob], report: Report, max_parallel: int | None = None,
              devices: Sequence[str] = ()) -> list[ShardOutcome]:
    """Each shard as a local process, at most `max_parallel` at once (default: all, or one per device).

    With `devices` (GPU ids), the k-th running shard sees only devices[k % len(devices)].
    """
    parallel = max_parallel or len(jobs)
    if devices:
        parallel = min(parallel, len(devices))  # never two shards on one device
    free = list(devices)
    outcomes: list[ShardOutcome] = []
    running = Running()

    def one(job: ShardJob) -> ShardOutcome:
        device = free.pop(0) if devices else None
        try:
            env = {**job.env, **({"CUDA_VISIBLE_DEVICES": device} if device is not None else {})}
            return run_shard(ShardJob(job.index, job.count, job.argv, env), running=running)
        finally:
            if device is not None:
                free.append(device)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        futures = [pool.submit(one, job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            report(outcome.line())
            outcomes.append(outcome)
    except BaseException:  # Ctrl-C: stop the shards started, start no other
        running.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return outcomes


def run_submitit(jobs: Sequence[ShardJob], report: Report, folder: Path, cluster: str = "slurm",
                 partition: str | None = None, time_min: int = 120, gpus_per_task: int | None = None,
                 cpus_per_task: int | None = None, max_parallel: int | None = None) -> list[ShardOutcome]:
    """The shards as one job array through submitit (`cluster="local"` runs it as local processes, the
    same code path but for the scheduler). Waits for every job."""
    submitit = _import_submitit()
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise PipelineError("--launcher slurm: sbatch is not on this machine's PATH; launch from a machine that "
                            "submits to SLURM (a login node), or use --launcher local or ray")
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    executor.update_parameters(name="extract-features", timeout_min=time_min, nodes=1, tasks_per_node=1,
                               cpus_per_task=cpus_per_task, gpus_per_node=gpus_per_task,
                               slurm_partition=partition, slurm_array_parallelism=max_parallel)
    handles = executor.map_array(run_shard, list(jobs), [True] * len(jobs))
    report(f"submitted {len(jobs)} shards as {'SLURM job array ' + handles[0].job_id.split('_')[0] if cluster == 'slurm' else cluster + ' submitit jobs'}"
           f" (logs in {folder})")
    index = {id(h): job for h, job in zip(handles, jobs)}
    outcomes = []
    poll = 15.0 if cluster == "slurm" else 0.5
    for handle in submitit.helpers.as_completed(handles, poll_frequency=poll):
        job = index[id(handle)]
        try:
            outcome = handle.result()
        except Exception as e:  # noqa: BLE001  (the job itself died: time limit, node failure, cancelled)
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            outcome = ShardOutcome(job.index, job.count, 1, "",
                                   f"job {handle.job_id} ended {handle.state}: {first[:300]} (log: {handle.paths.stderr})")
        report(outcome.line())
        outcomes.append(outcome)
    return outcomes


def run_ray(jobs: Sequence[ShardJob], report: Report, address: str | None = None, gpus_per_task: float | None = None,
            cpus_per_task: float | None = None) -> list[ShardOutcome]:
    """The shards as Ray tasks: on the cluster at `address` (or the one this process already joined, or a
    new local one). One GPU per task when the cluster has GPUs, unless `gpus_per_task` says otherwise."""
    ray = _engine("ray", "ray", "ray")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise PipelineError(f"--ray-address {address}: cannot join the Ray cluster ({str(e).splitlines()[0]})") from None
    try:
        resources = ray.cluster_resources()
        gpus = gpus_per_task if gpus_per_task is not None else (1 if resources.get("GPU", 0) >= 1 else 0)
        report(f"Ray cluster: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
               f"{len(jobs)} shard tasks, {cpus_per_task or 1:g} CPU and {gpus:g} GPU each")
        task = ray.remote(run_shard)
        refs = {task.options(num_cpus=cpus_per_task or 1, num_gpus=gpus, max_retries=0,
                             name=f"extract-features shard {job.index}/{job.count}").remote(job): job for job in jobs}
        pending, outcomes = list(refs), []
        try:
            _collect_ray(ray, refs, pending, outcomes, report)
        except BaseException:  # Ctrl-C: cancel the tasks; a shard process dies with its worker
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        return outcomes
    finally:
        if started:
            ray.shutdown()


def _collect_ray(ray: Any, refs: dict, pending: list, outcomes: list[ShardOutcome], report: Report) -> None:
    """Wait for the Ray tasks `pending`, reporting and collecting each outcome as it ends."""
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            job = refs[ref]
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as e:  # the task's worker died, or it was cancelled
                first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                outcome = ShardOutcome(job.index, job.count, 1, "", f"Ray task failed: {first[:300]}")
            report(outcome.line())
            outcomes.append(outcome)
