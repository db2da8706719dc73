"""torchvision backbones (`--backbone torchvision:<arch> --weights random|PATH`): ResNet-50's 2048-d pooled vector and
last conv map, ViT-B/16's 768-d class token and patch-token grid, weights files, and caches that stage 2 trains on.
torchvision is a dependency (constraints.txt pins it with torch); skipped only where it does not import."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

try:
    import torchvision  # noqa: F401
except Exception as e:  # noqa: BLE001  (absent, or a build that does not match torch: 'torchvision::nms does not exist')
    pytest.skip(f"torchvision does not import here ({type(e).__name__}); see docs/extraction.md", allow_module_level=True)

import torch  # noqa: E402

from extract.cli import extract_features  # noqa: E402
from extract.images import load_rgb  # noqa: E402
from pipeline.precision import cpu_has_native_bf16  # noqa: E402
from extract.torch_backbone import load_torch_backbone  # noqa: E402
from extract.torch_nets import build_net  # noqa: E402
from pipeline.errors import PipelineError, run_cli  # noqa: E402
from tests.extract.test_torch_weights import write_safetensors  # noqa: E402
from tests.extract.torch_support import stored_inputs  # noqa: E402

pytestmark = pytest.mark.slow  # builds ResNet-50 and ViT-B/16 (random weights) on the CPU


def load(handle, size, weights="random", spatial=True, seed=0):
    return load_torch_backbone(handle, weights, size, spatial=spatial, seed=seed, device="cpu", precision="fp32")


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, [str(a) for a in args])
    return e.value.code


@pytest.fixture(scope="module")
def resnet():
    return load("torchvision:resnet50", 64)


@pytest.fixture(scope="module")
def vit():
    return load("torchvision:vit_b_16", 32)


def test_resnet50_pools_its_last_conv_map(resnet):
    assert resnet.feature_dim == 2048 and resnet.spatial_shape == (2, 2) and resnet.untrained
    assert resnet.model == {"framework": "torch", "library": "torchvision", "architecture": "resnet50",
                            "weights": "random", "feature_dim": 2048, "grid": [2, 2]}
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    pooled, maps = resnet.embed(images, want_maps=True)
    assert maps.shape == (2, 2, 2, 2048)
    np.testing.assert_allclose(maps.astype(np.float32).mean(axis=(1, 2)), pooled, rtol=1e-2, atol=1e-3)
    model = resnet.net.module  # the same as torchvision's own forward up to its classifier
    with torch.inference_mode():
        x = resnet.normalise(images)
        reference = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(model.layer1(
            model.maxpool(model.relu(model.bn1(model.conv1(x))))))))), 1)
    np.testing.assert_allclose(pooled, reference.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (AMX or AVX512_BF16)")
def test_auto_precision_on_a_bfloat16_cpu_is_bf16_and_close_to_fp32(resnet):
    net = load_torch_backbone("torchvision:resnet50", "random", 64, spatial=False, seed=0, device="cpu", precision="auto")
    assert net.precision == "bf16"  # what --precision auto picks on this CPU, and what the cache then records
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    low, full = net.embed(images)[0].astype(np.float64), resnet.embed(images)[0].astype(np.float64)
    cosines = (low * full).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(full, axis=1)
    assert cosines.min() > 0.99 and not np.allclose(low, full, rtol=1e-3, atol=1e-3)  # near, and really bf16


def test_random_weights_follow_the_seed():
    a, b, c = (build_net("torchvision", "resnet18", "random", seed).module.state_dict()["conv1.weight"]
               for seed in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_vit_b_16_gives_its_class_token_and_a_token_grid(vit):
    assert vit.feature_dim == 768 and vit.spatial_shape == (2, 2)
    assert vit.model["grid"] == [2, 2] and vit.model["patch_size"] == 16
    assert "class token, NOT their mean" in vit.spatial_activation
    images = np.random.default_rng(2).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    pooled, maps = vit.embed(images, want_maps=True)  # another size: the position embeddings are interpolated
    assert pooled.shape == (2, 768) and maps.shape == (2, 3, 3, 768)
    assert not np.allclose(maps.astype(np.float32).mean(axis=(1, 2)), pooled, atol=1e-2)
    with torch.inference_mode():  # at the model's own 224 px, exactly torchvision's forward before its head
        model, x = vit.net.module, vit.normalise(np.zeros((1, 224, 224, 3), np.uint8))
        tokens = model.encoder(torch.cat([model.class_token, model._process_input(x)], dim=1))
        np.testing.assert_allclose(vit.forward(x, False)[0].numpy(), tokens[:, 0].numpy(), rtol=1e-4, atol=1e-5)


def test_a_weights_file_is_loaded_hashed_and_not_untrained(tmp_path):
    state = build_net("torchvision", "resnet18", "random", seed=3).module.state_dict()
    write_safetensors(tmp_path / "r18.safetensors", {k: v for k, v in state.items() if not k.startswith("fc.")})
    net = load("torchvision:resnet18", 64, weights=str(tmp_path / "r18.safetensors"), spatial=False, seed=0)
    same_seed = load("torchvision:resnet18", 64, spatial=False, seed=3)
    images = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(net.embed(images)[0], same_seed.embed(images)[0], rtol=1e-5, atol=1e-6)
    from extract.torch_weights import file_sha256

    assert net.model["weights"] == "sha256:" + file_sha256(tmp_path / "r18.safetensors")
    assert net.weights == "pretrained" and not net.untrained and net.feature_dim == 512
    with pytest.raises(PipelineError, match=r"^--weights .*r18.safetensors: lacks the model's keys: layer1.0.bn3.bias, .* and \d+ more "
                                            r"\(weights of another architecture\?\)$"):
        load("torchvision:resnet50", 64, weights=str(tmp_path / "r18.safetensors"))


def test_vit_weights_of_another_resolution_load(tmp_path):
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    torch.save(vit_b_16(image_size=64).state_dict(), tmp_path / "vit64.pt")  # 4 x 4 position embeddings
    net = load("torchvision:vit_b_16", 32, weights=str(tmp_path / "vit64.pt"))
    assert net.spatial_shape == (2, 2) and net.net.module.encoder.pos_embedding.shape == (1, 17, 768)


def test_unknown_and_unsupported_architectures_are_one_line():
    with pytest.raises(PipelineError, match=r"^--backbone torchvision:resnet49: not a torchvision classification model "
                                            r"\(e\.g\. resnet"):
        load("torchvision:resnet49", 64)
    with pytest.raises(PipelineError, match=r"^--backbone torchvision:alexnet: only torchvision's ResNets"):
        load("torchvision:alexnet", 64)


def test_cli_resnet50_with_maps_and_vit_b_16_write_caches_stage_2_trains_on(sample_root, tmp_path, capsys):
    common = ["--data-root", sample_root, "--num-views", "1", "--quiet", "--weights", "random"]
    for split in ("train", "test"):
        assert cli(*common, "--split", split, "--out", tmp_path / f"{split}.h5", "--backbone", "torchvision:resnet50",
                   "--image-size", 64, "--spatial", "--batch-size", 6, "--precision", "fp32") == 0  # compared exactly below
    out = capsys.readouterr().out
    assert "backbone torchvision:resnet50 [avgpool(layer4)]" in out and "UNTRAINED" in out
    with h5py.File(tmp_path / "train.h5", "r") as f:
        config = json.loads(f.attrs["config"])
        assert f["features/original"].shape == (6, 2048) and f["spatial/rcm"].shape == (6, 1, 2, 2, 2048)
        assert config["model"]["framework"] == "torch" and config["model"]["weights"] == "random"
        assert f.attrs["backbone_weights"] == "random (untrained)"
        row0 = {k: f[k][0] for k in ("features/original", "features/jigsaw", "features/rcm", "permutations/jigsaw",
                                     "permutations/rcm")}
        path = f["path"][0].decode()
    net = load("torchvision:resnet50", 64, spatial=False)  # the model's own output on the stored crops
    image = load_rgb(str(sample_root / "images" / path), 64)
    pooled, _ = net.embed(stored_inputs(image, row0["permutations/jigsaw"], row0["permutations/rcm"], 3, 7))
    np.testing.assert_allclose(row0["features/original"], pooled[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(row0["features/jigsaw"][0], pooled[1], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(row0["features/rcm"][0], pooled[2], rtol=1e-3, atol=1e-3)

    from heads.cli import train_main

    train_main.main(["--train", str(tmp_path / "train.h5"), "--test", str(tmp_path / "test.h5"), "--aux", "dcl",
                     "--epochs", "1", "--out", str(tmp_path / "runs")], standalone_mode=False)
    assert "untrained" in capsys.readouterr().out.lower()

    assert cli(*common, "--split", "train", "--out", tmp_path / "vit.h5", "--backbone", "torchvision:vit_b_16",
               "--image-size", 32, "--spatial", "--batch-size", 6) == 0
    with h5py.File(tmp_path / "vit.h5", "r") as f:
        assert f["features/original"].shape == (6, 768) and f["spatial/original"].shape == (6, 2, 2, 768)
        assert json.loads(f.attrs["config"])["model"]["grid"] == [2, 2]
    capsys.readouterr()
    assert cli(*common, "--split", "train", "--out", tmp_path / "vitp.h5", "--backbone", "torchvision:vit_b_16",
               "--image-size", 48, "--views", "original,patches") == 2
    assert capsys.readouterr().err == ("error: --views patches: the 12 px patch crops are smaller than "
                                       "torchvision:vit_b_16's 16 px patches; raise --image-size or --patch-size\n")


def test_cli_shards_relaunch_and_merge_for_a_torch_backbone(sample_root, tmp_path, capsys, monkeypatch):
    """--shard I/N by hand, then --launcher local finds both shards complete from their files (the torch model's
    config record rebuilt on the CPU, no shard process) and merges them into the unsharded command's cache."""
    from extract.sharding import launch as engines
    from tests.support.caches import assert_same_cache

    common = ["--data-root", sample_root, "--backbone", "torchvision:resnet18", "--weights", "random", "--image-size",
              32, "--views", "original,rcm", "--num-views", 1, "--rcm-grid", 2, "--rcm-k", 1, "--batch-size", 4, "--quiet"]
    assert cli(*common, "--out", tmp_path / "whole.h5") == 0
    out = tmp_path / "train.h5"
    for i in range(2):
        assert cli(*common, "--out", out, "--shard", f"{i}/2") == 0
        assert (tmp_path / f"train.shard-{i}-of-2.h5").is_file()
    capsys.readouterr()
    monkeypatch.setattr(engines, "run_shard", lambda *a, **k: pytest.fail("a shard process was started"))
    assert cli(*common, "--out", out, "--launcher", "local", "--shards", 2) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum("already complete with this configuration" in line for line in lines) == 2, lines
    # the command's own cache records its input check; a merged one does not (docs/cache-schema.md: checked)
    assert_same_cache(tmp_path / "whole.h5", out, ignore_attrs=("merged_from", "input_check"))


def test_the_study_probe_times_a_torch_backbone_without_tensorflow():
    """study.plan.backbone_probe (the plan's calibration) on torchvision:resnet18: its width, map grid and weights, and
    TensorFlow never imported in the probe's process."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import runpy, sys; sys.argv = ['probe', '--backbone', 'torchvision:resnet18', '--weights', 'random', "
            "'--image-size', '64', '--spatial', '--batch', '2', '--batches', '1', '--precision', 'fp32', '--device', "
            "'cpu']\ntry:\n    runpy.run_module('study.plan.backbone_probe', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe, tf_loaded = proc.stdout.strip().splitlines()[-2:]
    out = json.loads(probe)
    assert tf_loaded == "False" and out["inputs_per_s"] > 0 and out["device"] == "cpu" and out["precision"] == "fp32"
    assert out["feature_dim"] == 512 and out["spatial_shape"] == [2, 2] and out["weights"] == "random (untrained)"
    assert out["stand_in"] is None
    # an extraction's finish is timed too: the process's first figure, and the time to its JSON line (its exit after)
    assert 0 < out["figure_s"] < out["elapsed_s"] and out["startup_s"] <= out["elapsed_s"]
