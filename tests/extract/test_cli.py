"""extract-features as a user meets it: bad --out stops before TensorFlow loads, one writer per cache,
and a quiet terminal (no TensorFlow start-up lines, no libjpeg chatter, no progress bar in a log)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import extract.backbone
from extract.cli import extract_features
from pipeline.cub import load_cub
from pipeline.errors import run_cli
from tests.support import IMAGE_SIZE

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)

ROOT = Path(__file__).resolve().parents[2]
EXTRACT = str(Path(sys.executable).parent / "extract-features")
TF_NOISE = ("absl::InitializeLog", "oneDNN", "cuda", "cuInit", "I0000", "E0000", "W0000")


def cli(*args):
    with pytest.raises(SystemExit) as e:
        run_cli(extract_features, list(args))
    return e.value.code


@pytest.fixture
def no_tensorflow_work(monkeypatch):
    """Fail the test if the command gets as far as loading a backbone."""
    def refuse(*a, **k):
        raise AssertionError("load_backbone called: the error should have come before TensorFlow")

    monkeypatch.setattr(extract.backbone, "load_backbone", refuse)


@pytest.mark.parametrize("out,overwrite,message", [
    ("/sys/train.h5", False, "--out /sys/train.h5: cannot write in /sys ("),  # not writable, not even for root
    ("/sys/sub/train.h5", False, "--out /sys/sub/train.h5: cannot create the directory /sys/sub ("),
    ("{tmp}", True, "--out {tmp}: is a directory; give a file path such as {tmp}/train.h5"),
    ("{tmp}", False, "--out {tmp}: is a directory"),
])
def test_bad_out_is_one_line_before_tensorflow(sample_root, tmp_path, capsys, no_tensorflow_work, out, overwrite,
                                               message):
    out, message = out.format(tmp=tmp_path), message.format(tmp=tmp_path)
    assert cli("--data-root", str(sample_root), "--out", out, *(["--overwrite"] if overwrite else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert tmp_path.is_dir()


def test_second_extraction_of_the_same_file_stops_at_once(sample_root, tmp_path, capsys, no_tensorflow_work):
    out = tmp_path / "train.h5"
    out.write_bytes(b"an extraction in progress")
    code = textwrap.dedent(f"""
        import sys
        from pipeline.files import lock_output
        lock_output({str(out)!r}, what="extraction")
        print("locked", flush=True)
        sys.stdin.read()
    """)
    other = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        for extra in ([], ["--overwrite"]):
            assert cli("--data-root", str(sample_root), "--out", str(out), *extra) == 2
            err = capsys.readouterr().err
            assert err == (f"error: --out {out}: another extraction (pid {other.pid}) is writing this file; wait for it "
                           "to end, or stop it and rerun to resume (the file is left as it is)\n")
            assert out.read_bytes() == b"an extraction in progress"
    finally:
        other.kill()
        other.wait()


@pytest.fixture
def damaged_jpeg_root(sample_root, tmp_path):
    root = tmp_path / "CUB_200_2011"
    shutil.copytree(sample_root, root)
    data = load_cub(root, "train")
    image = root / "images" / data.path[2]
    image.write_bytes(image.read_bytes()[:600])  # cut short: libjpeg complains on stderr, TF raises
    return root, image, data.image_id[2]


def run_extract(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EXTRACT_FEATURES_VERBOSE")}
    return subprocess.run([EXTRACT, *args], cwd=ROOT, capture_output=True, text=True, env={**environ, **env})


def test_quiet_by_default_one_clean_line_for_a_damaged_image(damaged_jpeg_root, model_cache, backbone, tmp_path):
    root, image, image_id = damaged_jpeg_root
    out = tmp_path / "train.h5"
    proc = run_extract("--data-root", str(root), "--out", str(out), "--backbone", "random-resnet50v2",
                       "--image-size", str(IMAGE_SIZE), "--num-views", "1", "--batch-size", "3",
                       "--model-cache", str(model_cache))  # no --quiet: stderr is a pipe, so no progress bar
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"error: {image}: cannot decode image (image_id {image_id}): "
                           "Truncated File Read\n")  # no TF start-up lines, no libjpeg, no \r (its header cut: the contract's PIL decoder)


def test_verbose_shows_tensorflow_lines(sample_root, tmp_path):
    # fails right after TensorFlow loads (--out under tmp_path: nothing is locked or written in the repository)
    args = ("--data-root", str(sample_root), "--out", str(tmp_path / "t.h5"), "--backbone", str(tmp_path))
    error = f"error: --backbone {tmp_path}: directory holds no saved_model.pb (expected a TF2 SavedModel)\n"
    for proc in (run_extract(*args, "--verbose"), run_extract(*args, EXTRACT_FEATURES_VERBOSE="1")):
        assert proc.returncode == 2 and proc.stderr.endswith(error)
        assert any(noise in proc.stderr for noise in TF_NOISE), proc.stderr  # quiet, stderr is `error` alone


def test_a_failing_tensorflow_import_is_still_shown(sample_root, tmp_path):
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('import os\nos.write(2, b"native: libtensorflow_framework.so.2 missing\\n")\n'
                                      'raise ImportError("libtensorflow_cc.so.2: cannot open shared object file")\n')
    proc = run_extract("--data-root", str(sample_root), "--out", str(tmp_path / "t.h5"),
                       PYTHONPATH=str(fake.parent))
    assert proc.returncode == 1
    assert "native: libtensorflow_framework.so.2 missing" in proc.stderr  # held back, then shown with the failure
    assert proc.stderr.rstrip().endswith("ImportError: libtensorflow_cc.so.2: cannot open shared object file")
    assert not (tmp_path / "t.h5.lock").exists()


def test_a_complete_cache_in_a_read_only_directory_reruns_to_nothing_to_do(sample_root, model_cache, tmp_path,
                                                                            capsys, monkeypatch):
    """Root ignores directory modes, so the read-only directory is simulated where the lock file is made."""
    import pipeline.files
    from pipeline.files import OutputNotWritable

    out = tmp_path / "test.h5"
    args = ["--data-root", str(sample_root), "--split", "test", "--out", str(out), "--backbone", "random-resnet50v2",
            "--image-size", str(IMAGE_SIZE), "--num-views", "1", "--model-cache", str(model_cache), "--quiet"]
    assert cli(*args) == 0
    capsys.readouterr()

    def read_only(path, lock_file):
        raise OutputNotWritable(f"{path}: cannot write in {lock_file.parent} (Read-only file system)")

    monkeypatch.setattr(pipeline.files, "_open_lock_file", read_only)
    assert cli(*args) == 0
    assert capsys.readouterr().out.startswith(f"{out}: already complete with this configuration; nothing to do")
    assert cli(*args, "--num-views", "2") == 2  # another configuration must be written: refused, one line
    assert capsys.readouterr().err == f"error: {out}: cannot write in {tmp_path} (Read-only file system)\n"
    assert cli(*args[:4], "--out", str(tmp_path / "new.h5"), *args[6:]) == 2  # no cache there yet: before TensorFlow
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path / 'new.h5'}: cannot write in {tmp_path}")
