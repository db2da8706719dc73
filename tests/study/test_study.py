"""`study SPEC` end to end on caches that match the spec (no TensorFlow): the report and its numbers, growth,
refusals, the lock, a SIGKILL at several moments, and a full disk."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.study.conftest import write_matching_caches, write_spec
from tests.support.report import method_row

ALL = ("none", "linear", "pirl", "dcl", "dcl-none")


def run(spec: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", str(spec), *args], capture_output=True, text=True,
                          timeout=timeout)


def metrics_files(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "sweep" / "runs").glob("*/metrics.json")}


def test_report_numbers_recompute_and_tensorflow_never_loads(tmp_path, study_root):
    """The report's test top-1 of each method is the mean over seeds of what predictions.csv gives."""
    from heads.training.metrics import metrics_from_predictions_csv
    from study.report.render import without_timing

    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=ALL,
                      ks=(1, "all"), seeds=(0, 1), grid="aux-weight = [0.1, 1]\n")
    write_matching_caches(spec)
    code = ("import sys; from study.cli import run_study; run_study(sys.argv[1], None); "
            "print('TF-LOADED' if 'tensorflow' in sys.modules else 'TF-ABSENT')")
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TF-ABSENT" in proc.stdout
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    assert "UNTRAINED BACKBONE" in report.split("## Setup")[0]  # at the top, not in a footnote
    assert "has random weights. Every number" in report  # not 'random weights (random (untrained))'
    assert "hierarchical bootstrap" in report and "scored once" in report
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html and "src=\"figures" not in html
    selection = __import__("json").loads((out / "sweep" / "selection.json").read_text())
    for entry in selection["selected"]:
        top1 = np.mean([metrics_from_predictions_csv(out / "sweep" / r / "predictions.csv")["top1"] for r in entry["runs"]])
        k = entry["labels_per_class"]
        section = report.split(f"### K = {k}")[1].split("##")[0]
        line = method_row(section, entry["aux"])
        assert f"| {100 * top1:.2f} ± " in line
    # every run directory that looks finished is finished; unselected runs never saw the test split
    with open(out / "sweep" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * (1 + 1 + 2 + 1 + 1)
    chosen = {r for e in selection["selected"] for r in e["runs"]}
    for row in rows:
        scored = (out / "sweep" / row["run_dir"] / "predictions.csv").is_file()
        assert scored == (row["run_dir"] in chosen)
    assert "evaluate-heads" in report and "train-heads --train" in report
    first = out / "sweep" / selection["selected"][0]["runs"][0]
    check = subprocess.run([sys.executable, "-c", "from heads.cli import evaluate_cli; evaluate_cli()", str(first)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and "matches metrics.json" in check.stdout, check.stderr[-1000:]
    assert without_timing(report) != report  # the timing line is marked


def test_growing_reuses_finished_runs_and_invalidating_changes_are_refused(tmp_path, study_root):
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=("none", "pirl"),
                      grid="aux-weight = [1]\n")
    write_matching_caches(spec)
    assert run(spec).returncode == 0
    before = metrics_files(out)
    assert len(before) == 2
    write_spec(spec, study_root, tmp_path / "f", out, methods=("none", "linear", "pirl"), ks=(1, "all"), seeds=(0, 1),
               grid="aux-weight = [0.1, 1]\n")
    grown = run(spec)
    assert grown.returncode == 0, grown.stderr[-2000:]
    after = metrics_files(out)
    assert len(after) == 2 * 2 * (1 + 1 + 2)
    for name, mtime in before.items():
        # reused as they were; a selected run gets its test split scored, nothing else changes
        assert name in after
        assert (out / "sweep" / "runs" / name / "history.csv").is_file()
    assert "2 of them finished earlier and reused" in grown.stderr
    write_spec(spec, study_root, tmp_path / "f", out, methods=("none", "linear", "pirl"), ks=(1, "all"), seeds=(0, 1),
               grid="aux-weight = [0.1, 1]\n", epochs=4)
    refused = run(spec)
    assert refused.returncode == 2
    assert "epochs (3 before, 4 now)" in refused.stderr and refused.stderr.startswith("error: ")
    assert refused.stderr.count("\n") == 1


def test_a_cache_of_another_configuration_is_refused_with_the_differences(tmp_path, study_root):
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out")
    write_matching_caches(spec, image_size=32)
    proc = run(spec)
    assert proc.returncode == 2
    assert "image_size (32 in the cache, 64 in the spec)" in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_a_second_study_on_the_same_directory_is_refused_with_the_first_ones_pid(tmp_path, study_root):
    from pipeline.files import lock_output

    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out")
    with lock_output(tmp_path / "out" / "study.json", what="study"):
        proc = run(spec)
    assert proc.returncode == 2
    assert f"pid {os.getpid()}" in proc.stderr and "another study" in proc.stderr


def test_a_study_whose_cache_another_study_is_extracting_is_refused_with_that_studys_pid(tmp_path, study_root):
    """Another --out, the same features: the line names the cache and the study extracting it (its extract-features
    child holds the cache's own lock, whose pid the user does not know)."""
    from pipeline.files import lock_output

    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "second")
    cache = tmp_path / "f" / "train.h5"
    with lock_output(Path(str(cache) + ".study"), what="study", names=cache):
        proc = run(spec)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1
    assert last.startswith(f"error: {cache}: another study (pid {os.getpid()}) is writing this file")
    assert not cache.exists()


def _count_done(out: Path) -> int:
    runs = out / "sweep" / "runs"
    return sum(1 for p in runs.glob("*") if (p / "metrics.json").is_file()) if runs.is_dir() else 0


def _kill_when(spec: Path, condition, limit: float = 240) -> bool:
    """Start the study, SIGKILL it once `condition()` holds; False when it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "study", str(spec)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.time()
    while proc.poll() is None and time.time() - start < limit:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    proc.wait()
    return False


@pytest.mark.slow
def test_sigkill_at_several_moments_resumes_to_the_same_report(tmp_path, study_root):
    from study.report.render import without_timing

    out = tmp_path / "out"
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=ALL, ks=(1, "all"), seeds=(0,),
                      grid="aux-weight = [0.1, 1]\n")
    write_matching_caches(spec)
    assert run(spec).returncode == 0
    reference = without_timing((out / "report.md").read_text())
    import shutil

    shutil.rmtree(out)
    total = 2 * 6
    moments = [lambda: (out / "study.json").is_file(), lambda: _count_done(out) >= 1,
               lambda: _count_done(out) >= total // 2, lambda: (out / "sweep" / "selection.json").is_file(),
               lambda: (out / "figures").is_dir()]
    killed = sum(_kill_when(spec, m) for m in moments)
    assert killed >= 3
    (out / "figures").mkdir(exist_ok=True)  # what a kill while writing the report leaves, whether or not one did
    for planted in (out / ".report.html.tmp-0a1b2c3d", out / "figures" / ".label_efficiency.png.tmp-0a1b2c3d"):
        planted.write_text("half")
    final = run(spec)
    assert final.returncode == 0, final.stderr[-2000:]
    assert without_timing((out / "report.md").read_text()) == reference
    assert not [p for p in out.rglob(".*.tmp-*")]  # the resumed study removed every temporary a kill left


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


def test_out_of_disk_during_the_sweep_is_one_line_and_leaves_nothing_that_looks_complete(tmp_path, study_root):
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "700k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = mnt / "out"
        spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=("none", "linear", "pirl"),
                          ks=(1, "all"), seeds=(0, 1), grid="aux-weight = [0.1, 1]\n")
        write_matching_caches(spec)
        short = run(spec)  # the plan sees the disk is short: refused before any work
        assert short.returncode == 2 and "not enough disk space" in short.stderr and str(mnt) in short.stderr
        assert not (out / "sweep").exists()
        proc = run(spec, "--skip-disk-check")
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and sum(ln.startswith("error") for ln in lines) == 1, proc.stderr[-1500:]
        assert "Traceback" not in proc.stderr
        assert "out of disk space" in lines[-1] and "bytes more" in lines[-1] and str(out) in lines[-1]
        assert not (out / "report.md").exists()
        for run_dir in (out / "sweep" / "runs").iterdir():
            if not run_dir.name.endswith(".partial"):
                assert (run_dir / "metrics.json").is_file()  # renamed into place only when complete
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
