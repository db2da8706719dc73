"""A cheaper DCL: --dcl-hidden reaches both DCL networks, --dcl-pca is a fixed PCA fitted on training rows only."""

from __future__ import annotations

from heads.spec import RunSpec

import numpy as np
import pytest
import torch

from heads.training.data import FeatureTable, Scaler, stratified_split
from heads.methods.dcl import DCL, DCLBaseline, FixedPCA
from heads.methods.registry import METHODS
from heads.options import MethodOptions
from heads.training.step import resolve_precision, TrainOptions
from heads.training.train import fit
from pipeline.errors import PipelineError
from pipeline.reader import read_cache
from tests.support.synthetic import write_synthetic_cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("pca") / "train.h5"
    write_synthetic_cache(path, "train", num_classes=4, per_class=12, dim=16, num_views=2,
                          kinds=("original", "rcm"), spatial_shape=(3, 3))
    return read_cache(path)


def options(cache, **extra):
    return {"views": cache.config["views"], "spatial_kinds": cache.spatial_kinds, **extra}


@pytest.mark.parametrize("network", ["pooled", "maps"])
@pytest.mark.parametrize("aux", ["dcl", "dcl-none"])
def test_hidden_width_reaches_both_networks(cache, aux, network):
    method = METHODS[aux](options(cache, dcl_hidden=24, dcl_network=network), 4, 16, len(cache))
    classifier = method.classifier[0] if network == "pooled" else method.classifier  # pooled: none's head
    assert method.adapter[-2].out_features == 24 and classifier.in_features == 24
    if aux == "dcl":
        assert method.adversary.in_features == 24 and method.align.in_features == 24


def test_fixed_pca_finds_the_principal_axes():
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([5.0, 3.0, 1.0, 0.1, 0.1, 0.1])
    x = torch.randn(4000, 6, generator=g) * scales + 2.0
    pca = FixedPCA(6, 2)
    explained = pca.fit(x)
    assert explained == pytest.approx(34 / 35.03, abs=0.02)
    assert torch.allclose(pca.components.T @ pca.components, torch.eye(2), atol=1e-5)
    assert torch.allclose(pca.components.abs(), torch.eye(6)[:, :2], atol=0.05)
    assert torch.allclose(pca.mean, torch.full((6,), 2.0), atol=0.2)
    assert not any(p.requires_grad for p in pca.parameters())  # buffers only: never trained


def test_pca_needs_spatial_maps_and_fewer_channels(cache):
    with pytest.raises(ValueError, match="--dcl-pca"):
        DCLBaseline(4, 16, MethodOptions.of({"dcl_pca": 4}), spatial=False)
    with pytest.raises(ValueError, match="--dcl-pca"):
        DCL(4, 16, MethodOptions.of({"dcl_pca": 16, "views": cache.config["views"]}), spatial=True, grid=7)


def test_pca_fitted_on_training_rows_only(cache, monkeypatch):
    train_rows, val_rows = stratified_split(cache.label, 0.25, 0)
    method = METHODS["dcl"](options(cache, dcl_pca=4, dcl_hidden=8), 4, 16, len(cache))
    table = FeatureTable.from_cache(cache, method.needs, "cpu", "yes")
    asked = []
    real = FeatureTable.spatial_maps

    def spy(self, kind, idx, view):
        asked.append(idx.clone())
        return real(self, kind, idx, view)

    monkeypatch.setattr(FeatureTable, "spatial_maps", spy)
    info = method.prepare_inputs(table, train_rows, seed=3)
    monkeypatch.undo()
    seen = torch.cat(asked).numpy()
    assert set(seen) <= set(train_rows) and not set(seen) & set(val_rows)
    assert info["rows"] == len(train_rows) and info["positions"] == len(train_rows) * 8
    assert 0 < info["explained_variance"] <= 1 and info["dcl_pca"] == 4 and info["seed"] == 3
    assert method.prepare_inputs(table, train_rows, seed=3) is info  # fitted once per seed
    result = fit(method, table, train_rows, val_rows, Scaler.identity(16),
                 TrainOptions(epochs=1, batch_size=16, lr=0.05, seed=3, precision="fp32"), progress=False)
    assert method.inputs_info is info and np.isfinite(result.history[0]["loss"])
    state = method.state_dict()
    assert {"pca.mean", "pca.components"} <= set(state)  # saved with the weights: evaluate-heads applies it


def test_precision_rules():
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(PipelineError, match="fp16"):
        resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize("maps", ["yes", "no"])
def test_pca_maps_projected_once_match_the_online_projection(cache, maps):
    """The loop trains on maps projected once (float16): the same logits as projecting each batch, up to rounding."""
    train_rows, _ = stratified_split(cache.label, 0.25, 0)
    method = METHODS["dcl"](options(cache, dcl_pca=4, dcl_hidden=8), 4, 16, len(cache))
    table = FeatureTable.from_cache(cache, method.needs, "cpu", maps)
    method.prepare_inputs(table, train_rows, seed=0)
    reduced = method.reduced_table(table)
    assert reduced.spatial["rcm"].shape[-1] == 4 and reduced.spatial["original"].shape[-1] == 4
    assert method.reduced_table(table) is reduced  # computed once per fit
    rows = torch.arange(10)
    view = torch.ones(len(cache), dtype=torch.long)
    method.eval()
    with torch.no_grad():
        for kind in ("original", "rcm"):
            raw = method.embed(table.batch(rows, Scaler.identity(16), view)[f"spatial_{kind}"])[0]
            projected = method.embed(reduced.batch(rows, Scaler.identity(16), view)[f"spatial_{kind}"])[0]
            assert torch.allclose(raw, projected, atol=2e-2, rtol=1e-2)


def test_run_config_states_the_pca_and_the_maps_mode(tmp_path):
    from heads.training.artifacts import read_json
    from heads.training.experiment import Caches, run_experiment
    from heads.options import defaults

    train = write_synthetic_cache(tmp_path / "train.h5", "train", num_classes=4, per_class=12, dim=16, num_views=2,
                                  kinds=("original", "rcm"), spatial_shape=(3, 3))
    test = write_synthetic_cache(tmp_path / "test.h5", "test", num_classes=4, per_class=5, dim=16, num_views=2,
                                 kinds=("original", "rcm"), spatial_shape=(3, 3), first_id=1000)
    caches = Caches.load(str(train), str(test), ["dcl"], torch.device("cpu"), log=lambda m: None, maps_in_memory="no")
    options = {**defaults("dcl"), "aux": "dcl", "seed": 0, "standardize": True, "epochs": 1, "batch_size": 16,
               "dcl_pca": 4, "dcl_hidden": 8, "precision": "fp32"}
    run = run_experiment(caches, RunSpec.from_record(options), tmp_path / "run")
    config = read_json(run.run_dir / "config.json")
    assert config["resolved"]["maps_in_memory"] is False
    pca = config["input_transform"]
    assert pca["dcl_pca"] == 4 and pca["rows"] == config["rows"]["train"] and 0 < pca["explained_variance"] <= 1
    assert run.test is not None and 0 <= run.test["top1"] <= 1
