"""A torch backbone's options: --backbone torchvision:/timm: with --weights and --device, refused in one line naming
the option before anything loads; where it runs and in which precision (torch's rules beside TensorFlow's)."""

from __future__ import annotations

import pytest

import extract.backbones
import extract.torch_device as device
import pipeline.precision
from extract.cli import extract_features
from pipeline.errors import PipelineError, run_cli


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, [str(a) for a in args])
    return e.value.code


@pytest.fixture
def installed(monkeypatch):
    """As if torchvision and timm were installed (the checks before loading only look them up)."""
    monkeypatch.setattr(extract.backbones, "find_spec", lambda name: object())


@pytest.mark.parametrize("args,message", [
    (["--backbone", "torchvision:resnet50"], "--backbone torchvision:resnet50: needs --weights random (untrained, "
                                              "seeded from --seed) or --weights PATH"),
    (["--backbone", "timm:vit_small_patch14_dinov2", "--weights", "{tmp}/none.safetensors"],
     "--weights {tmp}/none.safetensors: no such file (give 'random' or a local state dict file)"),
    (["--backbone", "torchvision:", "--weights", "random"], "--backbone torchvision:: name the torchvision model, e.g. "
                                                             "torchvision:resnet50"),
    (["--weights", "random"], "--weights: is for torchvision:<arch> and timm:<name> backbones; --backbone https://"),
    (["--backbone", "random-resnet50v2", "--device", "cuda"], "--device cuda: is for torchvision:<arch> and "
                                                              "timm:<name> backbones"),
    (["--device", "tpu"], "Invalid value for '--device': 'tpu' is not one of 'auto', 'cpu', 'cuda'"),
])
def test_bad_backbone_options_are_one_line_before_anything_loads(sample_root, tmp_path, capsys, installed, args,
                                                                  message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert cli("--data-root", sample_root, "--out", tmp_path / "t.h5", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.replace("{tmp}", str(tmp_path))) and err.count("\n") == 1, err
    assert not (tmp_path / "t.h5").exists()


def test_a_library_that_is_not_installed_is_named(sample_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(extract.backbones, "find_spec", lambda name: None)
    assert cli("--data-root", sample_root, "--out", tmp_path / "t.h5", "--backbone", "timm:resnet18",
               "--weights", "random") == 2
    assert capsys.readouterr().err == "error: --backbone timm:resnet18: timm is not installed; pip install timm\n"


def test_device(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.resolve_device("auto") == "cpu" and device.resolve_device("cpu") == "cpu"
    with pytest.raises(PipelineError, match=r"^--device cuda: torch .* sees no CUDA GPU .*; use --device cpu or auto$"):
        device.resolve_device("cuda")
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    assert device.resolve_device("auto") == "cuda"


@pytest.mark.parametrize("cpu_bf16,gpu_bf16,requested,where,expected", [
    (False, None, "auto", "cpu", "fp32"),
    (True, None, "auto", "cpu", "bf16"),
    (True, None, "bf16", "cpu", "bf16"),
    (False, None, "bf16", "cpu", "--precision bf16: this CPU"),
    (True, None, "fp16", "cpu", "--precision fp16: mixed float16 needs a GPU"),
    (False, True, "auto", "cuda", "bf16"),  # torch runs bfloat16 on a GPU that has it, unlike TensorFlow's fp16
    (False, False, "auto", "cuda", "fp16"),
    (False, False, "bf16", "cuda", "--precision bf16: this GPU has no bfloat16"),
    (False, True, "fp16", "cuda", "fp16"),
    (False, True, "fp32", "cuda", "fp32"),
])
def test_precision_rules(monkeypatch, cpu_bf16, gpu_bf16, requested, where, expected):
    monkeypatch.setattr(pipeline.precision, "cpu_has_native_bf16", lambda *a: cpu_bf16)
    monkeypatch.setattr(device, "cuda_bf16", lambda: gpu_bf16)
    if expected.startswith("--"):
        with pytest.raises(PipelineError, match="^" + expected):
            device.resolve_torch_precision(requested, where)
    else:
        assert device.resolve_torch_precision(requested, where) == expected


def test_cpu_threads_follow_omp_num_threads_else_the_affinity(monkeypatch):
    import os

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert device.cpu_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert device.cpu_threads() == len(os.sched_getaffinity(0))
    assert device.decode_workers("cpu") == 1
