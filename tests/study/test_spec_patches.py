"""PIRL in the paper's form in a study: `pirl-form = ["paper"]` asks for the patches view, the cache config and
extract-features' options follow, and the cost model counts a patch crop by its pixels, not as a full input."""

from __future__ import annotations

from pathlib import Path

import pytest

from heads.options import MethodOptions

from extract.config import ViewSpec
from pipeline.errors import PipelineError
from study.plan.costs import input_equivalents, method_key
from study.plan.estimates import cache_bytes
from study.plan.make import first_settings, make_plan
from study.spec import load_spec
from study.run.stages import extract_argv

from tests.study.conftest import write_spec


def spec_from(tmp_path: Path, study_root: Path, grid: str, views: str = "") -> Path:
    path = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "pirl"),
                      grid=grid, image_size=96)
    if views:
        path.write_text(path.read_text().replace("[views]\n", f"[views]\n{views}\n"))
    return path


def test_paper_form_asks_for_the_patches_view_and_both_forms_for_both(tmp_path, study_root):
    paper = load_spec(spec_from(tmp_path, study_root, 'pirl-form = ["paper"]\n'))
    assert paper.kinds == ("original", "patches")
    both = load_spec(spec_from(tmp_path, study_root, 'pirl-form = ["report", "paper"]\n'))
    assert both.kinds == ("original", "jigsaw", "patches")
    report = load_spec(spec_from(tmp_path, study_root, ""))
    assert report.kinds == ("original", "jigsaw") and "patch_grid" not in report.views_config()


def test_views_config_is_what_extract_features_writes(tmp_path, study_root):
    spec = load_spec(spec_from(tmp_path, study_root, 'pirl-form = ["paper"]\n', "patch_size = 20\npatch_jitter = 4"))
    extract = ViewSpec(spec.kinds, spec.num_views, spec.jigsaw_grid, spec.rcm_grid, spec.rcm_k, spec.patch_grid,
                       spec.patch_size, spec.patch_jitter)
    assert spec.views_config() == extract.as_config(spec.image_size)
    assert spec.views_config()["patch_size"] == 20 and spec.views_config()["patch_jitter"] == 4
    argv = " ".join(extract_argv(make_plan(spec), "train"))
    assert "--views original,patches" in argv and "--patch-grid 3 --patch-size 20 --patch-jitter 4" in argv
    default = load_spec(spec_from(tmp_path, study_root, 'pirl-form = ["paper"]\n'))
    argv = " ".join(extract_argv(make_plan(default), "train"))
    assert "--patch-grid 3" in argv and "--patch-size" not in argv  # VISSL's proportions, resolved by both sides
    assert default.views_config()["patch_size"] == round(32 * 64 / 85)  # a 96-px image: 32-px cells


@pytest.mark.parametrize("views, key", [("patch_size = 40", "[views] patch_size"),
                                        ("patch_size = 20\npatch_jitter = 13", "[views] patch_jitter")])
def test_a_patch_that_does_not_fit_its_cell_is_one_line_naming_the_key(tmp_path, study_root, views, key):
    path = spec_from(tmp_path, study_root, 'pirl-form = ["paper"]\n', views)
    with pytest.raises(PipelineError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}: {key}: expected") and "\n" not in str(e.value)


def test_cost_model_counts_a_patch_by_its_pixels_and_stores_it_in_float16(tmp_path, study_root):
    plan = make_plan(load_spec(spec_from(tmp_path, study_root, 'pirl-form = ["paper"]\n')))
    patch, views = plan.spec.patch_geometry()[1], plan.spec.num_views
    assert plan.per_image == 1 + views * 9 and plan.patch_inputs == views * 9
    assert plan.input_cost == pytest.approx(1 + views * 9 * (patch / 96) ** 2)
    assert input_equivalents(0, 9, 64, 224) == pytest.approx(0.7347, abs=1e-4)  # nine 64-px crops of a 224-px image
    n = plan.splits["train"].images
    assert cache_bytes(plan, "train") == (n * plan.dim * 4 + n * views * 9 * plan.dim * 2, 0)


def test_the_calibration_measures_each_pirl_form_as_its_own_cost(tmp_path, study_root):
    spec = load_spec(spec_from(tmp_path, study_root, 'pirl-form = ["report", "paper"]\n'))
    keys = [method_key(aux, False, options) for aux, options in first_settings(spec)]
    assert keys == ["none", "pirl", "pirl+paper"]
    assert method_key("pirl", True, MethodOptions.of({"pirl_form": "paper"})) == "pirl+paper+spatial"
