"""A study that extracts its own caches: stage 1 through extract-features in a subprocess (TensorFlow never in
the study's process), spatial maps only when a method needs them, and a later spec that needs other caches
refused with the differences named."""

from __future__ import annotations

import subprocess
import sys

import h5py
import pytest

from tests.study.conftest import write_spec

pytestmark = pytest.mark.tf


@pytest.mark.slow
def test_study_extracts_what_its_methods_need_and_refuses_a_cache_it_cannot_reuse(tmp_path, sample_root, model_cache):
    spec = write_spec(tmp_path / "s.toml", sample_root, tmp_path / "f", tmp_path / "out", methods=("none", "pirl"),
                      epochs=2)
    text = spec.read_text().replace('handle = "random-resnet50v2"',
                                    f'handle = "random-resnet50v2"\nmodel_cache = "{model_cache}"')
    spec.write_text(text)
    code = ("import sys; from study.cli import run_study; run_study(sys.argv[1], None); "
            "print('TF-LOADED' if 'tensorflow' in sys.modules else 'TF-ABSENT')")
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TF-ABSENT" in proc.stdout and "$ extract-features" in proc.stderr
    with h5py.File(tmp_path / "f" / "train.h5", "r") as f:
        assert bool(f.attrs["complete"]) and "spatial" not in f  # no method here reads spatial maps
        assert set(f["features"]) == {"original", "jigsaw"}
    assert (tmp_path / "out" / "report.md").is_file()
    # adding DCL needs RCM views and spatial maps: the caches there cannot serve it
    spec.write_text(text.replace('methods = ["none", "pirl"]', 'methods = ["none", "pirl", "dcl"]'))
    refused = subprocess.run([sys.executable, "-m", "study", str(spec)], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert "spatial (False in the cache, True in the spec)" in refused.stderr
    assert "views.kinds" in refused.stderr


@pytest.mark.slow
def test_out_of_disk_during_extraction_is_one_line_and_the_cache_stays_incomplete(tmp_path, sample_root, model_cache):
    features = tmp_path / "f"
    features.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(features)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        spec = write_spec(tmp_path / "s.toml", sample_root, features, tmp_path / "out", methods=("none", "pirl"))
        spec.write_text(spec.read_text().replace('handle = "random-resnet50v2"',
                                                 f'handle = "random-resnet50v2"\nmodel_cache = "{model_cache}"'))
        short = subprocess.run([sys.executable, "-m", "study", str(spec)], capture_output=True, text=True, timeout=300)
        assert short.returncode == 2 and "not enough disk space" in short.stderr  # the plan refuses first
        proc = subprocess.run([sys.executable, "-m", "study", str(spec), "--skip-disk-check"], capture_output=True,
                              text=True, timeout=600)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and lines[-1].startswith("error: "), proc.stderr[-3000:]
        assert "out of disk space while extracting the train split" in lines[-1] and "bytes more" in lines[-1]
        assert str(features) in lines[-1] and "Traceback" not in proc.stderr
        for cache in features.glob("*.h5"):  # a cache says complete only when every row is written
            with h5py.File(cache, "r") as f:
                assert not f.attrs["complete"] or f["done"][...].all()
        # extract-features itself on the full disk: one line naming the cache and the bytes, exit 2, no Traceback
        direct = subprocess.run([sys.executable, "-m", "extract", "--data-root", str(sample_root), "--split", "train",
                                 "--out", str(features / "train.h5"), "--backbone", "random-resnet50v2",
                                 "--image-size", "64", "--model-cache", str(model_cache), "--num-views", "2",
                                 "--views", "original,jigsaw", "--rcm-grid", "2", "--rcm-k", "1", "--precision", "fp32",
                                 "--quiet"],
                                capture_output=True, text=True, timeout=600)
        said = direct.stderr.strip().splitlines()
        assert direct.returncode == 2 and "Traceback" not in direct.stderr, direct.stderr[-2000:]
        assert said[-1].startswith(f"error: {features / 'train.h5'}: out of disk space") and "bytes" in said[-1]
        # room again: the same command resumes the cache and completes it
        subprocess.run(["mount", "-o", "remount,size=64m", str(features)], check=True)
        again = subprocess.run(direct.args, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        with h5py.File(features / "train.h5", "r") as f:
            assert f.attrs["complete"] and f["done"][...].all()
    finally:
        subprocess.run(["umount", str(features)], capture_output=True)


@pytest.mark.slow
def test_out_of_disk_while_writing_the_report_is_one_line_and_the_rerun_writes_it(tmp_path, study_root):
    """The report stage on a full disk: one line naming the file it could not write, exit 2, no report.md that looks
    complete and no temporary left; with room again, the same command writes the report (the sweep is not redone)."""
    from tests.study.conftest import write_matching_caches

    spec = write_spec(tmp_path / "s.toml", study_root, tmp_path / "f", tmp_path / "out", methods=("none", "linear"),
                      ks=(1, "all"))
    write_matching_caches(spec)
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(figures)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        proc = subprocess.run([sys.executable, "-m", "study", str(spec)], capture_output=True, text=True, timeout=600)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert lines[-1].startswith(f"error: {figures}") and "out of disk space" in lines[-1], lines[-1]
        assert not (tmp_path / "out" / "report.md").exists() and not (tmp_path / "out" / "report.html").exists()
        assert not [p for p in figures.rglob("*") if p.is_file() and p.suffix != ".png"]  # no temporary left
        runs = sorted((tmp_path / "out" / "sweep" / "runs").iterdir())
        subprocess.run(["umount", str(figures)], check=True)
        again = subprocess.run([sys.executable, "-m", "study", str(spec)], capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "## Answer" in (tmp_path / "out" / "report.md").read_text()
        assert sorted((tmp_path / "out" / "sweep" / "runs").iterdir()) == runs  # nothing trained again
    finally:
        subprocess.run(["umount", str(figures)], capture_output=True)
