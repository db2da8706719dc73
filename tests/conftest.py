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


def assert_same_cache(a, b, ignore_attrs=("merged_from",)):
    """Every dataset of two cache files equal (values, shape, dtype, chunks, compression); root attributes
    equal except `ignore_attrs`."""
    import h5py
    import numpy as np

    def datasets(f):
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sorted(names)

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert datasets(fa) == datasets(fb)
        for name in datasets(fa):
            x, y = fa[name], fb[name]
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x[...], y[...]), name
            if not (x.is_virtual or y.is_virtual):
                assert (x.chunks, x.compression, x.compression_opts, x.shuffle) == \
                       (y.chunks, y.compression, y.compression_opts, y.shuffle), name
        attrs = lambda f: {k: v for k, v in f.attrs.items() if k not in ignore_attrs}  # noqa: E731
        assert attrs(fa).keys() == attrs(fb).keys()
        for key, value in attrs(fa).items():
            assert np.array_equal(value, attrs(fb)[key]), key
        assert fa.attrs["config_hash"] == fb.attrs["config_hash"] and fb.attrs["complete"]
