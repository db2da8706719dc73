"""Sharded extraction and the exact merge: shards + merge-caches equal an unsharded run, array for array."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from extract.cli import extract_features
from extract.inputs import ViewSpec
from extract.run import extract_split
from pipeline.reader import read_cache
from pipeline.cub import load_cub
from pipeline.errors import PipelineError, run_cli
from extract.sharding.merge import merge_caches, merge_shards
from extract.sharding.plan import default_shard_path, plan_shard, plan_shards, sibling_shard_path
from pipeline.schema import Shard, parse_shard_spec
from tests.support import IMAGE_SIZE
from tests.support.caches import assert_same_cache

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # needs TensorFlow (stage 1); launchers and end-to-end runs

SPEC = ViewSpec(("original", "jigsaw", "rcm"), num_views=2, jigsaw_grid=3, rcm_grid=7, rcm_k=2)
BATCH = 10  # 5 inputs per image -> blocks of 2 images; the 6 training rows are 3 blocks


def extract(data, net, out, shard=None, seed=0, batch_size=BATCH, **kw):
    return extract_split(data, net, out, SPEC, IMAGE_SIZE, seed=seed, spatial=True, batch_size=batch_size,
                         progress=False, shard=shard, **kw)


@pytest.fixture(scope="module")
def train(sample_root):
    return load_cub(sample_root, "train")


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="module")
def unsharded(train, backbone, features):
    out = features / "whole.h5"
    assert extract(train, backbone, out).status == "new"
    return out


@pytest.fixture(scope="module")
def halves(train, backbone, features):
    """train.shard-0-of-2.h5 (rows 0..1) and train.shard-1-of-2.h5 (rows 2..5), complete."""
    out = features / "train.h5"
    paths = [default_shard_path(out, i, 2) for i in range(2)]
    for i, path in enumerate(paths):
        assert extract(train, backbone, path, shard=(i, 2)).status == "new"
    return paths


# --- planning ---------------------------------------------------------------------------------------------

def test_shards_are_whole_blocks_covering_every_row_once():
    for rows, block, count in [(6, 2, 2), (6, 2, 3), (11788, 7, 32), (5, 4, 2), (1, 1, 1), (10, 3, 4)]:
        shards = plan_shards(count, rows, block)
        assert shards[0].row_start == 0 and shards[-1].row_stop == rows
        for a, b in zip(shards, shards[1:]):
            assert a.row_stop == b.row_start and a.row_stop % block == 0
        sizes = [-(-s.num_rows // block) for s in shards]  # blocks per shard, as even as whole blocks allow
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert [(s.row_start, s.row_stop) for s in plan_shards(2, 6, 2)] == [(0, 2), (2, 6)]


def test_too_many_shards_and_bad_specs_are_refused():
    with pytest.raises(PipelineError, match=r"^4 shards: the split's 6 rows make only 3 blocks of 2 images .* use at most 3"):
        plan_shard(0, 4, 6, 2)
    assert parse_shard_spec(" 3/4 ") == (3, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="expected"):
            parse_shard_spec(bad)


def test_shard_file_names():
    from pathlib import Path

    assert default_shard_path("data/features/train.h5", 3, 8) == Path("data/features/train.shard-3-of-8.h5")
    assert sibling_shard_path("x/train.shard-0-of-8.h5", 5, 8) == Path("x/train.shard-5-of-8.h5")
    assert sibling_shard_path("x/mine.h5", 5, 8) is None


# --- shard files and the merge -----------------------------------------------------------------------------

def test_shard_file_holds_its_rows_and_the_whole_runs_config(halves, unsharded, train):
    with h5py.File(halves[1], "r") as s, h5py.File(unsharded, "r") as w:
        assert Shard.from_attrs(s.attrs) == Shard(1, 2, 2, 6, 6, 2)
        assert s.attrs["shard"] == "1/2" and s.attrs["num_rows"] == 4 and s.attrs["run_num_rows"] == 6
        assert s.attrs["config"] == w.attrs["config"] and s.attrs["config_hash"] == w.attrs["config_hash"]
        assert s["image_id"][...].tolist() == train.image_id[2:].tolist()
        for name in ("label", "path", "permutations/jigsaw", "permutations/rcm", "features/rcm", "spatial/rcm"):
            assert np.array_equal(s[name][...], w[name][2:]), name
        assert len(s["class_names"]) == len(w["class_names"])
    with pytest.raises(PipelineError, match=r"is shard 1/2 \(rows 2\.\.5 of 6, blocks of 2 images\) of a sharded "
                                            r"extraction, not a whole split; merge the shards first"):
        read_cache(halves[1])


def test_merged_shards_equal_an_unsharded_run(halves, unsharded, features):
    out = features / "merged.h5"
    result = merge_shards(out, list(reversed(halves)))  # any order
    assert result.status == "new" and result.rows == 6
    assert_same_cache(unsharded, out)  # arrays, chunking, compression, config_hash, attributes
    cache = read_cache(out)
    assert len(cache) == 6 and np.array_equal(cache.spatial("rcm"), read_cache(unsharded).spatial("rcm"))
    with h5py.File(out, "r") as f:
        assert "shard" not in f.attrs and f.attrs["complete"] and f["done"][...].all()
    assert sorted(p.name for p in features.iterdir() if p.name.startswith(".")) == []  # no temporary left
    assert merge_shards(out, halves).status == "complete"  # rerun: nothing to do


def test_more_shards_of_the_same_run_merge_to_the_same_file(train, backbone, unsharded, tmp_path):
    paths = [tmp_path / f"part{i}.h5" for i in range(3)]
    for i, path in enumerate(paths):
        extract(train, backbone, path, shard=(i, 3))
    merge_shards(tmp_path / "merged.h5", paths)
    assert_same_cache(unsharded, tmp_path / "merged.h5")


def test_virtual_merge_reads_the_same_and_refuses_a_missing_shard(halves, unsharded, tmp_path):
    folder = tmp_path / "moved"
    folder.mkdir()
    copies = [shutil.copy(p, folder) for p in halves]
    result = merge_shards(folder / "virtual.h5", copies, virtual=True)
    assert result.virtual and (folder / "virtual.h5").stat().st_size < halves[0].stat().st_size
    assert_same_cache(unsharded, folder / "virtual.h5")
    assert merge_shards(folder / "virtual.h5", copies, virtual=True).status == "complete"  # the same mapping
    assert merge_shards(folder / "virtual.h5", halves, virtual=True).status == "new"  # other shard files
    assert merge_shards(folder / "virtual.h5", copies, virtual=True).status == "new"
    # shard paths are stored relative to the virtual file: the folder can move as a whole
    moved = shutil.move(folder, tmp_path / "elsewhere")
    a, b = read_cache(unsharded), read_cache(f"{moved}/virtual.h5")
    assert all(np.array_equal(a.features[k], b.features[k]) for k in a.features)
    assert np.array_equal(a.spatial("rcm"), b.spatial("rcm"))
    (tmp_path / "elsewhere" / halves[1].name).unlink()  # HDF5 alone would read zeros here
    with pytest.raises(PipelineError, match=rf"virtual.h5: a virtual cache over .*{halves[1].name}, which is missing"):
        read_cache(f"{moved}/virtual.h5")


def merge_cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(merge_caches, [str(a) for a in args])
    return e.value.code


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err[len("error: "):].strip()


def test_merge_refuses_missing_overlapping_duplicate_and_whole_files(halves, unsharded, train, backbone, tmp_path,
                                                                     capsys):
    out = tmp_path / "out.h5"
    assert merge_cli(out, halves[0]) == 2
    assert one_error_line(capsys) == (
        f"missing shard 1/2 (rows 2..5 of 6) (expected e.g. at {halves[1]}): none of the files given holds these "
        "rows; extract it with extract-features ... --shard 1/2")
    third = tmp_path / "third.h5"
    extract(train, backbone, third, shard=(1, 3))  # rows 2..3, also in shard 1/2
    assert merge_cli(out, *halves, third) == 2
    assert one_error_line(capsys) == (
        f"{halves[1]}: shard 1/2 (rows 2..5 of 6, blocks of 2 images) overlaps {third} (shard 1/3 (rows 2..3 of 6, "
        "blocks of 2 images)): rows 2..3 are in both")
    assert merge_cli(out, halves[0], halves[0], halves[1]) == 2
    assert one_error_line(capsys) == f"{halves[0]}: given twice"
    assert merge_cli(out, unsharded, halves[1]) == 2
    assert one_error_line(capsys).startswith(f"{unsharded}: a whole cache, not a shard")
    assert merge_cli(out, tmp_path / "nope.h5", halves[1]) == 2
    assert one_error_line(capsys) == f"{tmp_path / 'nope.h5'}: no such file"
    assert not out.exists()


def test_merge_refuses_mismatched_configuration_and_blocks(halves, train, backbone, tmp_path, capsys):
    other_seed = tmp_path / "seed1.h5"
    extract(train, backbone, other_seed, shard=(1, 2), seed=1)
    assert merge_cli(tmp_path / "out.h5", halves[0], other_seed) == 2
    assert one_error_line(capsys) == (
        f"{other_seed}: shard 1/2 (rows 2..5 of 6, blocks of 2 images) was extracted with another configuration than "
        f"{halves[0]}: seed (0 in {halves[0].name}, 1 in seed1.h5)")
    small_blocks = tmp_path / "small.h5"
    extract(train, backbone, small_blocks, shard=(1, 3), batch_size=5)  # blocks of 1 image: rows 2..3
    assert merge_cli(tmp_path / "out.h5", halves[0], small_blocks) == 2
    assert one_error_line(capsys).startswith(
        f"{small_blocks}: shard 1/3 (rows 2..3 of 6, blocks of 1 images) is in blocks of 1 images, {halves[0]} in "
        "blocks of 2 (another --batch-size)")


def test_killed_shard_resumes_and_an_incomplete_shard_is_refused(train, backbone, unsharded, halves, tmp_path,
                                                                 capsys):
    def stop(i):
        if i == 0:
            raise KeyboardInterrupt

    path = tmp_path / "train.shard-1-of-2.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(train, backbone, path, shard=(1, 2), after_batch=stop)  # shard 1/2 is 2 batches: rows 2-3, 4-5
    with h5py.File(path, "r") as f:
        assert not f.attrs["complete"] and f["done"][...].tolist() == [True, True, False, False]
    assert merge_cli(tmp_path / "out.h5", halves[0], path) == 2
    assert one_error_line(capsys) == (
        f"{path}: shard 1/2 (rows 2..5 of 6, blocks of 2 images) is incomplete (2 of 4 rows written); rerun its "
        "extraction (extract-features ... --shard 1/2) to resume it")
    result = extract(train, backbone, path, shard=(1, 2))
    assert result.status == "resumed" and result.rows == 2
    assert merge_cli(tmp_path / "out.h5", halves[0], path) == 0
    assert_same_cache(unsharded, tmp_path / "out.h5")


def test_a_shard_file_refuses_another_shard_or_batch_size(train, backbone, halves, tmp_path):
    path = tmp_path / "s.h5"
    shutil.copy(halves[1], path)
    with pytest.raises(PipelineError, match=r"s.h5: holds shard 1/2 \(rows 2\.\.5 of 6, blocks of 2 images\), but this "
                                            r"command's shard is shard 1/2 \(rows 3\.\.5 of 6, blocks of 1 images\) "
                                            r"\(another --batch-size or --views makes other blocks\); use --overwrite"):
        extract(train, backbone, path, shard=(1, 2), batch_size=5)
    with pytest.raises(PipelineError, match=r"s.h5: holds shard 1/2 .* of a sharded extraction, not a whole split"):
        extract(train, backbone, path)
    assert extract(train, backbone, path, shard=(1, 2)).status == "complete"


def test_merge_into_an_existing_file(halves, unsharded, tmp_path, capsys):
    other = tmp_path / "other.h5"
    shutil.copy(unsharded, other)  # an unsharded cache of the same configuration, complete: nothing to do
    assert merge_cli(other, *halves) == 0
    assert "nothing to do" in capsys.readouterr().out
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not hdf5")
    assert merge_cli(foreign, *halves) == 2
    assert one_error_line(capsys) == f"{foreign}: not an HDF5 file; use --overwrite to replace it"
    assert merge_cli(foreign, *halves, "--overwrite") == 0
    capsys.readouterr()
    assert_same_cache(unsharded, foreign)


# --- the command line --------------------------------------------------------------------------------------

def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, [str(a) for a in args])
    return e.value.code


def test_cli_shard_writes_its_file_and_reruns_do_nothing(sample_root, model_cache, tmp_path, capsys):
    args = ["--data-root", sample_root, "--out", tmp_path / "train.h5", "--backbone", "random-resnet50v2",
            "--image-size", IMAGE_SIZE, "--num-views", "1", "--model-cache", model_cache, "--quiet",
            "--batch-size", "3", "--shard", "1/3"]  # 3 inputs per image: blocks of 1 image
    assert cli(*args) == 0
    shard = tmp_path / "train.shard-1-of-3.h5"
    assert capsys.readouterr().out.startswith(f"wrote {shard} (shard 1/3): rows 2..3 of 6, 2 rows computed")
    assert sorted(p.name for p in tmp_path.iterdir()) == [shard.name]  # no lock, no figure, no merged file
    assert cli(*args) == 0
    assert capsys.readouterr().out.startswith(f"{shard} (shard 1/3): already complete with this configuration; "
                                              "nothing to do (rows 2..3 of 6")
    assert cli(*args[:-1], "1/3", "--shard-out", tmp_path / "mine.h5") == 0
    with h5py.File(tmp_path / "mine.h5", "r") as f:
        assert f.attrs["shard"] == "1/3"


@pytest.mark.parametrize("args,message", [
    (["--shard", "2/2"], "Invalid value for '--shard': expected 0 <= I < N (shard indices are 0-based), found '2/2'"),
    (["--shard", "0/9"], "--shard 0/9: 9 shards: the split's 6 rows make only 3 blocks of 2 images"),
    (["--shards", "2"], "--shards N needs --launcher local, slurm or ray"),
    (["--launcher", "local"], "--launcher local needs --shards N"),
    (["--launcher", "local", "--shards", "2", "--shard", "0/2"], "--shard and --launcher: give one"),
    (["--launcher", "local", "--shards", "2", "--ray-address", "auto"], "--ray-address is for --launcher ray"),
    (["--launcher", "local", "--shards", "4"], "--shards 4: 4 shards: the split's 6 rows make only 3 blocks"),
    (["--shard-out", "x.h5"], "--shard-out is for --shard I/N"),
])
def test_cli_sharding_option_errors_before_tensorflow(sample_root, tmp_path, capsys, monkeypatch, args, message):
    import extract.backbone

    monkeypatch.setattr(extract.backbone, "load_backbone", lambda *a, **k: pytest.fail("TensorFlow work started"))
    assert cli("--data-root", sample_root, "--out", tmp_path / "t.h5", "--num-views", "2", "--batch-size", "10",
               *args) == 2
    assert one_error_line(capsys).startswith(message)
