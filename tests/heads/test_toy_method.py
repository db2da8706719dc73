"""Adding a method is its module and one registry line: a toy method (tests/support/toy_method.py, with its own
--toy-scale) is added to heads/methods/registry.py's list and nothing else, then trained by train-heads,
swept by sweep-heads (its own option swept) and run by a study whose [grid] sweeps that option.

The commands run in a fresh interpreter in which the registry is read with the toy's line (every table derived
from it is built once, at import): if any other file listed the methods, a command would refuse "toy" or its
option, or leave it out."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pipeline.sample import make_sample_dataset
from tests.study.conftest import write_spec
from tests.support.synthetic import write_synthetic_cache

ROOT = Path(__file__).resolve().parents[2]

COMMANDS = textwrap.dedent("""\
    import sys
    from pathlib import Path

    from tests.support.toy_method import registry_with_toy

    registry_with_toy()

    from click.testing import CliRunner

    from heads.cli import sweep_main, train_main
    from study.cli import run_study
    from tests.study.conftest import write_matching_caches

    tmp = Path(sys.argv[1])
    caches = ["--train", str(tmp / "train.h5"), "--test", str(tmp / "test.h5"), "--data-root", str(tmp / "none"),
              "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--precision", "fp32", "--quiet"]
    for command, args in ((train_main, ["--aux", "toy", "--toy-scale", "0.5", "--out", str(tmp / "runs")]),
                          (sweep_main, ["--aux", "none,toy", "--toy-scale", "0.5,1", "--seeds", "0", "--name", "s",
                                        "--out", str(tmp / "sweeps")])):
        result = CliRunner().invoke(command, caches + args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    write_matching_caches(tmp / "study.toml")  # the views and maps the study's methods need
    run_study(str(tmp / "study.toml"), None)
""")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_method_added_by_one_registry_line_trains_sweeps_and_runs_in_a_study(tmp_path):
    kw = dict(num_classes=3, dim=8, num_views=2, separation=0.5)
    write_synthetic_cache(tmp_path / "train.h5", "train", per_class=12, seed=0, **kw)
    write_synthetic_cache(tmp_path / "test.h5", "test", per_class=6, seed=1, first_id=10_000, **kw)
    root = make_sample_dataset(tmp_path / "data", classes=3, images_per_class=6, seed=3, min_side=40, max_side=60)
    write_spec(tmp_path / "study.toml", root, tmp_path / "features", tmp_path / "study", methods=("none", "toy"),
               epochs=2, grid="toy-scale = [0.5, 1]\n")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", COMMANDS, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (run,) = (tmp_path / "runs").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["aux"] == "toy" and config["options"]["toy_scale"] == 0.5
    assert "aux_weight" not in config["options"]  # PIRL's option does not apply to toy

    swept = rows(tmp_path / "sweeps" / "s" / "runs.csv")
    assert sorted(r["toy_scale"] for r in swept if r["aux"] == "toy") == ["0.5", "1.0"]
    assert {r["toy_scale"] for r in swept if r["aux"] == "none"} == {""}  # toy's option does not apply to none

    study_runs = rows(tmp_path / "study" / "sweep" / "runs.csv")
    assert sorted(r["toy_scale"] for r in study_runs if r["aux"] == "toy") == ["0.5", "1.0"]
    report = (tmp_path / "study" / "report.md").read_text()
    assert "**toy**: a toy linear layer on the pooled feature times --toy-scale." in report
