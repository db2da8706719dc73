"""Cache format: refusal names differing keys, incomplete files are never read as complete."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.cache import main
from pipeline.reader import check_same_source, read_cache, shared_image_ids
from pipeline.writer import CacheWriter
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


def test_same_source_speaks_of_caches_and_keys(tmp_path):
    fill(tmp_path / "a.h5", layout()).finish()
    fill(tmp_path / "b.h5", layout("test", ids=(5, 6), backbone="other")).finish()
    a, b = read_cache(tmp_path / "a.h5"), read_cache(tmp_path / "b.h5")
    check_same_source(a, b, ["image_size"])
    with pytest.raises(PipelineError, match=r"a\.h5 and .*b\.h5 do not match: backbone \('synthetic' vs 'other'\)$"):
        check_same_source(a, b, ["backbone", "image_size"])
    assert shared_image_ids(a, b).tolist() == [5]


def test_missing_cache_is_named_without_flags(tmp_path):
    with pytest.raises(PipelineError) as e:
        read_cache(tmp_path / "train.h5")
    assert str(e.value) == f"{tmp_path / 'train.h5'}: feature cache not found"


def truncated(tmp_path):
    fill(tmp_path / "c.h5", layout()).finish()
    data = (tmp_path / "c.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.h5"


def test_truncated_cache_is_reported_as_truncated(tmp_path):
    with pytest.raises(PipelineError, match=r"cut\.h5: truncated or damaged HDF5 file: [\d,]+ bytes on disk, its header says [\d,]+$"):
        read_cache(truncated(tmp_path))


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


def test_the_synthetic_writer_builds_the_config_extraction_builds():
    from pipeline.schema import FORMAT_VERSION, CacheConfig
    from tests.support.synthetic import synthetic_config

    config = synthetic_config("train", precision="bf16")
    assert CacheConfig(**config).as_dict() == config  # exactly a CacheConfig's dict, every key of it
    assert config["format_version"] == FORMAT_VERSION and config["precision"] == "bf16"
    with pytest.raises(TypeError):
        synthetic_config("train", no_such_key=1)  # a key no cache has is refused, not stored


def test_a_cache_marked_complete_with_rows_never_written_is_refused(tmp_path):
    """`complete` alone is not trusted: a row its done mask lists as unwritten (zeros in every array) is refused,
    naming the row and its image id."""
    import h5py

    fill(tmp_path / "c.h5", layout()).finish()
    with h5py.File(tmp_path / "c.h5", "r+") as f:
        f["done"][3] = False
        f["features/original"][3] = 0
    with pytest.raises(PipelineError, match=r"marked complete, but 1 of its 5 rows were never written \(first: row 3, "
                                            r"image_id 4\)"):
        read_cache(tmp_path / "c.h5")


def test_the_rerun_writes_the_rows_a_complete_flag_covered(tmp_path):
    import h5py

    from tests.support.caches import assert_same_cache

    fill(tmp_path / "c.h5", layout()).finish()
    fill(tmp_path / "ref.h5", layout()).finish()
    with h5py.File(tmp_path / "c.h5", "r+") as f:
        f["done"][3] = False
        f["features/original"][3] = 0
    w = CacheWriter.open(tmp_path / "c.h5", layout())
    assert w.status == "resumed" and w.pending().tolist() == [3]
    w.write(np.arange(3, 4), {"features/original": np.full((1, 4), 3, np.float32),
                              "features/jigsaw": np.ones((1, 2, 4), np.float32)})
    w.finish()
    assert_same_cache(tmp_path / "c.h5", tmp_path / "ref.h5")
