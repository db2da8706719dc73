"""A study and sweep-heads are one sweep engine (heads.search.sweep.run_sweep): the same grid on the same caches selects
the same settings and scores the same test predictions, whichever command drove it (only the run names differ:
a study names every option off heads' defaults, sweep-heads the options its grid varies)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from heads.cli import sweep_main
from study.cli import run_study
from tests.study.conftest import write_matching_caches, write_spec
from tests.support.report import method_row


def selected_runs(sweep_dir):
    """(aux, K) -> [(seed, the setting's options, predictions.csv text)] of the selected runs."""
    out = {}
    for entry in json.loads((sweep_dir / "selection.json").read_text())["selected"]:
        runs = []
        for seed, rel in zip(entry["seeds"], entry["runs"]):
            options = json.loads((sweep_dir / rel / "config.json").read_text())["options"]
            setting = {k: v for k, v in options.items() if k not in ("command",)}
            runs.append((seed, setting, (sweep_dir / rel / "predictions.csv").read_text()))
        out[entry["aux"], str(entry["labels_per_class"])] = runs
    return out


def test_a_study_and_sweep_heads_on_one_grid_select_and_score_alike(tmp_path, study_root):
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "study",
                      methods=("none", "linear", "pirl"), ks=(1, "all"), seeds=(0, 1), grid="aux-weight = [0.1, 1]\n")
    write_matching_caches(spec)
    run_study(str(spec), None)
    argv = ["--train", str(tmp_path / "f" / "train.h5"), "--test", str(tmp_path / "f" / "test.h5"),
            "--out", str(tmp_path), "--name", "sweep", "--aux", "none,linear,pirl", "--seeds", "0,1",
            "--labels-per-class", "1,all", "--aux-weight", "0.1,1", "--epochs", "3", "--batch-size", "8",
            "--val-per-class", "1", "--precision", "fp32", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(sweep_main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    study, sweep = selected_runs(tmp_path / "study" / "sweep"), selected_runs(tmp_path / "sweep")
    assert set(study) == set(sweep) == {(a, k) for a in ("none", "linear", "pirl") for k in ("1", "all")}
    for key in study:
        assert study[key] == sweep[key], key  # same seeds, setting, and every test prediction


def test_a_run_that_did_not_learn_is_marked_in_the_report_and_never_read_as_an_effect(tmp_path, study_root,
                                                                                     monkeypatch):
    """DCL's adapter planted dead: the study's report marks dcl as not having learned and shows no difference
    against dcl-none as an effect; dcl-none, which learned, keeps its numbers."""
    import torch

    from heads.methods import dcl

    build = dcl.DCLBaseline.__init__

    def dead_on_arrival(self, *args, **kwargs):
        build(self, *args, **kwargs)
        if type(self) is dcl.DCL:
            torch.nn.init.constant_(self.adapter[0].bias, -1e3)

    monkeypatch.setattr(dcl.DCLBaseline, "__init__", dead_on_arrival)
    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "study",
                      methods=("dcl", "dcl-none"), seeds=(0, 1), epochs=6, grid="dcl-hidden = [16]\n")
    write_matching_caches(spec)
    report = run_study(str(spec), None).read_text()
    section = report.split("### K = all")[1]
    assert method_row(section, "dcl").startswith("| dcl (did not learn: dead-units in 2 of 2 seeds) |")
    assert "vs dcl-none: not an effect: dcl did not learn" in method_row(section, "dcl")
    assert method_row(section, "dcl-none").startswith("| dcl-none |")
