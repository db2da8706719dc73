"""timm backbones (`--backbone timm:<name>`, an optional extra): a CNN's last map and a ViT's patch tokens (prefix
tokens dropped) as the spatial map, the model's own pooling and mean/std, and a weights file through timm's own
loader. Skipped where timm is not installed."""

from __future__ import annotations

import numpy as np
import pytest

try:
    import timm  # noqa: F401
except Exception as e:  # noqa: BLE001  (absent, or not importable beside this torch)
    pytest.skip(f"timm does not import here ({type(e).__name__}): pip install timm", allow_module_level=True)

import torch  # noqa: E402

from extract.torch_backbone import load_torch_backbone  # noqa: E402
from extract.torch_nets import build_net  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from tests.extract.test_torch_weights import write_safetensors  # noqa: E402

pytestmark = pytest.mark.slow


def load(handle, size, weights="random", seed=0):
    return load_torch_backbone(handle, weights, size, spatial=True, seed=seed, device="cpu", precision="fp32")


def test_a_cnn_keeps_its_last_map():
    net = load("timm:resnet18", 64)
    assert net.feature_dim == 512 and net.spatial_shape == (2, 2) and net.model["library"] == "timm"
    pooled, maps = net.embed(np.zeros((1, 64, 64, 3), np.uint8), want_maps=True)
    np.testing.assert_allclose(maps.astype(np.float32).mean(axis=(1, 2)), pooled, rtol=1e-2, atol=1e-3)


def test_a_vit_gives_its_patch_tokens_as_a_grid_and_its_own_mean_and_std():
    net = load("timm:vit_small_patch14_dinov2.lvd142m", 56)  # DINOv2's ViT-S/14 (random weights): 4 x 4 tokens
    assert net.feature_dim == 384 and net.spatial_shape == (4, 4) and net.model["patch_size"] == 14
    assert "prefix tokens dropped" in net.spatial_activation
    x = net.normalise(np.random.default_rng(0).integers(0, 256, (1, 56, 56, 3), dtype=np.uint8))
    with torch.inference_mode():
        tokens = net.net.module.forward_features(x)
    pooled, maps = net.forward(x, True)
    np.testing.assert_allclose(maps.float().numpy(), tokens[:, 1:].reshape(1, 4, 4, 384).half().float().numpy())
    clip = load("timm:vit_base_patch16_clip_224.openai", 32)  # CLIP's own normalisation, from timm's config
    assert "normalize(mean=0.4815,0.4578,0.4082;std=0.2686,0.2613,0.2758)" in clip.preprocessing


def test_a_weights_file_goes_through_timms_loader(tmp_path):
    state = build_net("timm", "resnet18", "random", seed=4).module.state_dict()
    write_safetensors(tmp_path / "r18.safetensors", state)
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    from_file = load("timm:resnet18", 64, weights=str(tmp_path / "r18.safetensors"))
    np.testing.assert_allclose(from_file.embed(images)[0], load("timm:resnet18", 64, seed=4).embed(images)[0],
                               rtol=1e-5, atol=1e-6)
    assert from_file.model["weights"].startswith("sha256:") and not from_file.untrained
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(PipelineError, match=r"^--weights .*bad.safetensors: timm could not build the model"):
        load("timm:resnet18", 64, weights=str(tmp_path / "bad.safetensors"))
    with pytest.raises(PipelineError, match=r"^--backbone timm:no_such_net: not a timm model name"):
        load("timm:no_such_net", 64)
