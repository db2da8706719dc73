"""Cache format: refusal names differing keys, incomplete files are never read as complete."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.cache import CacheLayout, CacheWriter, check_compatible, main, read_cache
from pipeline.errors import PipelineError
from tests.support.caches import VIEWS, fill, layout

def test_roundtrip(tmp_path):
    fill(tmp_path / "c.h5", layout()).finish()
    c = read_cache(tmp_path / "c.h5")
    assert c.features["original"][:, 0].tolist() == [0, 1, 2, 3, 4]
    assert c.permutations["jigsaw"].shape == (5, 2, 9) and c.paths[0] == "c/1.jpg" and c.num_classes == 2


def test_incomplete_cache_is_refused_and_resumes(tmp_path):
    w = fill(tmp_path / "c.h5", layout(), rows=[np.arange(0, 2)])
    w.close()
    with pytest.raises(PipelineError, match=r"incomplete cache \(2/5 rows"):
        read_cache(tmp_path / "c.h5")
    w = CacheWriter.open(tmp_path / "c.h5", layout())
    assert w.status == "resumed" and w.pending().tolist() == [2, 3, 4]
    w.write(np.arange(2, 5), {"features/original": np.zeros((3, 4)), "features/jigsaw": np.zeros((3, 2, 4))})
    w.finish()
    assert CacheWriter.open(tmp_path / "c.h5", layout()).status == "complete"


def test_different_config_is_refused_with_keys(tmp_path):
    fill(tmp_path / "c.h5", layout()).finish()
    other = layout(image_size=96, views=dict(VIEWS, num_views=3))
    with pytest.raises(PipelineError) as e:
        CacheWriter.open(tmp_path / "c.h5", other)
    assert "image_size (64 in the file, 96 asked for)" in str(e.value) and "views.num_views" in str(e.value)
    w = CacheWriter.open(tmp_path / "c.h5", other, overwrite=True)
    assert w.status == "new"
    w.close()


def test_foreign_file_is_refused(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(PipelineError, match="not an HDF5 file"):
        read_cache(tmp_path / "x.h5")
    with pytest.raises(PipelineError, match="not an HDF5 file; use --overwrite to replace it"):
        CacheWriter.open(tmp_path / "x.h5", layout())


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


def truncated(tmp_path):
    fill(tmp_path / "c.h5", layout()).finish()
    data = (tmp_path / "c.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.h5"


def test_truncated_cache_is_reported_as_truncated(tmp_path):
    with pytest.raises(PipelineError, match=r"cut\.h5: truncated or damaged HDF5 file: [\d,]+ bytes on disk, its header says [\d,]+$"):
        read_cache(truncated(tmp_path))


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


def test_summary_command_errors_are_one_line_each(tmp_path, capsys):
    fill(tmp_path / "good.h5", layout()).finish()
    (tmp_path / "text.h5").write_text("hello\n")
    cut = truncated(tmp_path)
    assert main([str(tmp_path / "good.h5")]) == 0
    assert "split=train rows=5 classes=2" in capsys.readouterr().out
    cases = {tmp_path / "missing.h5": "no such file", tmp_path / "text.h5": "not an HDF5 file",
             cut: "truncated or damaged HDF5 file"}
    for path, message in cases.items():
        assert main([str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: {message}") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["--help"]) == 0 and capsys.readouterr().out.startswith("usage: python -m pipeline.cache")
    # the module itself, with no argument: a usage line, exit 2
    proc = subprocess.run([sys.executable, "-m", "pipeline.cache"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: python -m pipeline.cache CACHE.h5")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
