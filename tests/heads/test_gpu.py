"""Stage 2 on a CUDA device: every method trains with data moved once, maps out of core through pinned
memory, bf16/fp16 autocast. Skipped without a GPU (CI never needs one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heads.training.data import FeatureTable, Scaler, stratified_split
from heads.methods.registry import METHODS
from heads.options import AUX_CHOICES
from heads.training.step import resolve_precision, TrainOptions
from heads.training.train import fit
from pipeline.reader import read_cache
from tests.support.synthetic import write_synthetic_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu") / "train.h5"
    write_synthetic_cache(path, "train", num_classes=4, per_class=12, dim=16, num_views=2, spatial_shape=(3, 3))
    return read_cache(path)


def build(aux, cache):
    torch.manual_seed(0)
    return METHODS[aux]({"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds, "dcl_hidden": 8},
                        cache.num_classes, cache.feature_dim, len(cache))


@pytest.mark.parametrize("aux", AUX_CHOICES)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_method_trains_on_cuda(cache, aux, precision):
    method = build(aux, cache).to("cuda")
    table = FeatureTable.from_cache(cache, set(method.needs), "cuda")
    assert table.original.is_cuda and all(v.is_cuda for v in table.views.values())  # moved once
    train_rows, val_rows = stratified_split(cache.label, 0.25, 0)
    result = fit(method, table, train_rows, val_rows, Scaler.identity(16).to("cuda"),
                 TrainOptions(epochs=2, batch_size=16, lr=0.05, precision=precision), progress=False)
    assert all(np.isfinite(r["loss"]) for r in result.history)


def test_maps_out_of_core_on_cuda_match_in_memory(cache):
    train_rows, val_rows = stratified_split(cache.label, 0.25, 0)
    histories = []
    for mode in ("yes", "no"):
        method = build("dcl", cache).to("cuda")
        table = FeatureTable.from_cache(cache, method.needs, "cuda", mode)
        assert table.maps_in_memory is (mode == "yes")
        result = fit(method, table, train_rows, val_rows, Scaler.identity(16).to("cuda"),
                     TrainOptions(epochs=2, batch_size=16, lr=0.05, precision="fp32"), progress=False)
        histories.append([{k: v for k, v in r.items() if k != "seconds"} for r in result.history])
    assert histories[0] == histories[1]


def test_auto_precision_on_cuda():
    assert resolve_precision("auto", torch.device("cuda")) == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
