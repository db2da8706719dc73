"""Seed growth toward a target effect ([heads] target_effect, max_seeds): the pilot's spread decides, the grown
sweep reuses every finished run, a rerun reaches the same seeds training nothing, `--plan` prints what the target
costs, and the report states the rule, its decisions and each comparison's power."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import PipelineError
from study.cli import run_study
from study.report.render import without_timing
from study.spec import load_spec
from tests.study.conftest import write_matching_caches, write_spec


def grown_spec(tmp_path, study_root, cap: int = 3, target: float = 0.01):
    return write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "linear"),
                      seeds=(0, 1), epochs=4, extra_heads=f"target_effect = {target}\nmax_seeds = {cap}")


def test_target_and_cap_are_checked_in_one_line_naming_the_key(tmp_path, study_root):
    spec = load_spec(grown_spec(tmp_path, study_root))
    assert (spec.target_effect, spec.max_seeds) == (0.01, 3)
    default = load_spec(write_spec(tmp_path / "d.toml", study_root, tmp_path / "f", tmp_path / "o"))
    assert (default.target_effect, default.max_seeds) == (1.0, None)
    with pytest.raises(PipelineError, match=r"\[heads\] max_seeds: expected at least the 2 seeds"):
        load_spec(grown_spec(tmp_path, study_root, cap=1))
    with pytest.raises(PipelineError, match=r"\[heads\] target_effect: expected points in \(0, 100\]"):
        load_spec(grown_spec(tmp_path, study_root, target=0))


def test_a_pilot_whose_spread_misses_the_target_grows_to_the_cap_reusing_its_runs(tmp_path, study_root, capsys):
    from heads.results.stats import seeds_needed
    from heads.results.summary import named_powers

    path = grown_spec(tmp_path, study_root)
    write_matching_caches(path)
    out = tmp_path / "out"
    run_study(str(path), None)
    log = capsys.readouterr().err
    growth = json.loads((out / "study.json").read_text())["growth"]
    first = growth["steps"][0]
    assert growth["pilot"] == first["seeds"] == [0, 1]
    # the pilot's decision, by hand from its comparisons' spread (none vs linear at K = all): never the effect
    assert first["largest"]["method"] == "none" and first["largest"]["baseline"] == "linear"
    needed = seeds_needed(first["largest"]["s_d"], 0.01 / 100)
    assert first["largest"]["s_d"] > 0 and (needed is None or needed > 3)
    assert first["grow_to"] == 3 and "out of reach" in first["why"]
    assert growth["seeds"] == [0, 1, 2] and len(growth["steps"]) == 2 and growth["steps"][1]["grow_to"] == 3
    assert "seeds: 2 -> 3" in log and "adding seeds 2" in log
    assert "(6 runs, 4 of them finished earlier and reused)" in log  # the pilot's runs: 2 methods x 2 seeds, reused
    selection = json.loads((out / "sweep" / "selection.json").read_text())["selected"]
    assert {tuple(e["seeds"]) for e in selection} == {(0, 1, 2)}
    power = {(a, b): p for a, b, _c, p in named_powers(out / "sweep", 0.01)}
    assert power["none", "linear"].n == 3
    report = (out / "report.md").read_text()
    assert "**Seed growth** (target_effect 0.01 points, max_seeds 3; pilot: seeds 0, 1; now 3 seeds)" in report
    assert "never the observed difference" in report and "## Power" in report and "n = 3" in report
    assert "seeds 0, 1, 2" in report  # Setup: the seeds the study ended with

    run_study(str(path), None)  # a rerun starts from the seeds it grew to: nothing trained, the record kept
    again = capsys.readouterr().err
    assert "seeds: 3, as this study grew them before" in again and "seeds: 2 -> 3" not in again
    assert "(6 runs, 6 of them finished earlier and reused)" in again
    assert json.loads((out / "study.json").read_text())["growth"] == growth
    assert without_timing((out / "report.md").read_text()) == without_timing(report)

    path.write_text(path.read_text().replace("max_seeds = 3", "max_seeds = 4"))  # another cap: decided afresh
    run_study(str(path), None)
    assert "seeds: 2 -> 4" in capsys.readouterr().err
    assert json.loads((out / "study.json").read_text())["growth"]["seeds"] == [0, 1, 2, 3]


def test_the_plan_says_what_the_target_costs(tmp_path, study_root):
    from study.plan.make import calibrate, make_plan
    from study.plan.text import describe

    path = grown_spec(tmp_path, study_root, cap=5)
    write_matching_caches(path)
    plan = make_plan(load_spec(path))
    calibrate(plan, backbone=False, quick=True)
    text = describe(plan)
    line = next(x for x in text.splitlines() if "target:" in x)
    assert "target: 0.01 points (target_effect), seeds grown from the 2 of the spec (the pilot) up to max_seeds 5" in line
    assert "3 more seeds = 6 runs, about" in line  # before the pilot: the cap's cost, 2 runs a seed
    plain = make_plan(load_spec(write_spec(tmp_path / "p.toml", study_root, tmp_path / "f", tmp_path / "o")))
    assert "set [heads] max_seeds to grow the seeds toward it" in describe(plain)
