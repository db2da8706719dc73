"""extract-features --dataset on generated copies: the reader's rows, the dataset's source and each row's
official split reach the cache; dataset options are checked before TensorFlow loads."""

from __future__ import annotations

import pytest

import extract.backbone
from extract.cli import extract_features
from pipeline.errors import run_cli
from pipeline.reader import read_cache
from pipeline.sample import make_sample_dataset
from tests.support import IMAGE_SIZE

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, [str(a) for a in args])
    return e.value.code


def test_aircraft_train_and_test_caches(tmp_path, model_cache, backbone):
    """random-resnet50v2 (UNTRAINED) at 64 px over a generated FGVC-Aircraft copy: 3 classes x 4 images."""
    root = make_sample_dataset(tmp_path / "data", 3, 4, seed=5, min_side=40, max_side=72, layout="aircraft")
    common = ["--dataset", "aircraft", "--data-root", root, "--backbone", "random-resnet50v2", "--image-size", IMAGE_SIZE,
              "--views", "original,jigsaw", "--num-views", "1", "--model-cache", model_cache, "--quiet"]
    assert cli(*common, "--split", "trainval", "--out", tmp_path / "trainval.h5") == 0
    assert cli(*common, "--split", "test", "--out", tmp_path / "test.h5") == 0
    train, test = read_cache(tmp_path / "trainval.h5"), read_cache(tmp_path / "test.h5")
    assert (len(train), len(test)) == (6, 6) and train.class_names[0] == "Sample/Variant 1-200"
    assert sorted(train.official_split) == ["train"] * 3 + ["val"] * 3 and set(test.official_split) == {"test"}
    assert train.config["source"] == {"dataset": "aircraft", "level": "variant", "official_splits": ["train", "val"],
                                      "official_validation": "val"}
    assert train.config["split"] == "trainval" and train.untrained
    from heads.training.pairing import check_compatible

    check_compatible(train, test)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cub", "--split", "val"], "--dataset cub has the splits train, test, all, found 'val'"),
    (["--aircraft-level", "family"], "--aircraft-level is for --dataset aircraft (this is --dataset cub)"),
    (["--dataset", "cars", "--download"], "Stanford Cars is no longer downloadable"),
])
def test_dataset_options_are_checked_before_tensorflow(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(extract.backbone, "load_backbone", lambda *a, **k: pytest.fail("TensorFlow work started"))
    assert cli(*args, "--data-root", tmp_path / "nowhere", "--out", tmp_path / "x.h5") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
