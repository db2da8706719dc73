"""Spatial maps and shuffled views out of core (`MapStore`): the same values, batches, losses and metrics as
in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heads.training.data import FeatureTable, MapStore, Scaler, finite_rows, keep_maps_in_memory, stratified_split
from heads.methods.registry import METHODS
from heads.training.step import TrainOptions
from heads.training.train import fit
from pipeline.errors import PipelineError
from pipeline.reader import read_cache
from tests.support.synthetic import write_synthetic_cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("maps") / "train.h5"
    write_synthetic_cache(path, "train", num_classes=4, per_class=12, dim=16, num_views=3,
                          kinds=("original", "rcm"), spatial_shape=(3, 3))
    return read_cache(path)


def test_store_reads_the_cache_rows_in_any_order(cache):
    store = MapStore.stage(cache, "rcm")
    maps = cache.spatial("rcm")
    rows, view = np.array([7, 0, 47, 7, 3]), np.array([2, 0, 1, 1, 2])
    got = store.read(rows, view)
    assert got.dtype == torch.float16 and tuple(got.shape) == (5, 3, 3, 16)
    assert np.array_equal(got.numpy(), maps[rows, view])
    original = MapStore.stage(cache, "original")
    assert np.array_equal(original.read(rows).numpy(), cache.spatial("original")[rows])


def test_scratch_file_removed_on_close(cache, tmp_path):
    store = MapStore.stage(cache, "original", str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_policy():
    cpu = torch.device("cpu")
    assert keep_maps_in_memory("yes", 1 << 40, cpu) and not keep_maps_in_memory("no", 1, cpu)
    assert keep_maps_in_memory("auto", 1 << 20, cpu) and not keep_maps_in_memory("auto", 1 << 40, cpu)
    with pytest.raises(PipelineError, match="--maps-in-memory"):
        keep_maps_in_memory("maybe", 1, cpu)


def test_table_modes(cache):
    assert FeatureTable.from_cache(cache, {"rcm", "spatial"}, "cpu", "yes").maps_in_memory is True
    assert FeatureTable.from_cache(cache, {"rcm", "spatial"}, "cpu", "no").maps_in_memory is False
    assert FeatureTable.from_cache(cache, {"rcm"}, "cpu", "no").maps_in_memory is None
    assert FeatureTable.from_cache(cache, {"rcm"}, "cpu", "no").views_in_memory is False
    assert FeatureTable.from_cache(cache, {"rcm"}, "cpu", "auto").views_in_memory is True  # 9 KB: under the budget
    assert FeatureTable.from_cache(cache, set(), "cpu", "no").views_in_memory is None


@pytest.fixture(scope="module")
def views_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "train.h5"
    write_synthetic_cache(path, "train", num_classes=4, per_class=12, dim=16, num_views=3,
                          kinds=("original", "jigsaw", "patches"))
    return path


def test_views_out_of_core_read_the_cache_rows_in_any_order(views_cache):
    cache = read_cache(views_cache)
    rows, view = np.array([7, 0, 47, 7, 3]), np.array([2, 0, 1, 1, 2])
    for kind, dtype, shape in (("jigsaw", torch.float32, (5, 16)), ("patches", torch.float16, (5, 9, 16))):
        store = MapStore.stage(cache, kind, group="features")
        got = store.read(rows, view)
        assert got.dtype == dtype and tuple(got.shape) == shape
        assert np.array_equal(got.numpy(), cache.features[kind][rows, view])


@pytest.mark.parametrize("form, labels_per_class", [("report", None), ("paper", 3)])
def test_views_out_of_core_give_the_same_training(views_cache, form, labels_per_class):
    """PIRL on jigsaw views (float32) or on patches (float16): exactly the in-memory numbers."""
    cache = read_cache(views_cache, kinds=["original"])
    train_rows, val_rows = stratified_split(cache.label, 0.25, 0)
    labelled = None if labels_per_class is None else train_rows[::4]
    results, modes = [], []
    for mode in ("yes", "no"):
        torch.manual_seed(0)
        method = METHODS["pirl"]({"views": cache.config["views"], "pirl_form": form, "aux_weight": 0.5},
                                 cache.num_classes, cache.feature_dim, len(cache))
        table = FeatureTable.from_cache(cache, method.needs, "cpu", mode)
        modes.append(table.views_in_memory)
        opts = TrainOptions(epochs=3, batch_size=10, lr=0.05, seed=1, precision="fp32")
        results.append(fit(method, table, train_rows, val_rows, Scaler.fit(cache.features["original"], train_rows),
                           opts, progress=False, labelled_rows=labelled))
    assert modes == [True, False]
    memory, blocks = results
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in memory.history] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in blocks.history]
    for k, v in memory.best_state.items():
        assert torch.allclose(v, blocks.best_state[k], rtol=0, atol=0, equal_nan=True), k


def test_a_nan_in_views_read_out_of_core_is_one_line_naming_the_array(tmp_path):
    import h5py

    path = write_synthetic_cache(tmp_path / "train.h5", "train", num_classes=4, per_class=12, dim=16, num_views=3,
                                 kinds=("original", "jigsaw"))
    with h5py.File(path, "r+") as f:
        f["features/jigsaw"][40, 1, 3] = np.nan
    cache = read_cache(path, kinds=["original"])
    for mode in ("no", "yes"):
        with pytest.raises(PipelineError) as e:
            FeatureTable.from_cache(cache, {"jigsaw"}, "cpu", mode)
        assert "features/jigsaw holds NaN or inf (first: row 40" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("labels_per_class", [None, 3])
def test_blockwise_maps_give_the_same_training(cache, labels_per_class):
    """Exact equality (not allclose): both paths hand the method the same float16 maps in the same order."""
    train_rows, val_rows = stratified_split(cache.label, 0.25, 0)
    labelled = None if labels_per_class is None else train_rows[::4]
    results = []
    for mode in ("yes", "no"):
        torch.manual_seed(0)
        method = METHODS["dcl"]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds, "dcl_hidden": 8},
                                cache.num_classes, cache.feature_dim, len(cache))
        table = FeatureTable.from_cache(cache, method.needs, "cpu", mode)
        opts = TrainOptions(epochs=3, batch_size=10, lr=0.05, seed=1, precision="fp32")
        results.append(fit(method, table, train_rows, val_rows, Scaler.identity(cache.feature_dim), opts,
                           progress=False, labelled_rows=labelled))
    memory, blocks = results
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in memory.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in blocks.history]
    assert memory.best_epoch == blocks.best_epoch
    assert torch.equal(memory.best_val["logits"], blocks.best_val["logits"])
    for k, v in memory.best_state.items():
        assert torch.equal(v, blocks.best_state[k]), k


def test_sweep_workers_load_the_maps_as_the_sweep_asked(cache, tmp_path, monkeypatch):
    """--maps-in-memory reaches `python -m heads.search.workers`: the launch plan carries it and the worker's table obeys it."""
    from types import SimpleNamespace

    from heads.search import workers

    test = write_synthetic_cache(tmp_path / "test.h5", "test", num_classes=4, per_class=3, dim=16, num_views=3,
                                 kinds=("original", "rcm"), spatial_shape=(3, 3), first_id=1000)
    caches = SimpleNamespace(train=cache, test=read_cache(test))
    from heads.search.settings import LaunchSettings, SweepSettings

    seen = []
    monkeypatch.setattr(workers, "in_process_executor", lambda c, progress, say: (lambda runs: seen.append(c)))
    for mode, expected in (("no", False), ("yes", True)):
        how = SweepSettings(device="cpu", maps_in_memory=mode, launch=LaunchSettings("local"))
        plan = SimpleNamespace(auxes=["dcl"], sweep_dir=tmp_path / "sweep", how=how)
        execute = workers.executor_for(plan, caches, False, lambda m: None)
        assert execute.caches["maps_in_memory"] == mode
        launch = workers.write_launch_plan(plan.sweep_dir, {**execute.caches, "threads": 1}, [[]])
        assert workers.work(launch, 0) == 0
        assert seen[-1].table.maps_in_memory is expected and seen[-1].test_table.maps_in_memory is expected


