"""The engines that run a command's jobs, shared by both stages: local processes, a SLURM job array
through submitit, or Ray tasks — never a scheduler of our own.

A job is one `python ARGV` subprocess (a shard of an extraction, a worker of a sweep): run that way it
behaves exactly as if typed by hand, a crash inside it cannot take an engine's worker with it, and its
error line comes back from whichever machine ran it. Each engine function takes the jobs, `run` (one
job -> its outcome, in a subprocess) and `report` (one line per finished job), and waits for all of
them; Ctrl-C stops what it started. The callers (extract.sharding.launch, heads.search.workers) say what a
job's command is and how its outcome reads.

submitit and Ray are imported only here, only when their launcher is asked for: the base install
needs neither (`pip install -e ".[slurm]"`, `".[ray]"`). No TensorFlow, torch or click here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
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

from .errors import PipelineError

LAUNCHERS = ("local", "slurm", "ray")
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")
# an engine's settings -> the launchers they apply to (extraction's shards and a sweep's workers alike)
ENGINE_OPTIONS = {
    "cpus_per_task": LAUNCHERS,
    "gpus_per_task": ("slurm", "ray"),
    "slurm_partition": ("slurm",),
    "slurm_time": ("slurm",),
    "slurm_logs": ("slurm",),
    "submitit_cluster": ("slurm",),
    "ray_address": ("ray",),
}
Report = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """One job of N: its process gets `python <command> ARGV` and `env` added to the environment."""

    index: int
    count: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    """How a job's process ended: exit code, its last line of output, its error line when it failed."""

    returncode: int
    last_line: str
    error: str


def thread_env(cpus: int | None) -> dict[str, str]:
    """Environment that keeps TensorFlow, torch (OpenMP) and oneDNN to `cpus` threads; empty when None."""
    if not cpus:
        return {}
    return {"TF_NUM_INTRAOP_THREADS": str(cpus), "TF_NUM_INTEROP_THREADS": str(cpus), "OMP_NUM_THREADS": str(cpus)}


def error_line(stderr: str, returncode: int) -> str:
    """The last 'error: ...' line of a process's stderr, else its last line, else how it ended."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    if lines:
        return lines[-1]
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


class Running:
    """The job processes one launch has started: `stop()` (on Ctrl-C) ends them and starts no more."""

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
        """SIGTERM every job still running (SIGKILL after `grace` seconds); no job starts after this."""
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
    """A preexec_fn that asks Linux to SIGTERM the job when the thread that started it dies (a launcher
    or a Ray worker that was stopped), so no job outlives it; None where prctl is not available.
    Resolved here, in the parent: the child, forked from a threaded process, must not import anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_process(argv: Sequence[str], env: dict[str, str], echo: bool = False,
                running: Running | None = None, on_line: Callable[[str], None] | None = None) -> Finished | None:
    """Run `python ARGV` (with `env` added) to its end; None when the launch was interrupted before it
    started. `echo` copies its output to ours (a SLURM job's log); `running` lets a Ctrl-C stop it;
    `on_line` hears each line of its stdout as it comes (a shard's progress lines), not only at its end."""
    running = running or Running()
    proc = running.start([sys.executable, *argv], {**os.environ, **env})
    if proc is None:
        return None
    try:
        stdout, stderr = _communicate(proc, on_line) if on_line is not None else proc.communicate()
    finally:
        running.done(proc)
    if echo:
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    lines = [line for line in stdout.splitlines() if line.strip()]
    error = "" if proc.returncode == 0 else error_line(stderr, proc.returncode)
    return Finished(proc.returncode, lines[-1] if lines else "", error)


def _communicate(proc: subprocess.Popen, on_line: Callable[[str], None]) -> tuple[str, str]:
    """proc.communicate(), with each stdout line handed to `on_line` as it comes (stderr drained by a thread, so
    that neither pipe fills while the other is read)."""
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    out = []
    for line in proc.stdout:
        out.append(line)
        on_line(line)
    proc.wait()
    drain.join()
    return "".join(out), "".join(err)


@dataclass(frozen=True)
class Outcome:
    """How one job ended: its exit code, its last line of output, its error line when it failed; `noun` names the
    job in its line ("shard", "worker")."""

    index: int
    count: int
    returncode: int
    summary: str  # the job's last line of output ("wrote ...", "... nothing to do")
    error: str = ""  # its error line when it failed
    noun: str = "job"

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def line(self) -> str:
        if self.ok:  # a job's own last line names what it did
            return self.summary or f"{self.noun} {self.index}/{self.count}: done"
        return f"{self.noun} {self.index}/{self.count} FAILED: {self.error}"


def run_module(command: Sequence[str], noun: str, job: Job, echo: bool = False,
               running: Running | None = None, on_line: Callable[[str], None] | None = None) -> Outcome:
    """One job as `python COMMAND ARGV` in a subprocess (run_process), and how it ended."""
    finished = run_process([*command, *job.argv], job.env, echo, running, on_line)
    if finished is None:
        return Outcome(job.index, job.count, 1, "", "not started: the launch was interrupted", noun)
    return Outcome(job.index, job.count, finished.returncode, finished.last_line, finished.error, noun)


def failed(noun: str) -> Callable[[Job, str], Outcome]:
    """The outcome of a job that an engine could not run (its `why`), for run_submitit and run_ray."""
    return lambda job, why: Outcome(job.index, job.count, 1, "", why, noun)


