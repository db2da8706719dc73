"""A torch backbone on a CUDA GPU (skipped without one): bf16 and fp16 autocast and channels_last give the CPU's
float32 features within rounding, and an extraction on the GPU writes the cache a CPU extraction writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extract.config import ViewSpec  # noqa: E402
from extract.run import extract_split  # noqa: E402
from extract.torch_device import cuda_available  # noqa: E402
from pipeline.cub import load_cub  # noqa: E402
from tests.extract.torch_support import tiny_backbone  # noqa: E402

pytestmark = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU that torch sees")

SPEC = ViewSpec(("original", "jigsaw", "rcm", "patches"), 2, 3, 7, 2)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_features_match_the_cpus(precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    cpu = tiny_backbone(64).embed(images, want_maps=True)
    gpu_net = tiny_backbone(64, device="cuda", precision=precision)
    gpu = gpu_net.embed(images, want_maps=True)
    assert next(gpu_net.net.module.parameters()).is_cuda
    assert cosines(cpu[0], gpu[0]).min() > (0.9999 if precision == "fp32" else 0.99)
    assert cosines(cpu[1].astype(np.float32), gpu[1].astype(np.float32)).min() > 0.99


def test_a_gpu_extraction_writes_the_cpus_cache(sample_root, tmp_path):
    data = load_cub(sample_root, "train")
    paths = {}
    for device, precision in (("cpu", "fp32"), ("cuda", "bf16" if torch.cuda.is_bf16_supported() else "fp16")):
        paths[device] = tmp_path / f"{device}.h5"
        extract_split(data, tiny_backbone(64, device=device, precision=precision), paths[device], SPEC, 64, 0, True,
                      46, progress=False)
    with h5py.File(paths["cpu"], "r") as a, h5py.File(paths["cuda"], "r") as b:
        for name in ("permutations/jigsaw", "permutations/rcm", "permutations/patches", "offsets/patches"):
            assert np.array_equal(a[name][...], b[name][...]), name
        for name in ("features/original", "features/jigsaw", "features/rcm", "features/patches", "spatial/rcm"):
            assert cosines(a[name][...], b[name][...]).min() > 0.99, name
        assert b.attrs["complete"]
