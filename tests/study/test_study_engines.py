"""The study's sweep through sweep-heads' engines ([heads] launcher / workers, search = "halving") and its
dataset ([dataset] name), on caches that match the spec (no TensorFlow)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from tests.study.conftest import write_matching_caches, write_spec


def run(spec: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", str(spec), *args], capture_output=True, text=True,
                          timeout=timeout)


def tables(report: str) -> str:
    """The report's results: every table row from the Results heading to the Reproducing section."""
    part = report.split("## Results")[1].split("## Reproducing")[0]
    return "\n".join(ln for ln in part.splitlines() if ln.startswith("|"))


def test_local_launcher_with_two_workers_gives_the_in_process_report_tables(tmp_path, study_root):
    kwargs = dict(methods=("none", "pirl"), seeds=(0, 1), grid="aux-weight = [0.1, 1]\n")
    here = write_spec(tmp_path / "here.toml", study_root, tmp_path / "f", tmp_path / "here", **kwargs)
    workers = write_spec(tmp_path / "workers.toml", study_root, tmp_path / "f", tmp_path / "workers",
                         extra_heads='launcher = "local"\nworkers = 2', **kwargs)
    write_matching_caches(here)
    first = run(here)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run(workers)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "2 local workers" in second.stderr
    assert list((tmp_path / "workers" / "sweep" / "workers").glob("launch-*.json"))  # the workers' plan was written
    reference = tables((tmp_path / "here" / "report.md").read_text())
    assert reference and tables((tmp_path / "workers" / "report.md").read_text()) == reference


def test_halving_stops_runs_selects_among_survivors_only_and_says_so(tmp_path, study_root):
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", out, methods=("none", "pirl"), seeds=(0, 1),
                      epochs=4, grid="aux-weight = [0.01, 0.1, 1]\n",
                      extra_heads='search = "halving"\nhalving_eta = 3\nhalving_rungs = 2')
    write_matching_caches(spec)
    planned = run(spec, "--plan")
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert "successive halving" in planned.stdout and "6 of 8 runs may be stopped early" in planned.stdout
    assert "* pirl_labels-per-class=all_aux-weight=0.01" in planned.stdout and "* none" not in planned.stdout
    done = run(spec)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "sweep" / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    stopped = {r["run_dir"] for r in rows if r["stopped_at_epoch"]}
    assert len(stopped) == 4 and all(r["search"] == "halving" for r in rows)  # 2 of 3 pirl settings x 2 seeds
    assert all(r["stopped_at_epoch"] == "1" for r in rows if r["run_dir"] in stopped)  # round(4 / 3)
    selection = json.loads((out / "sweep" / "selection.json").read_text())
    chosen = {r for e in selection["selected"] for r in e["runs"]}
    assert chosen and not chosen & stopped
    for run_dir in stopped:  # a stopped run never saw the test split
        assert not (out / "sweep" / run_dir / "predictions.csv").exists()
    report = (out / "report.md").read_text()
    assert "successive halving" in report and "validation records" in report


def test_engine_and_dataset_keys_are_checked(tmp_path, study_root):
    from study.spec import load_spec

    def spec(extra: str = "", dataset: str = "") -> Path:
        path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", extra_heads=extra)
        if dataset:
            path.write_text(path.read_text().replace("[backbone]\n", f"{dataset}\n[backbone]\n"))
        return path

    from study.plan.make import sweep_settings

    assert sweep_settings(load_spec(spec())).launch.launcher is None and load_spec(spec()).dataset == "cub"
    with pytest.raises(PipelineError, match=r"\[heads\] workers: workers need a launcher"):
        load_spec(spec("workers = 2"))
    with pytest.raises(PipelineError, match=r"\[heads\] launcher: expected one of in-process, local"):
        load_spec(spec('launcher = "cluster"'))
    with pytest.raises(PipelineError, match=r"\[heads\] halving_eta: is for search"):
        load_spec(spec("halving_eta = 2"))
    with pytest.raises(PipelineError, match=r"\[dataset\] name: expected one of cub, aircraft"):
        load_spec(spec(dataset='name = "imagenet"'))
    with pytest.raises(PipelineError, match=r"\[dataset.options\] csv: aircraft has no option"):
        load_spec(spec(dataset='name = "aircraft"\n[dataset.options]\ncsv = "x.csv"'))
    aircraft = load_spec(spec(dataset='name = "aircraft"\n[dataset.options]\nlevel = "family"'))
    assert aircraft.dataset == "aircraft" and aircraft.dataset_options == {"level": "family"}


def test_the_dataset_is_read_through_its_reader_and_named_to_extract_features(tmp_path, study_root):
    """[dataset] name = "folder" (with its csv option): the plan's split sizes come from pipeline.datasets,
    and extract-features gets --dataset and the reader's option under its own flag."""
    from study.plan.make import make_plan
    from study.spec import load_spec
    from study.run.stages import extract_argv

    root = tmp_path / "pictures"
    lines = ["path,label,split"]
    for split, n in (("train", 4), ("test", 2)):
        for c in ("ant", "bee", "cat"):
            for i in range(n):
                lines.append(f"{split}/{c}/{i}.jpg,{c},{split}")
    root.mkdir()
    (root / "rows.csv").write_text("\n".join(lines) + "\n")
    path = write_spec(tmp_path / "s.toml", root, tmp_path / "f", tmp_path / "out")
    path.write_text(path.read_text().replace("[backbone]\n", 'name = "folder"\n[dataset.options]\ncsv = "rows.csv"\n'
                                                              "[backbone]\n"))
    plan = make_plan(load_spec(path))
    assert (plan.classes, plan.splits["train"].images, plan.splits["test"].images) == (3, 12, 6)
    argv = extract_argv(plan, "train")
    assert argv[:4] == ["--dataset", "folder", "--folder-csv", "rows.csv"] and f"--data-root {root}" in " ".join(argv)
    cub = make_plan(load_spec(write_spec(tmp_path / "cub.toml", study_root, tmp_path / "f", tmp_path / "out")))
    assert "--dataset" not in extract_argv(cub, "train")  # CUB's argv as before
    missing = write_spec(tmp_path / "m.toml", tmp_path / "nowhere", tmp_path / "f", tmp_path / "out")
    missing.write_text(missing.read_text().replace("[backbone]\n", 'name = "flowers102"\n[backbone]\n'))
    with pytest.raises(PipelineError, match=r"\[dataset\] flowers102 at .*nowhere"):
        make_plan(load_spec(missing))
