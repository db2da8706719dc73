"""The plan's memory and disk follow heads' --maps-in-memory auto: maps and views beyond their budgets are read
out of core (not counted in the sweep's memory) through a scratch copy (counted on the scratch filesystem)."""

from __future__ import annotations

import heads.training.data
from study.plan.estimates import (cache_bytes, cache_bytes_in_memory, disk_needs, map_bytes_read, maps_out_of_core,
                             view_bytes_read, views_out_of_core)
from study.plan.make import make_plan
from study.spec import load_spec

from tests.study.conftest import write_spec


def test_maps_beyond_the_budget_leave_memory_and_need_scratch_disk(tmp_path, study_root, monkeypatch):
    plan = make_plan(load_spec(write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out",
                                          methods=("none", "dcl"))))
    _feats, train_maps = cache_bytes(plan, "train")
    _feats, test_maps = cache_bytes(plan, "test")
    assert map_bytes_read(plan) == train_maps + test_maps // (1 + plan.spec.num_views) > 0
    in_memory = cache_bytes_in_memory(plan)
    assert not maps_out_of_core(plan)
    assert not any("out-of-core scratch copy" in kinds for kinds in disk_needs(plan).values())
    monkeypatch.setattr(heads.training.data, "MAPS_MEMORY_BUDGET", map_bytes_read(plan) - 1)
    assert maps_out_of_core(plan)
    assert cache_bytes_in_memory(plan) == in_memory - map_bytes_read(plan)
    scratch = [kinds["out-of-core scratch copy"] for kinds in disk_needs(plan).values() if "out-of-core scratch copy" in kinds]
    assert scratch == [map_bytes_read(plan)]


def test_views_beyond_their_budget_leave_memory_and_need_scratch_disk(tmp_path, study_root, monkeypatch):
    plan = make_plan(load_spec(write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out",
                                          methods=("none", "pirl"))))
    feats, _maps = cache_bytes(plan, "train")
    views = view_bytes_read(plan)
    assert views == feats * plan.spec.num_views // (1 + plan.spec.num_views) > 0  # jigsaw's V views of each row
    in_memory = cache_bytes_in_memory(plan)
    assert not views_out_of_core(plan)
    monkeypatch.setattr(heads.training.data, "VIEWS_MEMORY_BUDGET", views - 1)
    assert views_out_of_core(plan) and cache_bytes_in_memory(plan) == in_memory - views
    scratch = [k["out-of-core scratch copy"] for k in disk_needs(plan).values() if "out-of-core scratch copy" in k]
    assert scratch == [views]


def test_halving_counts_its_rung_states_on_the_study_disk(tmp_path, study_root):
    grid = "[grid.linear]\nweight-decay = [1e-4, 1e-2, 1]\n"
    kw = dict(methods=("none", "linear"), grid=grid)
    plain = make_plan(load_spec(write_spec(tmp_path / "a.toml", study_root, tmp_path / "f", tmp_path / "o", **kw)))
    halving = make_plan(load_spec(write_spec(tmp_path / "b.toml", study_root, tmp_path / "f", tmp_path / "o",
                                             extra_heads='search = "halving"', **kw)))
    assert not any("halving's rung states" in k for k in disk_needs(plain).values())
    (needs,) = [k["halving's rung states"] for k in disk_needs(halving).values() if "halving's rung states" in k]
    assert needs == 3 * 3 * 25 * 2**20  # 3 stoppable linear runs x 3 model.pt, uncalibrated (25 MiB each)
