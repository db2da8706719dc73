"""--precision: TensorFlow's reading of the one rule (tests/pipeline/test_precision_rule.py holds the rule and the
CPU flags), the one-line refusals, and caches of different precision never mixing (config, config_hash, pairing)."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

import extract.precision as precision
import pipeline.precision as rule
from extract.cli import extract_features
from extract.precision import Devices, resolve_precision
from heads.training.pairing import check_compatible
from pipeline.reader import read_cache
from pipeline.schema import CacheLayout, config_hash
from pipeline.writer import CacheWriter
from pipeline.errors import PipelineError, run_cli

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)

CPU = "Test CPU 9000"
NO_BF16 = Devices(gpus=(), cpu_bf16=False, cpu_name=CPU)
BF16 = Devices(gpus=(), cpu_bf16=True, cpu_name=CPU)
GPU = Devices(gpus=("/physical_device:GPU:0",), cpu_bf16=True, cpu_name=CPU)


@pytest.mark.parametrize("devices,expected", [(GPU, "fp16"), (BF16, "bf16"), (NO_BF16, "fp32")])
def test_auto_picks_per_machine(devices, expected):
    assert resolve_precision("auto", devices) == expected
    assert resolve_precision("fp32", devices) == "fp32"


@pytest.mark.parametrize("asked,devices,words", [
    ("bf16", NO_BF16, ["--precision bf16", CPU, "no native bfloat16", "amx_bf16", "--precision fp32"]),
    ("fp16", BF16, ["--precision fp16", "needs a GPU", ".[gpu]"]),
    ("bf16", GPU, ["--precision bf16", "GPU", "fp16"]),
])
def test_unavailable_precision_is_refused(asked, devices, words):
    with pytest.raises(PipelineError) as e:
        resolve_precision(asked, devices)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    """Simulate a CPU without AMX / AVX512_BF16 and no GPU, whatever this machine is."""
    monkeypatch.setattr(rule, "cpu_has_native_bf16", lambda *a: False)
    monkeypatch.setattr(precision, "list_gpus", lambda: [])


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, list(args))
    return e.value.code


@pytest.mark.parametrize("asked,words", [("bf16", "no native bfloat16"), ("fp16", "needs a GPU")])
def test_cli_refuses_precision_the_machine_lacks(sample_root, tmp_path, cpu_without_bf16, capsys, asked, words):
    out = tmp_path / "t.h5"
    assert cli("--data-root", str(sample_root), "--out", str(out), "--backbone", "random-resnet50v2",
               "--precision", asked, "--model-cache", str(tmp_path / "models")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --precision {asked}:") and words in err and err.count("\n") == 0
    assert not out.exists() and not (tmp_path / "models").exists()  # stopped before any model or file


def test_precision_is_in_config_and_config_hash(tmp_path, sample_root, backbone):
    from tests.support import IMAGE_SIZE
    from extract.inputs import ViewSpec
    from extract.run import extract_split, extraction_config
    from pipeline.cub import load_cub

    data = load_cub(sample_root, "test")
    spec = ViewSpec(("original",), 1, 3, 7, 2)
    out = tmp_path / "t.h5"
    extract_split(data, backbone, out, spec, IMAGE_SIZE, 0, False, 8, progress=False)
    with h5py.File(out, "r") as f:
        config, stored_hash = json.loads(f.attrs["config"]), f.attrs["config_hash"]
    assert backbone.precision == "fp32" and config["precision"] == "fp32"
    assert stored_hash == config_hash(config) == config_hash(extraction_config(data, spec, backbone.handle, IMAGE_SIZE,
                                                                                0, False, "fp32"))
    assert config_hash(dict(config, precision="bf16")) != stored_hash
    # a bf16 run cannot resume or reuse an fp32 file: refused before any compute, the key named
    bf16 = dataclasses.replace(backbone, precision="bf16")
    with pytest.raises(PipelineError, match=r"precision \('fp32' in the file, 'bf16' asked for\)"):
        extract_split(data, bf16, out, spec, IMAGE_SIZE, 0, False, 8, progress=False)


def _cache(path, split, ids, **config):
    ids = np.asarray(ids)
    cfg = {"backbone": "b", "image_size": 64, "split": split, "seed": 0, "spatial": False, "preprocessing": "p",
           "dataset": split, "views": {"kinds": ["original"], "num_views": 1, "jigsaw_grid": 3, "rcm_grid": 7,
                                       "rcm_k": 2}, **config}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    w = CacheWriter.open(path, CacheLayout(cfg, ids, ids % 2, [f"c/{i}.jpg" for i in ids], ["001.A", "002.B"], 4, {}))
    w.write(np.arange(len(ids)), {"features/original": np.ones((len(ids), 4), np.float32)})
    w.finish()
    return read_cache(path)


def test_bf16_and_fp32_caches_are_refused_as_a_pair(tmp_path):
    train = _cache(tmp_path / "train.h5", "train", [1, 2, 3], precision="bf16")
    test = _cache(tmp_path / "test.h5", "test", [4, 5], precision="fp32")
    with pytest.raises(PipelineError, match=r"do not match: precision \('bf16' vs 'fp32'\)"):
        check_compatible(train, test)
    check_compatible(train, _cache(tmp_path / "test16.h5", "test", [4, 5], precision="bf16"))
    # caches written before --precision existed ran in float32 and pair with fp32 caches only
    old = _cache(tmp_path / "old.h5", "test", [4, 5], precision=None)
    check_compatible(_cache(tmp_path / "train32.h5", "train", [1, 2, 3], precision="fp32"), old)
    with pytest.raises(PipelineError, match="precision"):
        check_compatible(train, old)
