"""Shared fixtures: a small synthetic CUB and the random ResNet-50 v2, built once per session."""

from __future__ import annotations

import pytest

from pipeline.sample import make_sample_dataset

IMAGE_SIZE = 64  # plumbing tests: ResNet-50 at 64 px runs ~10x faster than at 224


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    """3 classes x 4 images (6 train, 6 test); metadata files list ids in different orders."""
    return make_sample_dataset(tmp_path_factory.mktemp("sample"), classes=3, images_per_class=4, seed=1,
                               min_side=48, max_side=120, shuffle_metadata=True)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def backbone(model_cache):
    """random-resnet50v2 at 64 px with its spatial map kept (2 x 2 at this size)."""
    from extract.backbone import load_backbone

    return load_backbone("random-resnet50v2", IMAGE_SIZE, spatial=True, seed=0, model_cache=model_cache)
