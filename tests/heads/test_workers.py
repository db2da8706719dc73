"""sweep-heads --launcher local|slurm|ray --workers N: the same runs.csv (timing aside), selection.json and
summary.csv as the in-process sweep; a killed worker's runs are redone on relaunch; one launch per sweep."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from heads.cli import sweep_main
from heads.search.workers import deal
from tests.support.synthetic import write_synthetic_cache

ROOT = Path(__file__).resolve().parents[2]
GRID = ["--aux", "none,linear", "--weight-decay", "linear=1e-4,1e-1", "--seeds", "0-1", "--epochs", "2",
        "--batch-size", "32", "--precision", "fp32", "--quiet"]  # bf16 kernels sum by thread count (docs/cluster.md)
TIMING = {"seconds"}  # runs.csv columns that are wall times


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("worker-caches")
    kw = dict(num_classes=4, dim=16, separation=0.4)
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=20, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=10, seed=1, first_id=10_000, **kw)}


def argv(caches, out: Path, name: str, *args: str) -> list[str]:
    return ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(out), "--data-root",
            str(out / "no-images"), "--name", name, *GRID, *args]


def sweep(caches, out: Path, name: str, *args: str):
    return CliRunner().invoke(sweep_main, argv(caches, out, name, *args), catch_exceptions=False)


@pytest.fixture(scope="module")
def in_process(caches, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("in-process")
    result = sweep(caches, out, "s")
    assert result.exit_code == 0, result.output
    return out / "s"


def comparable(sweep_dir: Path) -> tuple[list[dict[str, str]], dict, str]:
    """(runs.csv without its timing columns, selection.json, summary.csv)."""
    with open(sweep_dir / "runs.csv", newline="") as f:
        runs = [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]
    return runs, json.loads((sweep_dir / "selection.json").read_text()), (sweep_dir / "summary.csv").read_text()


def assert_same_sweep(a: Path, b: Path) -> None:
    runs_a, selection_a, summary_a = comparable(a)
    runs_b, selection_b, summary_b = comparable(b)
    assert runs_a == runs_b
    assert selection_a == selection_b
    assert summary_a == summary_b


def test_runs_are_dealt_out_in_order_to_at_most_one_worker_each():
    assert deal(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert deal([0, 1], 5) == [[0], [1]]


@pytest.mark.slow
def test_local_workers_give_the_in_process_sweep(caches, in_process, tmp_path):
    result = sweep(caches, tmp_path, "s", "--launcher", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "6 runs on 2 local workers (3, 3 runs each" in result.output
    assert_same_sweep(in_process, tmp_path / "s")
    again = sweep(caches, tmp_path, "s", "--launcher", "local", "--workers", "2")  # all done: no worker starts
    assert again.exit_code == 0 and "6 of 6 runs done earlier, skipped" in again.output
    assert "local workers" not in again.output


@pytest.mark.slow
def test_submitit_local_executor_gives_the_in_process_sweep(caches, in_process, tmp_path):
    pytest.importorskip("submitit")
    result = sweep(caches, tmp_path, "s", "--launcher", "slurm", "--submitit-cluster", "local", "--workers", "2",
                   "--cpus-per-task", "1")
    assert result.exit_code == 0, result.output
    assert f"submitted 2 workers as local submitit jobs (logs in {(tmp_path / 's' / 'workers' / 'submitit').resolve()})" \
        in result.output
    assert_same_sweep(in_process, tmp_path / "s")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_tasks_give_the_in_process_sweep(caches, in_process, tmp_path, ray_cluster):
    result = sweep(caches, tmp_path, "s", "--launcher", "ray", "--workers", "2", "--cpus-per-task", "1")
    assert result.exit_code == 0, result.output
    assert "2 worker tasks, 1 CPU and 0 GPU each" in result.output
    assert_same_sweep(in_process, tmp_path / "s")
    assert ray_cluster.is_initialized()  # a cluster the command did not start is left running


@pytest.mark.slow
def test_successive_halving_across_workers_gives_the_in_process_halving(caches, tmp_path):
    """Each rung is one execute(runs) on the workers; the parent ranks the rung from the runs' files."""
    halving = ["--weight-decay", "linear=1e-4,1e-2,1e-1", "--epochs", "4", "--search", "halving", "--halving-eta", "3",
               "--halving-rungs", "2"]
    assert sweep(caches, tmp_path / "a", "s", *halving).exit_code == 0
    result = sweep(caches, tmp_path / "b", "s", *halving, "--launcher", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert result.output.count("local workers") == 2  # one launch per rung
    assert_same_sweep(tmp_path / "a" / "s", tmp_path / "b" / "s")
    assert any(r["stopped_at_epoch"] for r in comparable(tmp_path / "b" / "s")[0])


def workers_of(pid: int) -> dict[int, int]:
    """worker index -> pid of the worker processes a sweep started (from any of its threads)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            args = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
            if "heads.search.workers" in args:
                found[int(args[args.index("heads.search.workers") + 2])] = int(child)
    return found


def wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def start_sweep(caches, out: Path, *args: str) -> subprocess.Popen:
    code = "from heads.cli import sweep_cli; sweep_cli()"
    return subprocess.Popen([sys.executable, "-c", code, *argv(caches, out, "s", *args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_default)


def ctrl_c_default() -> None:
    """In the child: SIGINT's default action, as from a terminal. A suite started in the background (`cmd &` in a
    script) inherits SIGINT ignored, and so would the sweep, which then rightly ignores Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_a_killed_worker_is_named_with_its_runs_and_they_are_redone_on_relaunch(caches, in_process, tmp_path):
    runs = tmp_path / "s" / "runs"
    proc = start_sweep(caches, tmp_path, "--launcher", "local", "--workers", "2")
    assert wait_for(lambda: (runs / "none_seed=0.partial").is_dir())  # worker 0's first run has begun
    os.kill(workers_of(proc.pid)[0], signal.SIGKILL)  # worker 0, mid-way through its share
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = err.splitlines()
    assert "worker 0/2 FAILED: killed by SIGKILL" in lines
    named = [line for line in lines if line.startswith("  not finished (worker 0/2): ")]
    assert len(named) >= 2  # of worker 0's share: none seed=0, linear wd=0.1 seed=0, linear wd=1e-4 seed=1
    assert lines[-1].startswith(f"error: {len(named)} of 6 runs not finished (1 of 2 workers failed); the finished "
                                "runs are kept")
    assert sum(1 for p in runs.iterdir() if not p.name.endswith(".partial")) == 6 - len(named)
    result = sweep(caches, tmp_path, "s", "--launcher", "local", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert f"{6 - len(named)} of 6 runs done earlier, skipped" in result.output
    assert not any(p.name.endswith(".partial") for p in runs.iterdir())
    assert_same_sweep(in_process, tmp_path / "s")


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_it_started(caches, tmp_path):
    runs = tmp_path / "s" / "runs"
    proc = start_sweep(caches, tmp_path, "--launcher", "local", "--workers", "2", "--epochs", "400")
    assert wait_for(lambda: runs.is_dir() and any(runs.glob("*.partial")))
    assert wait_for(lambda: len(workers_of(proc.pid)) == 2)
    workers = list(workers_of(proc.pid).values())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "interrupted; the workers started were stopped" in err.splitlines()[-1]
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 15)


def test_a_second_launch_on_the_same_sweep_is_refused_with_the_first_ones_pid(caches, tmp_path):
    hold = ("import sys, time; from pipeline.files import lock_output; lock_output(sys.argv[1], what='sweep-heads'); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "s")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = CliRunner().invoke(sweep_main, argv(caches, tmp_path, "s", "--launcher", "local"))
        assert result.exit_code == 2
        assert f"another sweep-heads (pid {holder.pid}) is writing this file" in result.output
        assert not (tmp_path / "s").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_launcher_option_without_its_launcher_is_one_line(caches, tmp_path):
    result = CliRunner().invoke(sweep_main, argv(caches, tmp_path, "s", "--workers", "3"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == "error: --workers is for --launcher local or slurm or ray"
