"""The launchers on real engines: local processes, submitit's local executor (SLURM's code path but the
scheduler) and Ray started in-process with 2 CPUs. Each merged cache must equal an unsharded run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import pytest

from extract.cli import extract_features
from extract.inputs import ViewSpec
from extract.run import extract_split
from pipeline.cub import load_cub
from pipeline.errors import run_cli
from tests.support import IMAGE_SIZE
from tests.support.caches import assert_same_cache

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # needs TensorFlow (stage 1); launchers and end-to-end runs

SPEC = ViewSpec(("original", "jigsaw", "rcm"), num_views=2, jigsaw_grid=3, rcm_grid=7, rcm_k=2)


@pytest.fixture(scope="module")
def unsharded(sample_root, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "train.h5"
    extract_split(load_cub(sample_root, "train"), backbone, out, SPEC, IMAGE_SIZE, seed=0, spatial=True,
                  batch_size=10, progress=False)
    return out


def launch(root, out, model_cache, *extra):
    args = ["--data-root", root, "--out", out, "--backbone", "random-resnet50v2", "--image-size", IMAGE_SIZE,
            "--num-views", "2", "--batch-size", "10", "--spatial", "--model-cache", model_cache,
            "--precision", "fp32", *extra]  # the reference's precision, whatever `auto` picks on this machine
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, [str(a) for a in args])
    return e.value.code


def test_local_launcher_reports_a_failed_shard_keeps_the_others_and_resumes(sample_root, model_cache, unsharded,
                                                                              tmp_path, capsys):
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    data = load_cub(root, "train")
    image = root / "images" / data.path[3]  # row 3: in shard 1/2 (rows 2..5)
    good = image.read_bytes()
    image.write_bytes(b"not an image")
    out = tmp_path / "features" / "train.h5"
    shards = [out.with_name(f"train.shard-{i}-of-2.h5") for i in range(2)]
    assert launch(root, out, model_cache, "--launcher", "local", "--shards", "2") == 2
    captured = capsys.readouterr()
    assert f"wrote {shards[0]} (shard 0/2): rows 0..1 of 6" in captured.out
    error = (f"shard 1/2 FAILED: error: {image}: cannot decode image (image_id {data.image_id[3]}): "
             "not an image file of a known format")
    assert error in captured.out
    assert captured.err == (
        f"error: 1 of 2 shards failed (first: shard 1/2: {image}: cannot decode image (image_id {data.image_id[3]}): "
        "not an image file of a known format (JPEG, PNG, TIFF, GIF, WebP, BMP)); the other shards' rows are "
        "kept: fix the cause and rerun the same command, which extracts only what is missing\n")
    assert not out.exists()
    with h5py.File(shards[0], "r") as f:
        assert f.attrs["complete"]
    image.write_bytes(good)
    assert launch(root, out, model_cache, "--launcher", "local", "--shards", "2", "--progress-lines") == 0
    lines = capsys.readouterr().out.splitlines()
    # the shard still to run (rows 2..5) relays its rows done as the one progress line a caller reads (study)
    assert [line for line in lines if line.startswith("progress rows")][-1] == "progress rows 4/4"
    assert any(line.startswith(f"{shards[0]} (shard 0/2): already complete with this configuration; nothing to do")
               for line in lines)
    assert any(line.startswith(f"wrote {shards[1]} (shard 1/2): rows 2..5 of 6, 4 rows computed (resumed)")
               for line in lines)
    assert f"wrote {out}: 6 rows from 2 shards" in "\n".join(lines)
    assert out.with_suffix(".views.png").is_file()
    assert_same_cache(unsharded, out)


def test_submitit_local_executor_runs_the_job_array(sample_root, model_cache, unsharded, tmp_path, capsys):
    out = tmp_path / "train.h5"
    assert launch(sample_root, out, model_cache, "--launcher", "slurm", "--submitit-cluster", "local",
                  "--shards", "2", "--slurm-time", "5") == 0  # two jobs: an array; each is a TensorFlow process
    text = capsys.readouterr().out
    assert f"submitted 2 shards as local submitit jobs (logs in {tmp_path / 'train.submitit'})" in text
    assert "(shard 0/2): rows 0..1 of 6" in text and "(shard 1/2): rows 2..5 of 6" in text
    assert_same_cache(unsharded, out)
    assert len(list((tmp_path / "train.submitit").rglob("*_log.out"))) == 2  # each job's log holds its shard's output


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


def test_ray_tasks_on_an_in_process_cluster(sample_root, model_cache, unsharded, tmp_path, capsys, ray_cluster):
    out = tmp_path / "train.h5"
    assert launch(sample_root, out, model_cache, "--launcher", "ray", "--shards", "2", "--quiet") == 0
    text = capsys.readouterr().out
    assert "Ray cluster: 2 CPUs, 0 GPUs; 2 shard tasks, 1 CPU and 0 GPU each" in text
    assert_same_cache(unsharded, out)
    assert ray_cluster.is_initialized()  # a cluster the command did not start is left running


def test_slurm_without_sbatch_and_a_missing_engine_are_one_line(sample_root, tmp_path, capsys, monkeypatch):
    import extract.backbone

    monkeypatch.setattr(extract.backbone, "load_backbone", lambda *a, **k: pytest.fail("TensorFlow work started"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    args = ["--data-root", sample_root, "--out", tmp_path / "t.h5", "--num-views", "2", "--batch-size", "10",
            "--shards", "2"]
    with pytest.raises(SystemExit):
        run_cli(extract_features, [str(a) for a in args + ["--launcher", "slurm"]])
    assert capsys.readouterr().err == ("error: --launcher slurm: sbatch is not on this machine's PATH; launch from a "
                                       "machine that submits to SLURM (a login node), or use --launcher local or ray\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(SystemExit):
        run_cli(extract_features, [str(a) for a in args + ["--launcher", "ray"]])
    assert capsys.readouterr().err == ("error: --launcher ray needs ray, which is not installed: "
                                       "pip install -e '.[ray]' (or pip install ray)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no lock left


def test_the_engines_and_tensorflow_load_only_when_asked_for():
    import subprocess

    code = ("import sys, extract.sharding.merge, extract.cli, extract.sharding.launch\n"
            "print(sorted(m for m in ('tensorflow', 'ray', 'submitit', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_every_extraction_option_reaches_the_shards(tmp_path):
    """A shard gets this command's options (paths made absolute); only the launcher's own are kept back."""
    from extract.cli import NOT_FOR_SHARDS, _shard_argv

    args = ["--data-root", "rel/root", "--out", str(tmp_path / "t.h5"), "--split", "test", "--image-size", "96",
            "--views", "original,rcm", "--num-views", "3", "--rcm-grid", "5", "--rcm-k", "1.5", "--spatial",
            "--batch-size", "32", "--precision", "fp32", "--seed", "7", "--model-cache", "m", "--overwrite",
            "--launcher", "local", "--shards", "2", "--cpus-per-task", "1"]
    ctx = extract_features.make_context("extract-features", list(args))
    argv = _shard_argv(ctx)
    again = extract_features.make_context("extract-features", argv + ["--shard", "0/2"])
    for name, value in ctx.params.items():
        if name in NOT_FOR_SHARDS:
            continue
        expected = str(Path(value).resolve()) if name in ("data_root", "model_cache") else value
        assert again.params[name] == expected, name
    assert again.params["quiet"] and again.params["shard"] == (0, 2) and again.params["launcher"] is None


def test_relaunching_finished_shards_starts_no_shard_process(sample_root, model_cache, backbone, unsharded, tmp_path,
                                                              capsys, monkeypatch):
    """Shards already complete with this configuration are told from their files, without TensorFlow."""
    from extract.sharding import launch as engines

    out = tmp_path / "train.h5"
    data = load_cub(sample_root, "train")
    for i in range(2):
        extract_split(data, backbone, out.with_name(f"train.shard-{i}-of-2.h5"), SPEC, IMAGE_SIZE, seed=0,
                      spatial=True, batch_size=10, progress=False, shard=(i, 2))
    monkeypatch.setattr(engines, "run_shard", lambda *a, **k: pytest.fail("a shard process was started"))
    assert launch(sample_root, out, model_cache, "--launcher", "local", "--shards", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines if "already complete with this configuration" in line] == \
        [str(out.with_name(f"train.shard-{i}-of-2.h5")) + f" (shard {i}/2)" for i in range(2)]
    assert_same_cache(unsharded, out)
    monkeypatch.undo()
    out.unlink()  # another configuration (--num-views 3): the shards must run, and refuse their files
    assert launch(sample_root, out, model_cache, "--launcher", "local", "--shards", "2", "--num-views", "3") == 2
    assert "was written with a different configuration" in capsys.readouterr().out