def import_engine(module: str, launcher: str, extra: str) -> Any:
    """The engine's module, or one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PipelineError(f"--launcher {launcher} needs {module}, which is not installed: "
                            f"pip install -e '.[{extra}]' (or pip install {module})") from None


def import_submitit() -> Any:
    """submitit, imported without its logging set-up: on import it calls logging.config.dictConfig, which
    closes every logging handler this process already has (a host program's, pytest's). Its jobs, in
    their own processes, still configure it as usual."""
    if "submitit" in sys.modules:
        return sys.modules["submitit"]
    previous = os.environ.get("SUBMITIT_LOG_LEVEL")
    os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
    try:
        return import_engine("submitit", "slurm", "slurm")
    finally:
        if previous is None:
            os.environ.pop("SUBMITIT_LOG_LEVEL", None)
        else:
            os.environ["SUBMITIT_LOG_LEVEL"] = previous


def run_local(jobs: Sequence[Job], run: Callable[[Job, Running], Any], report: Report,
              max_parallel: int | None = None, devices: Sequence[str] = ()) -> list[Any]:
    """Each job as a local process, at most `max_parallel` at once (default: all, or one per device).

    With `devices` (GPU ids), the k-th running job sees only devices[k % len(devices)].
    """
    parallel = max_parallel or len(jobs)
    if devices:
        parallel = min(parallel, len(devices))  # never two jobs on one device
    free = list(devices)
    outcomes: list[Any] = []
    running = Running()

    def one(job: Job) -> Any:
        device = free.pop(0) if devices else None
        try:
            env = {**job.env, **({"CUDA_VISIBLE_DEVICES": device} if device is not None else {})}
            return run(dataclasses.replace(job, env=env), running)
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
    except BaseException:  # Ctrl-C: stop the jobs started, start no other
        running.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return outcomes


@dataclass(frozen=True)
class SubmititSettings:
    """A job array's settings (`cluster="local"` runs it as local processes: SLURM's code path, no scheduler)."""

    folder: Path
    cluster: str = "slurm"
    partition: str | None = None
    time_min: int = 120
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    max_parallel: int | None = None


def run_submitit(jobs: Sequence[Job], run: Callable[..., Any], failed: Callable[[Job, str], Any], report: Report,
                 settings: SubmititSettings, name: str, what: str) -> list[Any]:
    """The jobs as one job array through submitit, each calling `run(job, True)`; waits for every job.
    `failed(job, why)` is the outcome of a job that died itself (time limit, node failure, cancelled)."""
    submitit = import_submitit()
    if settings.cluster == "slurm" and shutil.which("sbatch") is None:
        raise PipelineError("--launcher slurm: sbatch is not on this machine's PATH; launch from a machine that "
                            "submits to SLURM (a login node), or use --launcher local or ray")
    executor = submitit.AutoExecutor(folder=str(settings.folder / "%j"), cluster=settings.cluster)
    executor.update_parameters(name=name, timeout_min=settings.time_min, nodes=1, tasks_per_node=1,
                               cpus_per_task=settings.cpus_per_task, gpus_per_node=settings.gpus_per_task,
                               slurm_partition=settings.partition, slurm_array_parallelism=settings.max_parallel)
    handles = executor.map_array(run, list(jobs), [True] * len(jobs))
    array = ("SLURM job array " + handles[0].job_id.split("_")[0] if settings.cluster == "slurm"
             else settings.cluster + " submitit jobs")
    report(f"submitted {len(jobs)} {what} as {array} (logs in {settings.folder})")
    index = {id(h): job for h, job in zip(handles, jobs)}
    outcomes = []
    poll = 15.0 if settings.cluster == "slurm" else 0.5
    try:
        for handle in submitit.helpers.as_completed(handles, poll_frequency=poll):
            job = index[id(handle)]
            try:
                outcome = handle.result()
            except Exception as e:  # noqa: BLE001  (the job itself died: time limit, node failure, cancelled)
                first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                outcome = failed(job, f"job {handle.job_id} ended {handle.state}: {first[:300]} "
                                      f"(log: {handle.paths.stderr})")
            report(outcome.line())
            outcomes.append(outcome)
    except BaseException:  # Ctrl-C: cancel the array's jobs (scancel, or the local processes)
        for handle in handles:
            with contextlib.suppress(Exception):
                handle.cancel(check=False)
        raise
    return outcomes


def run_ray(jobs: Sequence[Job], run: Callable[..., Any], failed: Callable[[Job, str], Any], report: Report,
            name: str, what: str, address: str | None = None, gpus_per_task: float | None = None,
            cpus_per_task: float | None = None) -> list[Any]:
    """The jobs as Ray tasks `run(job)`: on the cluster at `address` (or the one this process already joined,
    or a new local one). One GPU per task when the cluster has GPUs, unless `gpus_per_task` says otherwise."""
    ray = import_engine("ray", "ray", "ray")
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
               f"{len(jobs)} {what} tasks, {cpus_per_task or 1:g} CPU and {gpus:g} GPU each")
        task = ray.remote(run)
        refs = {task.options(num_cpus=cpus_per_task or 1, num_gpus=gpus, max_retries=0,
                             name=f"{name} {what} {job.index}/{job.count}").remote(job): job for job in jobs}
        pending, outcomes = list(refs), []
        try:
            _collect_ray(ray, refs, pending, outcomes, failed, report)
        except BaseException:  # Ctrl-C: cancel the tasks; a job's process dies with its worker
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        return outcomes
    finally:
        if started:
            ray.shutdown()


def _collect_ray(ray: Any, refs: dict, pending: list, outcomes: list, failed: Callable[[Job, str], Any],
                 report: Report) -> None:
    """Wait for the Ray tasks `pending`, reporting and collecting each outcome as it ends."""
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            job = refs[ref]
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as e:  # the task's worker died, or it was cancelled
                first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                outcome = failed(job, f"Ray task failed: {first[:300]}")
            report(outcome.line())
            outcomes.append(outcome)
