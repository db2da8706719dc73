"""The one decoder contract (pipeline.decode) as a matrix: every mode and format x both loaders (PIL: the torch
backbones'; TensorFlow: TF-Hub's) against one reference picture, the refusals of both, and the pictures reaching a
cache through each loader's whole extraction. The TensorFlow side runs only in tests marked tf."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from pipeline.decode import MAX_PIXELS, UnreadableImage, decode_rgb, probe
from tests.pipeline.image_files import make_matrix, make_refusals, reference
from tests.support import IMAGE_SIZE

LOADERS = ["pil", pytest.param("tf", marks=pytest.mark.tf)]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return make_matrix(tmp_path_factory.mktemp("modes"))


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    return make_refusals(tmp_path_factory.mktemp("refusals"))


def decode_with(loader: str, path: Path) -> np.ndarray:
    """The full-size RGB picture a loader decodes (before its resize)."""
    if loader == "pil":
        return decode_rgb(str(path))
    import tensorflow as tf

    from extract.inputs import decode, tf_native

    return decode(tf.constant(str(path)), tf.constant(bool(tf_native([str(path)])[0]))).numpy()


def matrix_names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return sorted(make_matrix(Path(d)))


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name", matrix_names())
def test_every_mode_decodes_to_the_reference(matrix, loader, name):
    path, expected, tol = matrix[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw PIL warning (palette transparency, bombs) escapes
        got = decode_with(loader, path)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    error = np.abs(got.astype(int) - expected.astype(int))
    assert (error.max() if tol == 0 else error.mean()) <= tol, (name, error.max(), error.mean())


@pytest.mark.tf
@pytest.mark.parametrize("name", matrix_names())
def test_both_loaders_see_the_same_picture(matrix, name):
    """Bit for bit: lossy JPEGs too (TensorFlow decodes them with PIL's accurate integer DCT)."""
    path = matrix[name][0]
    np.testing.assert_array_equal(decode_with("tf", path), decode_with("pil", path))


def test_exif_orientation_is_ignored_by_rule(matrix):
    """docs/datasets.md: the pixels as stored (a rotation would change the shape of this 16 x 12 picture)."""
    from PIL import Image

    path = matrix["rgb_exif6.jpg"][0]
    with Image.open(path) as image:
        assert image.getexif()[0x0112] == 6
    assert decode_rgb(str(path)).shape == (12, 16, 3)


def test_sixteen_bit_grey_png_is_not_white(matrix):
    """The issue's case: a 16-bit greyscale PNG decoded as all white (mean 255)."""
    got = decode_rgb(str(matrix["i16.png"][0]))
    assert abs(got.mean() - reference()[..., 0].mean()) < 0.5 and got.mean() < 200


def test_only_plain_jpegs_take_tensorflows_decoder(matrix):
    native = {name for name, (path, _, _) in matrix.items() if probe(str(path)).tf_native}
    assert native == {"rgb.jpg", "l.jpg", "rgb_exif6.jpg"}  # cmyk.jpg, PNG, TIFF, GIF, WebP, BMP: the PIL decoder


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name", ["f_0_255.tif", "f_nan.tif", "i32_negative.tif", "not_an_image.png", "huge.png",
                                  "huge_bomb.png", "huge.jpg"])
def test_refusals_are_one_line_naming_the_file(refusals, loader, name, capsys):
    path, words = refusals[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's decompression-bomb warning must not print raw
        message = refusal(loader, path)
    assert message.startswith(f"{path}: cannot decode image") and words in message and "\n" not in message
    assert capsys.readouterr().err == ""


def refusal(loader: str, path: Path) -> str:
    """The one line each loader's extraction gives for the file (the TF side through its tf.data pipeline)."""
    if loader == "pil":
        from extract.images import load_rgb

        with pytest.raises(UnreadableImage) as e:
            load_rgb(str(path), 32)
        return str(e.value)
    import tensorflow as tf

    from extract.inputs import make_dataset
    from extract.config import ViewSpec
    from extract.tf_batches import find_bad_image

    spec = ViewSpec(("original",), 1, 2, 2, 1.0)
    with pytest.raises(tf.errors.OpError):
        next(iter(make_dataset([str(path)], np.arange(1), {}, spec, 32, 1)))
    return find_bad_image([str(path)], np.arange(1), np.asarray([7]), 32).replace(" (image_id 7)", "")


def test_the_limit_is_the_contracts_own(refusals):
    path, _ = refusals["huge.png"]
    assert MAX_PIXELS == 89_478_485 and "90,000,000 pixels (10000 x 9000)" in refusal("pil", path)


# --- the pictures reaching a cache, through each loader's whole extraction -------------------------------------------
def folder_pair(root: Path, matrix: dict) -> tuple[Path, Path]:
    """Two folder datasets, one image per mode: the files as they are, and each file's expected picture as a plain
    8-bit RGB PNG. Their caches must hold the same features."""
    from PIL import Image

    quirks, plain = root / "quirks", root / "plain"
    for name, (path, expected, tol) in sorted(matrix.items()):
        if tol:  # lossy files: their expected picture is the decoded one, compared bit for bit above
            continue
        for base in (quirks, plain):
            (base / "train" / "a").mkdir(parents=True, exist_ok=True)
        stem = name.replace(".", "_")
        (quirks / "train" / "a" / f"{stem}{path.suffix}").write_bytes(path.read_bytes())
        Image.fromarray(expected).save(plain / "train" / "a" / f"{stem}.png")
    return quirks, plain


def features(loader: str, root: Path, out: Path, backbone=None) -> dict[str, np.ndarray]:
    from extract.config import ViewSpec
    from extract.run import extract_split
    from pipeline.datasets import load_dataset
    from pipeline.reader import read_cache

    net = backbone
    if loader == "pil":
        from tests.extract.torch_support import tiny_backbone

        net = tiny_backbone(IMAGE_SIZE, spatial=False)
    data = load_dataset("folder", root, "train")
    extract_split(data, net, out, ViewSpec(("original",), 1, 2, 2, 1.0), IMAGE_SIZE, 0, False, 8, progress=False)
    cache = read_cache(out)
    return dict(zip((Path(p).stem for p in cache.paths), cache.features["original"]))


@pytest.mark.parametrize("loader", LOADERS)
def test_caches_of_every_mode_equal_the_plain_pictures(matrix, loader, tmp_path, request):
    backbone = request.getfixturevalue("backbone") if loader == "tf" else None  # the session's, at IMAGE_SIZE
    quirks, plain = folder_pair(tmp_path, matrix)
    a = features(loader, quirks, tmp_path / "quirks.h5", backbone)
    b = features(loader, plain, tmp_path / "plain.h5", backbone)
    assert sorted(a) == sorted(b) and len(a) == len([n for n in matrix if not matrix[n][2]])
    for stem in a:
        np.testing.assert_allclose(a[stem], b[stem], rtol=1e-4, atol=1e-4, err_msg=stem)