def test_scaler_fitted_a_block_of_dimensions_at_a_time_equals_the_whole_array_bit_for_bit():
    rng = np.random.default_rng(0)
    for rows, dim, block in ((300, 16, 256), (300, 257, 256), (200, 31, 3), (50, 1, 256)):
        features = (rng.standard_normal((rows + 20, dim)) * 3 + 1).astype(np.float32)
        picked = np.sort(rng.choice(rows + 20, rows, replace=False))
        whole = features[picked].astype(np.float64)
        scaler = Scaler.fit(features, picked, block)
        assert np.array_equal(scaler.mean.numpy(), whole.mean(0).astype(np.float32))
        assert np.array_equal(scaler.std.numpy(), np.maximum(whole.std(0), 1e-6).astype(np.float32))


def test_finite_rows_checked_a_block_at_a_time():
    arr = np.zeros((10, 2, 4), dtype=np.float32)
    arr[7, 1, 3], arr[3, 0, 0] = np.nan, np.inf
    assert np.flatnonzero(~finite_rows(arr, block=3)).tolist() == [3, 7]
    assert finite_rows(arr[:0]).shape == (0,)


def test_evaluation_batches_that_read_maps_are_capped(cache, monkeypatch):
    import heads.training.data

    monkeypatch.setattr(heads.training.data, "MAP_EVAL_ROWS", 10)
    table = FeatureTable.from_cache(cache, {"rcm", "spatial"}, "cpu", "no")
    rows, scaler = torch.arange(len(table)), Scaler.identity(cache.feature_dim)
    sizes = [len(b["index"]) for b in heads.training.data.eval_batches(table, rows, 1024, scaler, {"spatial"})]
    assert sizes == [10, 10, 10, 10, 8] and len(table) == 48
    assert [len(b["index"]) for b in heads.training.data.eval_batches(table, rows, 1024, scaler, {"rcm"})] == [48]
