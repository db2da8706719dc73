"""Stage 2's pairing rule: which train and test caches go together, and the hints the options get."""

from __future__ import annotations

import pytest

from heads.training.pairing import check_compatible, read_role_cache as read_cache
from pipeline.errors import PipelineError
from tests.support.caches import fill, layout


def test_check_compatible(tmp_path):
    fill(tmp_path / "train.h5", layout()).finish()
    fill(tmp_path / "test.h5", layout("test", ids=(6, 7))).finish()
    fill(tmp_path / "other.h5", layout("test", ids=(6, 7), backbone="other")).finish()
    fill(tmp_path / "overlap.h5", layout("test", ids=(5, 6))).finish()
    train = read_cache(tmp_path / "train.h5")
    check_compatible(train, read_cache(tmp_path / "test.h5"))
    fill(tmp_path / "spatial.h5", layout("test", ids=(6, 7), spatial=True)).finish()
    check_compatible(train, read_cache(tmp_path / "spatial.h5"))  # pooled features are the same either way
    with pytest.raises(PipelineError, match="backbone"):
        check_compatible(train, read_cache(tmp_path / "other.h5"))
    with pytest.raises(PipelineError, match="share 1 image ids"):
        check_compatible(train, read_cache(tmp_path / "overlap.h5"))


def test_class_names_mismatch_says_counts_and_first_difference(tmp_path):
    fill(tmp_path / "train.h5", layout()).finish()
    other = layout("test", ids=(6, 7))
    other.class_names = ["001.A", "002.C", "003.D"]
    fill(tmp_path / "test.h5", other).finish()
    with pytest.raises(PipelineError) as e:
        check_compatible(read_cache(tmp_path / "train.h5"), read_cache(tmp_path / "test.h5"))
    assert "class_names (2 vs 3 classes; first difference at index 1: '002.B' vs '002.C')" in str(e.value)


def test_missing_cache_names_the_option_and_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError) as e:
        read_cache("data/features/test.h5", role="--test")
    assert str(e.value) == ("--test data/features/test.h5: feature cache not found; "
                            "run extract-features --split test first")
    with pytest.raises(PipelineError, match=r"^--train elsewhere/train\.h5: .*--split train --out elsewhere/train\.h5 first$"):
        read_cache("elsewhere/train.h5", role="--train")
    (tmp_path / "x.h5").write_text("text")
    with pytest.raises(PipelineError, match=r"^--test x\.h5: not an HDF5 file$"):
        read_cache("x.h5", role="--test")
