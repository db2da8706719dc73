"""PIRL in the paper's form (--pirl-form paper): g over the nine cached patch features of a view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heads.methods.models import PatchHead, TorchVisionSSLPIRL
from heads.options import MethodOptions
from heads.methods.pirl import PIRL
from pipeline.reader import read_cache
from pipeline.errors import PipelineError
from tests.support.synthetic import write_synthetic_cache


def test_g_concatenates_the_patches_in_the_stored_order():
    """Stored features sit in the view's shuffled order (position p holds cell perm[p]): g of them equals g of
    the same patches put back in cell order (the inverse permutation) and then taken in the stored order."""
    torch.manual_seed(0)
    model = TorchVisionSSLPIRL(8, 3, pirl_form="paper", jigsaw_head="shared")
    x_pos = torch.randn(4, 9, 8)
    perm = torch.stack([torch.randperm(9) for _ in range(4)])
    inverse = perm.argsort(1)
    x_cell = x_pos.gather(1, inverse[:, :, None].expand(-1, -1, 8))  # x_cell[q] = the patch cut from cell q
    assert torch.equal(x_cell.gather(1, perm[:, :, None].expand(-1, -1, 8)), x_pos)
    g = model.embed_patches(x_pos)
    assert torch.allclose(model.embed_patches(x_cell, perm), g, atol=1e-6)
    assert torch.allclose(model.embed_patches(x_pos, torch.arange(9).expand(4, 9)), g, atol=1e-6)
    # the order matters: the same patches in cell order give another embedding
    assert (model.embed_patches(x_cell) - g).abs().max() > 1e-3
    assert torch.allclose(g.norm(dim=1), torch.ones(4), atol=1e-5)


def test_patch_head_shapes_follow_the_paper():
    head = PatchHead(2048)
    assert head.per_patch.weight.shape == (128, 2048) and head.fc.weight.shape == (128, 1152)


def _fit(path, jigsaw_head: str, k: str = "all"):
    from heads.training.data import FeatureTable, LabelledStream, Scaler, labelled_subset
    from heads.training.step import TrainOptions
    from heads.training.train import fit

    cache = read_cache(path)
    rows = np.arange(len(cache))
    torch.manual_seed(0)
    method = PIRL(3, 8, len(cache), MethodOptions.of({"train_rows": rows, "jigsaw_head": jigsaw_head,
                                                       "pirl_form": "paper", "views": cache.config["views"]}))
    table = FeatureTable.from_cache(cache, {"patches"}, "cpu")
    assert table.views["patches"].shape == (len(cache), 4, 9, 8)
    fit(method, table, rows, rows[:0], Scaler.identity(8), TrainOptions(epochs=2, batch_size=8), progress=False)
    return {key: value.clone() for key, value in method.state_dict().items()}


@pytest.mark.parametrize("jigsaw_head, matters", [("separate", False), ("shared", True)])
def test_patch_views_reach_the_classifier_only_through_a_shared_layer(tmp_path, jigsaw_head, matters):
    states = [_fit(write_synthetic_cache(tmp_path / f"c{s}.h5", num_classes=3, per_class=12, dim=8,
                                         kinds=("original", "patches"), patch_separation=s), jigsaw_head)
              for s in (0.35, 3.0)]  # same originals (the patches are drawn last), different patches
    for key in ("model.head.0.weight", "model.classification_head.weight"):
        assert (not torch.equal(states[0][key], states[1][key])) == matters, key
    assert not torch.equal(states[0]["model.head_patch.fc.weight"], states[1]["model.head_patch.fc.weight"])


def test_paper_form_refuses_a_cache_without_patches(tmp_path):
    from heads.training.experiment import build_method

    cache = read_cache(write_synthetic_cache(tmp_path / "c.h5", num_classes=3, per_class=4, dim=8,
                                             kinds=("original", "jigsaw")))
    with pytest.raises(PipelineError, match="--pirl-form paper needs the patches views.*--views original,jigsaw,patches"):
        build_method("pirl", MethodOptions.of({"pirl_form": "paper", "seed": 0}), cache)


def test_train_heads_paper_form_with_few_labels(tmp_path):
    """train-heads --aux pirl --pirl-form paper --labels-per-class 2 on a cache of original + patches."""
    from click.testing import CliRunner

    from heads.cli import train_main

    train = write_synthetic_cache(tmp_path / "train.h5", num_classes=3, per_class=10, dim=8,
                                  kinds=("original", "patches"))
    test = write_synthetic_cache(tmp_path / "test.h5", split="test", num_classes=3, per_class=4, dim=8, seed=1, first_id=1001,
                                 kinds=("original", "patches"))  # train and test caches pair by their views
    result = CliRunner().invoke(train_main, ["--aux", "pirl", "--pirl-form", "paper", "--jigsaw-head",
                                       "shared", "--labels-per-class", "2", "--epochs", "2", "--batch-size", "8",
                                       "--train", str(train), "--test", str(test), "--out", str(tmp_path / "runs"),
                                       "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert any((tmp_path / "runs").iterdir())
