"""Cache helpers shared by tests: small hand-filled caches and a whole-file equality check."""

from __future__ import annotations

import h5py
import numpy as np

from pipeline.schema import CacheLayout
from pipeline.writer import CacheWriter
from pipeline.views import make_permutations

VIEWS = {"kinds": ["original", "jigsaw"], "num_views": 2, "jigsaw_grid": 3, "rcm_grid": 7, "rcm_k": 2}


def layout(split="train", ids=(1, 2, 3, 4, 5), **config) -> CacheLayout:
    ids = np.asarray(ids)
    cfg = {"backbone": "synthetic", "image_size": 64, "split": split, "seed": 0, "views": dict(VIEWS),
           "spatial": False, "preprocessing": "p", "dataset": "d", **config}
    return CacheLayout(cfg, ids, ids % 2, [f"c/{i}.jpg" for i in ids], ["001.A", "002.B"], 4,
                       {"jigsaw": make_permutations("jigsaw", 0, ids, 2, 3)})


def fill(path, lay, rows=None):
    w = CacheWriter.open(path, lay)
    for r in rows if rows is not None else [np.arange(len(lay.image_id))]:
        w.write(r, {"features/original": np.full((len(r), 4), r[:, None], np.float32),
                    "features/jigsaw": np.ones((len(r), 2, 4), np.float32)})
    return w



def assert_same_cache(a, b, ignore_attrs=("merged_from",)):
    """Every dataset of two cache files equal (values, shape, dtype, chunks, compression); root attributes
    equal except `ignore_attrs`."""
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
