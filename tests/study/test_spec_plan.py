"""The spec (TOML -> typed, one-line errors naming the key) and the plan (runs, names, rows, disk, the text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from study.plan.costs import (BANK_HEAD_SHARE, Calibration, MethodCost, Rows, bank_seconds, epoch_seconds, method_key,
                         run_seconds)
from study.plan.estimates import disk_shortfalls, run_estimate, stage_seconds
from study.plan.make import make_plan, plan_runs, study_rows, sweep_plan
from study.plan.text import describe
from study.spec import load_spec

from tests.study.conftest import write_spec

ROOT = Path(__file__).resolve().parents[2]


def spec_from(tmp_path: Path, study_root: Path, **kwargs) -> Path:
    return write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", **kwargs)


def test_shipped_specs_load():
    demo = load_spec(ROOT / "studies" / "demo.toml")
    assert set(demo.methods) >= {"none", "linear", "pirl", "dcl", "dcl-none"} and len(demo.seeds) >= 2
    assert demo.spatial and demo.kinds == ("original", "jigsaw", "rcm")
    cub = load_spec(ROOT / "studies" / "cub-label-efficiency.toml", out="elsewhere")
    assert cub.out == Path("elsewhere")
    assert cub.methods == ["none", "linear", "pirl", "dcl", "dcl-none"]
    assert cub.labels_per_class == [1, 2, 5, 10, None] and cub.seeds == [0, 1, 2]


def test_grid_is_written_like_sweep_heads_options_with_per_method_scoping(tmp_path, study_root):
    spec = load_spec(spec_from(tmp_path, study_root, methods=("none", "linear", "pirl"), grid="""\
        aux-weight = [0.01, 0.1]
        classifier-input = ["embedding", "hidden"]
        [grid.linear]
        weight-decay = [1e-4, 1e-2]
        """))
    assert spec.grid["pirl"]["aux_weight"] == [0.01, 0.1]
    assert spec.grid["linear"]["weight_decay"] == [1e-4, 1e-2]
    assert spec.grid["none"]["weight_decay"] == [5e-4]  # the scoped list is the linear probe's only
    assert spec.grid["none"]["classifier_input"] == ["embedding", "hidden"] and "aux_weight" not in spec.grid["none"]
    assert spec.grid["pirl"]["epochs"] == [3]  # [heads] epochs reaches every run


def test_views_and_spatial_maps_follow_the_methods(tmp_path, study_root):
    pooled = load_spec(spec_from(tmp_path, study_root, methods=("none", "pirl")))
    assert pooled.kinds == ("original", "jigsaw") and not pooled.spatial
    maps = load_spec(spec_from(tmp_path, study_root, methods=("none", "dcl")))
    assert maps.kinds == ("original", "rcm") and maps.spatial


@pytest.mark.parametrize("change, message", [
    ({"methods": ("none", "pirl2")}, "[heads] methods: expected distinct methods"),
    ({"grid": "epochs = [3, 4]\n"}, "[grid] epochs: set epochs in [heads]"),
    ({"grid": "aux-weight = [0.1]\n", "methods": ("none",)}, "[grid] aux-weight: applies to pirl, none of which is among [heads] methods"),
    ({"grid": "bogus = [1]\n"}, "[grid] bogus: not an option of sweep-heads"),
    ({"grid": "[grid.dcl]\ndcl-adv-weight = [1]\n"}, "[grid] dcl: [grid.dcl] scopes options to a method"),
    ({"grid": "aux-weight = [-1]\n"}, "[grid] aux-weight"),
    ({"ks": (0,)}, "[heads] labels_per_class: expected a positive integer"),
    ({"extra_heads": "colour = 3"}, "[heads] colour: unknown key"),
    ({"extra_heads": 'interval = "z"'}, "[heads] interval: expected one of bootstrap, t"),
    ({"seeds": (-1,)}, "[heads] seeds: expected seeds from 0 to 2147483647, found -1"),
    ({"seeds": (99999999999999,)}, "[heads] seeds: expected seeds from 0 to 2147483647, found 99999999999999"),
    ({"image_size": 16}, "[backbone] image_size: expected at least 32 (extract-features --image-size refuses less)"),
    ({"edit": ("num_views = 2", "num_views = 2\njigsaw_grid = 1")}, "[views] jigsaw_grid: expected at least 2"),
    ({"edit": ('device = "cpu"', 'device = "gpu"')}, "[heads] device: expected auto, cpu, cuda or cuda:N, found 'gpu'"),
    ({"edit": ('name = "t"', 'name = ""')}, "name: expected a non-empty name"),
    ({"edit": ('out = "', 'out = ""\nignored = "')}, "out: expected a directory for the study"),
])
def test_bad_specs_are_one_line_naming_the_key(tmp_path, study_root, change, message):
    edit = change.pop("edit", None)
    path = spec_from(tmp_path, study_root, **change)
    if edit is not None:
        path.write_text(path.read_text().replace(*edit, 1))
    with pytest.raises(PipelineError) as e:
        load_spec(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_the_study_resolves_the_heads_precision_once_and_every_run_gets_it(tmp_path, study_root, monkeypatch,
                                                                           native, expected):
    import pipeline.precision

    monkeypatch.setattr(pipeline.precision, "cpu_has_native_bf16", lambda *a: native)
    path = spec_from(tmp_path, study_root, methods=("none", "linear"),
                     grid="[grid.linear]\nweight-decay = [1e-4, 1e-2]\n")
    path.write_text(path.read_text().replace('precision = "fp32"\nval_per_class', 'precision = "auto"\nval_per_class'))
    spec = load_spec(path)
    assert spec.heads_precision == "auto"
    plan = make_plan(spec)
    assert plan.heads_precision == expected
    assert {r.options.precision for r in plan.runs} == {expected}
    sweep = sweep_plan(spec, plan.heads_precision)  # what the sweep stage trains
    assert len(sweep.runs) == 3 and {r.spec.options.precision for r in sweep.runs} == {expected}
    assert all(opts["precision"] == [expected] for opts in sweep.grid.values())
    assert not any("precision" in r.label for r in sweep.runs)  # a [heads] setting: not in the run names
    with pytest.raises(ValueError, match="resolve --precision once"):
        sweep_plan(spec, "auto")
    monkeypatch.setattr(pipeline.precision, "cpu_has_native_bf16", lambda *a: False)
    path.write_text(path.read_text().replace('precision = "auto"\nval_per_class', 'precision = "bf16"\nval_per_class'))
    with pytest.raises(PipelineError, match=r"^--precision bf16: this CPU .* has no native bfloat16"):
        make_plan(load_spec(path))


def test_bad_toml_and_missing_file(tmp_path):
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(PipelineError, match="not valid TOML"):
        load_spec(tmp_path / "bad.toml")
    with pytest.raises(PipelineError, match="no such study spec"):
        load_spec(tmp_path / "none.toml")
    with pytest.raises(PipelineError, match="is a directory, not a study spec"):
        load_spec(tmp_path)


def test_runs_per_method_and_k_and_names_that_do_not_depend_on_the_grid(tmp_path, study_root):
    small = load_spec(spec_from(tmp_path, study_root, methods=("none", "pirl"), grid="aux-weight = [1]\n"))
    grown = load_spec(spec_from(tmp_path, study_root, methods=("none", "linear", "pirl"), ks=(1, "all"), seeds=(0, 1),
                                grid="aux-weight = [0.1, 1]\n"))
    runs, _ = plan_runs(grown, "fp32")
    assert len(runs) == 2 * 2 * (1 + 1 + 2)
    assert sum(r.aux == "pirl" and r.k == 1 for r in runs) == 4
    small_names = {(r.label, r.seed) for r in plan_runs(small, "fp32")[0]}
    assert small_names <= {(r.label, r.seed) for r in runs}  # the grown study finds the first one's runs
    from heads.search.grid import Setting, off_default_names

    from study.spec import FIXED_IN_HEADS

    setting = Setting("pirl", (("aux_weight", 0.1), ("labels_per_class", "1"), ("epochs", 9), ("lr", 0.1)))
    assert setting.label(off_default_names(FIXED_IN_HEADS)(setting, [])) == "pirl_aux-weight=0.1_labels-per-class=1"


def test_rows_of_a_run_follow_the_validation_and_label_rules(tmp_path, study_root):
    spec = load_spec(spec_from(tmp_path, study_root))
    assert study_rows(spec, 5994, 200, None) == Rows(5794, 5794, 200, 8)
    assert study_rows(spec, 5994, 200, 5) == Rows(5794, 1000, 200, 8)


def test_cost_model_is_steps_plus_rows():
    cost = MethodCost(step_s=0.01, row_s=0.001, predict_row_s=0.0001, overhead_s=0.5, uses_unlabelled=True,
                      model_bytes=10)
    full = Rows(train=100, labelled=100, val=10, batch=32)
    assert epoch_seconds(cost, full) == pytest.approx(4 * 0.01 + 100 * 0.001 + 10 * 0.0001)
    few = Rows(train=100, labelled=20, val=10, batch=32)  # 4 steps x 20 labelled rows + every row's ssl part
    assert epoch_seconds(cost, few) == pytest.approx(4 * 0.01 + (80 + 100) * 0.001 + 10 * 0.0001)
    cal = Calibration(methods={method_key("pirl", False): cost})
    assert run_seconds("pirl", full, 3, False, cal) == pytest.approx(3 * epoch_seconds(cost, full) + 0.5)


def test_a_bank_shares_its_heads_training_but_not_their_run_directories():
    # three heads of 2 s each, 0.5 s of it each run's own directory (model.pt, figures, files): the training is
    # one pass plus a share per further head, every head writes its own directory
    assert bank_seconds([2.0, 2.0, 2.0], [0.5, 0.5, 0.5]) == pytest.approx(1.5 * (1 + 2 * BANK_HEAD_SHARE) + 3 * 0.5)
    assert bank_seconds([2.0, 1.0]) == pytest.approx(2.0 * (1 + BANK_HEAD_SHARE))


def test_a_validation_pass_costs_its_call_and_its_rows():
    cost = MethodCost(step_s=0.01, row_s=0.001, predict_row_s=0.0001, overhead_s=0.5, uses_unlabelled=True,
                      model_bytes=10, predict_call_s=0.002)
    assert epoch_seconds(cost, Rows(train=64, labelled=64, val=10, batch=32)) == pytest.approx(
        2 * 0.01 + 64 * 0.001 + 0.002 + 10 * 0.0001)
    assert epoch_seconds(cost, Rows(train=64, labelled=64, val=0, batch=32)) == pytest.approx(2 * 0.01 + 64 * 0.001)


def test_plan_text_and_disk_shortfall(tmp_path, study_root):
    spec = load_spec(spec_from(tmp_path, study_root, methods=("none", "linear", "pirl"), ks=(1, "all"), seeds=(0, 1)))
    plan = make_plan(spec)
    cost = MethodCost(0.01, 0.001, 0.0001, 0.5, True, 10 ** 15)  # absurd model size: the disk is short
    plan.calibration = Calibration(methods={a: cost for a in ("none", "linear", "pirl")})
    text = describe(plan)
    for part in ("1 dataset", "2 extract", "3 sweep", "4 report", "runs per method and K", "disk on", "memory:",
                 "UNTRAINED", "total ETA"):
        assert part in text
    assert "SHORT by" in text
    short = disk_shortfalls(plan)
    assert short and "bytes short" in short[0]


def test_the_plan_says_what_the_epoch_rule_could_save_until_this_study_shows_how_far_runs_go(tmp_path, study_root):
    from study.plan.estimates import sweep_earliest

    path = spec_from(tmp_path, study_root, methods=("none", "linear"), epochs=30)
    plan = make_plan(load_spec(path))
    cost = MethodCost(0.01, 0.001, 0.0001, 0.5, True, 1000)
    plan.calibration = Calibration(methods={a: cost for a in ("none", "linear")})
    whole = stage_seconds(plan)["sweep"]
    runs = sum(r.seconds for r in plan.runs)
    overhead = sum(cost.overhead_s for _ in plan.runs)  # a run's own work does not shrink with its epochs
    earliest = sweep_earliest(plan)
    assert earliest == pytest.approx(whole - runs + runs * (6 / 30 * (runs - overhead) + overhead) / runs, rel=1e-6)
    assert "epoch rule (patience 5): every run is planned at its whole 30 epochs" in describe(plan)
    never = make_plan(load_spec(spec_from(tmp_path, study_root, methods=("none",), epochs=30,
                                          extra_heads="patience = 0")))
    never.calibration = plan.calibration
    assert sweep_earliest(never) is None and "epoch rule" not in describe(never)


def test_under_halving_the_epoch_rule_line_stops_the_full_budgets_runs_at_their_earliest(tmp_path, study_root):
    # 3 weight decays of none at 30 epochs: rungs of 3 and 30 epochs (heads.search.halving.rung_epochs), so each
    # run is planned at (3 x 3 + 27) / 3 = 12 epochs; the one survivor enters the full budget at epoch 3 and the rule
    # can stop it after epoch 6 at the earliest: (3 x 3 + 3) / 3 = 4 epochs per run
    from study.plan.estimates import sweep_earliest

    path = spec_from(tmp_path, study_root, methods=("none",), epochs=30, extra_heads='search = "halving"',
                     grid="weight-decay = [1e-5, 1e-4, 1e-3]\n")
    plan = make_plan(load_spec(path))
    assert [(r.epochs, r.full, r.full_from) for r in plan.runs] == [(12.0, pytest.approx(1 / 3), 3)] * 3
    cost = MethodCost(0.01, 0.001, 0.0001, 0.0, True, 1000)  # (no work of a run's own: its seconds go with its epochs)
    plan.calibration = Calibration(methods={"none": cost})
    whole = stage_seconds(plan)["sweep"]
    runs = sum(r.seconds for r in plan.runs)
    assert sweep_earliest(plan) == pytest.approx(whole - runs + runs * 4 / 12, rel=1e-6)
    assert "every run that reaches the full budget is planned at its whole 30 epochs" in describe(plan)


def test_a_resumed_studys_plan_counts_only_the_work_left(tmp_path, study_root):
    # grid: a finished run's estimate is done; halving: a group's epochs trained against its expected epochs (3
    # settings at 30 epochs: 36 expected; rung 1's 3 x 3 done leaves 27, the survivor's)
    import json

    cost = MethodCost(0.01, 0.001, 0.0001, 0.0, True, 1000)
    for search, grid, done_share in (("grid", "", 1.0), ("halving", "weight-decay = [1e-5, 1e-4, 1e-3]\n", 9 / 36)):
        (tmp_path / search).mkdir()
        path = spec_from(tmp_path / search, study_root, methods=("none",), epochs=30, grid=grid,
                         extra_heads=f'search = "{search}"')
        plan = make_plan(load_spec(path))
        plan.calibration = Calibration(methods={"none": cost})
        whole = stage_seconds(plan)["sweep"]
        first = [r for r in plan.runs if r.seed == plan.runs[0].seed]
        for r in first if search == "halving" else first[:1]:
            r.planned.run_dir.mkdir(parents=True)
            (r.planned.run_dir / "metrics.json").write_text(json.dumps({"convergence": {"epochs_trained": 3}}))
        resumed = make_plan(load_spec(path))
        resumed.calibration = plan.calibration
        runs = first if search == "halving" else first[:1]
        assert stage_seconds(resumed)["sweep"] == pytest.approx(whole - done_share * sum(r.seconds for r in runs))



def test_a_resumed_cross_validated_studys_plan_counts_its_finished_fold_and_final_runs_done(tmp_path, study_root):
    # selection = "cv": a (setting, seed) is F fold runs and a share of its (method, K, seed)'s final run; each that
    # finished (under heads.search.cv's names) is done (before, mark_done looked only at the grid's run directories)
    import json

    from heads.search.cv import folds_for

    path = spec_from(tmp_path, study_root, methods=("none",), epochs=30, extra_heads='selection = "cv"',
                     grid="weight-decay = [1e-5, 1e-4]\n")
    plan = make_plan(load_spec(path))
    plan.calibration = Calibration(methods={"none": MethodCost(0.01, 0.001, 0.0001, 0.0, True, 1000)})
    whole = stage_seconds(plan)["sweep"]
    run = plan.runs[0]
    folds = folds_for(run.k, plan.spec.cv_folds)
    finished = [run.planned.run_dir.with_name(f"{run.label}_seed={run.seed}_cv={folds}_fold=1"),
                run.planned.run_dir.with_name(f"{run.label}_seed={run.seed}_cv={folds}_final_epochs=7")]
    for d in finished:
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"convergence": {"epochs_trained": 7}}))
    resumed = make_plan(load_spec(path))
    resumed.calibration = plan.calibration
    group = [r for r in plan.runs if (r.aux, r.k, r.seed) == (run.aux, run.k, run.seed)]
    assert len(group) == 2 and folds > 1 and run.final_s > 0
    one_fold = (run.seconds - run.final_s) / folds
    assert stage_seconds(resumed)["sweep"] == pytest.approx(whole - one_fold - 2 * run.final_s)


def test_report_renders_the_same_blocks_as_markdown_and_self_contained_html(tmp_path):
    from study.report.render import TIMING, Block, to_html, to_markdown, without_timing

    png = tmp_path / "figures" / "f.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG fake")
    blocks = [Block("h1", "Study `x`"), Block("p", "**UNTRAINED** <b>"), Block("list", [f"time 3 s {TIMING}", "a"]),
              Block("table", [["m", "v"], ["pirl", "1 ± 2"]]), Block("img", (png, "fig")), Block("code", "a < b")]
    md = to_markdown(blocks, tmp_path)
    assert "![fig](figures/f.png)" in md and "| pirl | 1 ± 2 |" in md and "```\na < b\n```" in md
    assert without_timing(md).count("time 3 s") == 0 and "- a" in without_timing(md)
    page = to_html(blocks, "t")
    assert "<strong>UNTRAINED</strong> &lt;b&gt;" in page and "<code>x</code>" in page
    assert "data:image/png;base64," in page and "figures/f.png" not in page and "a &lt; b" in page


def test_extraction_runs_extract_features_with_the_spec_options_and_the_launcher(tmp_path, study_root):
    from study.run.stages import extract_argv

    path = spec_from(tmp_path, study_root, methods=("none", "dcl"))
    path.write_text(path.read_text().replace("[extraction]\n", '[extraction]\nlauncher = "local"\nshards = 2\n')
                    .replace("[heads]\n", "[extraction.options]\nmax-parallel = 1\n[heads]\n"))
    plan = make_plan(load_spec(path))
    argv = " ".join(extract_argv(plan, "test"))
    assert "--split test" in argv and "--views original,rcm" in argv and "--spatial" in argv
    assert "--precision fp32" in argv and "--image-size 64" in argv and "--rcm-grid 2" in argv
    assert argv.endswith("--launcher local --shards 2 --max-parallel 1") and "--features" not in argv
    assert "--progress-lines" in argv  # a local launcher sums its shards' rows done for the live ETA
    assert ("extraction on the local launcher in 2 shards: planned as one process on this machine; the shards' own "
            "start-ups and their merge are not in it\n") in describe(plan)
    pooled = make_plan(load_spec(spec_from(tmp_path, study_root, methods=("none", "pirl"))))
    assert "--spatial" not in extract_argv(pooled, "train") and "--views original,jigsaw" in " ".join(
        extract_argv(pooled, "train"))


def test_halving_plan_counts_stoppable_runs_per_method_instead_of_listing_many(tmp_path, study_root):
    grid = "[grid.linear]\nweight-decay = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1]\n"
    few = describe(make_plan(load_spec(write_spec(tmp_path / "a.toml", study_root, tmp_path / "f", tmp_path / "o",
                                                  methods=("none", "linear"), seeds=(0, 1), extra_heads='search = "halving"',
                                                  grid=grid.replace(", 1e-1, 1", "")))))
    assert "8 of 10 runs may be stopped early (marked * below)" in few
    assert sum(line.strip().startswith("* linear_") for line in few.splitlines()) == 8
    many = describe(make_plan(load_spec(write_spec(tmp_path / "b.toml", study_root, tmp_path / "f", tmp_path / "o",
                                                   methods=("none", "linear"), seeds=(0, 1), extra_heads='search = "halving"',
                                                   grid=grid))))
    assert "12 of 14 runs may be stopped early (marked * below)" in many  # 12: still listed
    many = describe(make_plan(load_spec(write_spec(tmp_path / "c.toml", study_root, tmp_path / "f", tmp_path / "o",
                                                   methods=("none", "linear"), seeds=(0, 1, 2), extra_heads='search = "halving"',
                                                   grid=grid))))
    assert "18 of 21 runs may be stopped early (per method: the table below)" in many
    assert not any(line.strip().startswith("* ") for line in many.splitlines())
    rows = {line.split()[0]: line.split() for line in many.splitlines() if line.startswith("  linear ") or line.startswith("  none ")}
    assert rows["linear"][2:4] == ["18", "18"] and rows["none"][2:4] == ["3", "0"]  # total, may stop


def test_a_halving_run_is_planned_to_write_its_directory_once_per_rung_it_trains_in(tmp_path, study_root):
    grid = "[grid.linear]\nweight-decay = [1e-5, 1e-4, 1e-3]\n"
    path = write_spec(tmp_path / "h.toml", study_root, tmp_path / "f", tmp_path / "o", methods=("none", "linear"),
                      epochs=16, extra_heads='search = "halving"', grid=grid)
    plan = make_plan(load_spec(path))
    # 3 linear settings, eta 3, rungs of 2, 5 and 16 epochs: all 3 train 2, the best 1 goes straight to 16 (a group
    # of one is not ranked): 4 rung runs for 3 runs; none has one setting: one rung, its whole 16 epochs
    ends = {r.aux: r.ends for r in plan.runs}
    assert ends == {"linear": pytest.approx(4 / 3), "none": 1.0}
    assert {r.aux: r.epochs for r in plan.runs} == {"linear": pytest.approx((3 * 2 + 14) / 3), "none": 16}
    cost = MethodCost(0.01, 0.001, 0.0001, 0.5, True, 1000)
    plan.calibration = Calibration(methods={a: cost for a in ("none", "linear")})
    linear = next(r for r in plan.runs if r.aux == "linear")
    rows = study_rows(plan.spec, plan.splits["train"].images, plan.classes, linear.k)
    assert run_estimate(plan, linear) == pytest.approx(linear.epochs * epoch_seconds(cost, rows) + 0.5 * 4 / 3)


def test_report_lists_each_methods_settings_compared_and_fixed_options(tmp_path, study_root):
    from study.report.write import grid_rows

    spec = load_spec(write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "o",
                                methods=("none", "linear", "pirl"), epochs=4,
                                grid="aux-weight = [0.1, 1]\njigsaw-head = [\"separate\", \"shared\"]\n"
                                     "[grid.linear]\nweight-decay = [1e-4, 1e-2, 1]\n"))
    header, none, linear, pirl = grid_rows(spec)
    assert header == ["method", "settings compared on validation", "fixed for every run"]
    assert none[:2] == ["none (MLP)", "one setting"] and "`epochs` 4" in none[2] and "`batch-size` 8" in none[2]
    assert linear[1] == "`weight-decay` 0.0001, 0.01, 1.0 (3 settings)" and "weight-decay" not in linear[2]
    assert pirl[1] == "`jigsaw-head` separate, shared; `aux-weight` 0.1, 1.0 (4 settings)"
    assert "`pirl-form` report" in pirl[2] and "labels-per-class" not in " ".join(pirl)  # K is the condition


def test_the_report_estimate_counts_the_intervals_the_report_computes(tmp_path, study_root):
    from study.plan.estimates import report_intervals

    every = load_spec(write_spec(tmp_path / "a.toml", study_root, tmp_path / "f", tmp_path / "o", ks=(1, "all"),
                                 methods=("none", "linear", "pirl", "dcl", "dcl-none")))
    assert report_intervals(every) == 2 * (5 + 2 + 4)  # bands; pirl-none, dcl-dcl-none; four against linear
    two = load_spec(write_spec(tmp_path / "b.toml", study_root, tmp_path / "f", tmp_path / "o", methods=("none", "pirl")))
    assert report_intervals(two) == 1 * (2 + 1 + 0)


def test_a_selected_setting_names_every_option_its_grid_varies_even_at_its_default(tmp_path, study_root):
    from types import SimpleNamespace

    from study.report.results import setting_text

    spec = load_spec(write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "o",
                                grid='aux-weight = [0.01, 0.1]\npirl-form = ["report", "paper"]\n'))
    report_form = SimpleNamespace(aux="pirl", named=["labels-per-class=all", "aux-weight=0.01"])  # as sweep.json records
    assert setting_text(report_form, spec) == "aux-weight=0.01, pirl-form=report"  # the default form, named
    paper = SimpleNamespace(aux="pirl", named=["labels-per-class=all", "aux-weight=0.01", "pirl-form=paper"])
    assert setting_text(paper, spec) == "aux-weight=0.01, pirl-form=paper"
    assert setting_text(SimpleNamespace(aux="none", named=["labels-per-class=all"]), spec) == "defaults"


def test_a_validation_rule_the_training_split_cannot_serve_is_refused_before_any_work(tmp_path):
    """Two images per class leave one training image per class: [heads] val_per_class 1 cannot be served, said
    before extraction (it failed after both caches were extracted)."""
    from pipeline.errors import PipelineError
    from pipeline.sample import make_sample_dataset

    root = make_sample_dataset(tmp_path / "d", classes=3, images_per_class=2, seed=1)
    spec = load_spec(write_spec(tmp_path / "s.toml", root, tmp_path / "f", tmp_path / "o"))
    with pytest.raises(PipelineError, match=r"s\.toml: \[heads\] val_per_class: no validation row can be held out: "
                                            r"every one of the 3 classes has a single training image"):
        make_plan(spec)
    assert not (tmp_path / "f").exists()


def test_the_plan_charges_the_epochs_this_studys_finished_runs_trained_under_the_epoch_rule(tmp_path):
    """study.plan.estimates.epoch_share: per method, the mean share of the ceiling its finished runs trained (a stopped
    run its epochs, a whole run 1); halving's cut runs, failed runs and methods without a finished run do not
    count (the plan then charges the whole ceiling)."""
    from study.plan.estimates import epoch_share

    def run(name, aux, trained, ceiling=20, stopped=None, failed=False):
        d = tmp_path / name
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"aux": aux, "epochs": ceiling, "failed": failed, "convergence": {
            "ceiling": ceiling, "epochs_trained": trained, "stopped_early_after": stopped}}))

    run("a", "none", 10, stopped=10)
    run("b", "none", 20)
    run("c", "none", 7)  # a halving rung's cut run: not the rule's
    run("d", "linear", 5, failed=True)
    run("e", "pirl", 15, stopped=15)
    assert epoch_share(tmp_path) == {"none": 0.75, "pirl": 0.75}
    assert epoch_share(tmp_path / "missing") == {}
