"""A study on a PyTorch backbone (issue 29): `[backbone] handle = "torchvision:resnet50"` with `weights` (and
`device`) reaches extract-features and the backbone probe, a cache of other weights is refused by name, the plan
says the weights are untrained, and a bad spec is one line naming the key. Without torchvision or TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from study.plan.costs import Calibration, MethodCost
from study.plan.make import make_plan, probe_argv
from study.plan.text import describe
from study.spec import load_spec
from study.run.stages import extract_argv

from tests.study.conftest import spec_text, write_matching_caches


def torch_spec(tmp_path: Path, study_root: Path, backbone: str = 'handle = "torchvision:resnet50"\nweights = "random"\n',
               name: str = "s.toml") -> Path:
    text = spec_text(study_root, tmp_path / "f", tmp_path / "out", methods=("none", "dcl"))
    path = tmp_path / name
    path.write_text(text.replace('handle = "random-resnet50v2"\n', backbone))
    return path


def test_weights_and_device_reach_extraction_and_the_probe(tmp_path, study_root):
    spec = load_spec(torch_spec(tmp_path, study_root, 'handle = "torchvision:resnet50"\nweights = "random"\n'
                                                      'device = "cpu"\n'))
    assert spec.backbone == "torchvision:resnet50" and spec.backbone_weights == "random" and spec.untrained_backbone
    plan = make_plan(spec)
    argv = extract_argv(plan, "train")
    assert argv[argv.index("--backbone") + 1] == "torchvision:resnet50"
    assert argv[argv.index("--weights") + 1] == "random" and argv[argv.index("--device") + 1] == "cpu"
    probe = probe_argv(spec, "fp32")
    assert probe[probe.index("--weights") + 1] == "random" and probe[probe.index("--device") + 1] == "cpu"
    plan.calibration = Calibration(methods={a: MethodCost(0.01, 0.001, 0.0001, 0.5, True, 1000)
                                            for a in ("none", "dcl+spatial", "dcl")})
    assert "NOTE: backbone torchvision:resnet50 has random, UNTRAINED weights" in describe(plan)


def test_the_shipped_torch_demo_spec_loads():
    spec = load_spec(Path(__file__).resolve().parents[2] / "studies" / "demo-torch.toml")
    assert (spec.backbone, spec.backbone_weights, spec.backbone_device) == ("torchvision:resnet50", "random", "auto")
    assert spec.untrained_backbone and spec.spatial and spec.backbone_argv() == ["--weights", "random", "--device", "auto"]


def test_a_tf_hub_spec_passes_neither_weights_nor_device(tmp_path, study_root):
    spec = load_spec(torch_spec(tmp_path, study_root, 'handle = "random-resnet50v2"\n'))
    assert spec.backbone_weights is None and spec.backbone_argv() == []
    assert "--weights" not in extract_argv(make_plan(spec), "train") and "--device" not in probe_argv(spec, "fp32")


def test_a_weights_file_is_matched_by_its_hash(tmp_path, study_root):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not really weights; only hashed here")
    path = torch_spec(tmp_path, study_root, f'handle = "torchvision:resnet50"\nweights = "{weights}"\n')
    spec = load_spec(path)
    assert spec.backbone_weights == str(weights) and not spec.untrained_backbone
    write_matching_caches(path)  # its model record says the file's sha256
    assert {s.status for s in make_plan(spec).caches.values()} == {"complete"}
    weights.write_bytes(b"other weights")  # same path, other file: the caches are another configuration
    state = make_plan(load_spec(path)).caches["train"]
    assert state.status == "mismatch" and state.differences[0].startswith("model.weights (")
    with pytest.raises(PipelineError, match=r"a train cache of another configuration is there \(model\.weights"):
        state.refuse_mismatch("train")


def test_random_weights_caches_are_reused_and_a_weights_files_refused(tmp_path, study_root):
    path = torch_spec(tmp_path, study_root)
    write_matching_caches(path)
    assert {s.status for s in make_plan(load_spec(path)).caches.values()} == {"complete"}
    for split in ("train", "test"):
        (tmp_path / "f" / f"{split}.h5").unlink()
    write_matching_caches(path, model={"framework": "torch", "weights": "sha256:" + "0" * 64})
    state = make_plan(load_spec(path)).caches["test"]
    assert state.status == "mismatch" and "model.weights" in state.differences[0]


@pytest.mark.parametrize("backbone, message", [
    ('handle = "torchvision:resnet50"\n', '[backbone] weights: handle \'torchvision:resnet50\' needs weights = "random"'),
    ('handle = "torchvision:resnet50"\nweights = "/nowhere/w.pt"\n', "[backbone] weights: /nowhere/w.pt: no such file"),
    ('handle = "random-resnet50v2"\nweights = "random"\n', "[backbone] weights: is for torchvision:<arch> and timm:<name>"),
    ('handle = "random-resnet50v2"\ndevice = "cpu"\n', "[backbone] device: is for torchvision:<arch> and timm:<name>"),
    ('handle = "torchvision:resnet50"\nweights = "random"\ndevice = "tpu"\n',
     "[backbone] device: expected one of auto, cpu, cuda, found 'tpu'"),
])
def test_bad_backbone_keys_are_one_line_naming_the_key(tmp_path, study_root, backbone, message):
    path = torch_spec(tmp_path, study_root, backbone)
    with pytest.raises(PipelineError) as e:
        load_spec(path)
    assert str(e.value) == f"{path}: {message}" or str(e.value).startswith(f"{path}: {message}"), str(e.value)


def test_the_heads_are_calibrated_at_the_width_and_grid_the_probe_measured(tmp_path, study_root, monkeypatch):
    """No cache yet: a ViT's 768-d features and 14 x 14 token grid (from the backbone probe) replace the plan's
    ResNet-50 defaults before the heads are timed and the disk and memory estimated."""
    import study.plan.calibrate
    from study.plan.make import calibrate

    path = torch_spec(tmp_path, study_root, 'handle = "torchvision:vit_b_16"\nweights = "random"\n')
    plan = make_plan(load_spec(path))
    assert plan.dim == 2048 and plan.spatial_hw == (2, 2)  # the defaults: ResNet-50 at 64 px

    def probe(argv, calibration):
        assert argv[argv.index("--weights") + 1] == "random"
        calibration.backbone_inputs_per_s, calibration.backbone_startup_s = 10.0, 1.0
        calibration.backbone = {"feature_dim": 768, "spatial_shape": [4, 4], "weights": "random (untrained)"}
        return calibration

    seen = {}
    monkeypatch.setattr(study.plan.calibrate, "probe_backbone", probe)
    monkeypatch.setattr(study.plan.calibrate, "calibrate_heads", lambda settings, shapes, *a, **k: seen.update(shapes))
    saved = tmp_path / "calibration.json"
    calibrate(plan, backbone=True, saved=saved)
    assert seen["dim"] == 768 and seen["spatial_hw"] == (4, 4) and (plan.dim, plan.spatial_hw) == (768, (4, 4))
    again = make_plan(load_spec(path))  # a resumed study reuses the saved calibration, shapes included
    calibrate(again, backbone=True, saved=saved)
    assert (again.dim, again.spatial_hw) == (768, (4, 4))
