"""Real images through the whole study (issue 33, part 6): scikit-learn's handwritten digits, shipped in its wheel
(pipeline.datasets.digits; nothing downloaded), written as an image folder, extracted by the random ResNet-50 v2
and trained by every method. Every run is healthy, every method far above chance, and the linear probe agrees
with scikit-learn's LogisticRegression on the same cached features (tests/support/reference_probe.py).

Size (CI's budget: the whole suite under 10 minutes on a slow 2-core CPU): 10 digits x 30 images (21 train /
9 test each: 210 / 90), 64-px PNGs at 64 px (2x2 maps), methods none, linear, pirl, dcl, dcl-none, K = all,
2 seeds, one validation image per class (the demo's protocol), 24 epochs at most (a ceiling: before issue 33's
stop rule every run trains all 24; at 12, several runs' selected epoch was their last, which that rule calls
under-trained).

The probe's tolerance, PROBE_TOLERANCE = 3.4 points: issue 33's target for the full protocol is 1 point at 540
test images. The noise of a paired accuracy difference on n test images scales as 1/sqrt(n) (its standard error
is sqrt(discordant images)/n, and the discordant images grow with n), so the same target at 90 images is
1 x sqrt(540/90) = 2.45 points; a difference moves in steps of one image (1.11 points), and the tolerance is
3 images (3.33 points), the smallest step count above 2.45 points plus one image of slack for arithmetic that
differs between CPUs. Measured on this cache's kind (Intel Xeon, 2 cores): the probe trained to its last epoch
(train-heads --val-fraction 0, 12 or 30 epochs, weight decay 1e-4 or 1e-2, seeds 0 and 1) was within
-0.0 to +2.2 points of scikit-learn (88.89%, the same for every C from 1e-2 to 1e3); a probe whose epoch was
chosen by a 10-image tie before issue 33's selection rule scored 81.11% (-7.8 points) and fails here, as it should.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.datasets import load_dataset
from pipeline.datasets.digits import write_digits
from pipeline.errors import PipelineError

from tests.support.reference_probe import reference_probe

METHODS = ("none", "linear", "pirl", "dcl", "dcl-none")
SEEDS = (0, 1)
PER_CLASS, PNG_SIZE = 30, 64
CHANCE = 1 / 10
PROBE_TOLERANCE = 0.034  # 3 test images of 90 (see the module docstring)


# ---- the writer: real scans, stratified, seeded (no TensorFlow) ----

def test_digits_are_written_as_a_stratified_seeded_image_folder(tmp_path):
    from sklearn.datasets import load_digits

    root = write_digits(tmp_path / "a", size=32, seed=4, images_per_class=10, classes=4)
    train, test = (load_dataset("folder", root, s) for s in ("train", "test"))
    assert train.class_names == ["0", "1", "2", "3"] and len(train) == 28 and len(test) == 12
    assert np.bincount(train.label).tolist() == [7] * 4 and np.bincount(test.label).tolist() == [3] * 4
    assert not set(train.path) & set(test.path)
    scans, target = (lambda d: (d.images, d.target))(load_digits())
    for path, label in zip(train.path[:5], train.label[:5]):  # each file is its load_digits row, scaled
        index = int(re.search(r"digit_(\d+)\.png", path).group(1))
        assert target[index] == label
        image = Image.open(root / path)
        assert image.size == (32, 32) and image.mode == "L"
        small = np.asarray(image.resize((8, 8), Image.BOX), dtype=float)
        assert np.corrcoef(small.ravel(), scans[index].ravel())[0, 1] > 0.9
    again = write_digits(tmp_path / "b", size=32, seed=4, images_per_class=10, classes=4)
    assert load_dataset("folder", again, "train").path == train.path  # deterministic from the seed
    other = write_digits(tmp_path / "c", size=32, seed=5, images_per_class=10, classes=4)
    assert load_dataset("folder", other, "train").path != train.path
    assert "real images (not synthetic)" in (root / "README").read_text()


def test_every_digit_gives_the_70_30_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target  # what write_digits splits when no subsample is asked for
    train, test = train_test_split(np.arange(len(target)), test_size=0.3, stratify=target, random_state=0)
    assert (len(train), len(test)) == (1257, 540)


def test_bad_digits_options_are_one_line_errors(tmp_path):
    with pytest.raises(PipelineError, match="digit 0 has only 178 images"):
        write_digits(tmp_path, images_per_class=300)
    with pytest.raises(PipelineError, match="expected 1 to 10"):
        write_digits(tmp_path, classes=11)
    assert not (tmp_path / "digits").exists()  # nothing half-written


def test_make_sample_dataset_digits_says_the_images_are_real(tmp_path):
    from click.testing import CliRunner

    from extract.sample_cli import main

    result = CliRunner().invoke(main, ["--layout", "digits", "--out", str(tmp_path), "--images-per-class", "5",
                                       "--classes", "3", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert "wrote 10 train / 5 test images in 3 classes" in result.output and "real images" in result.output
    assert Image.open(next((tmp_path / "digits" / "test" / "2").glob("*.png"))).size == (16, 16)
    refused = CliRunner().invoke(main, ["--layout", "cub", "--size", "16", "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "--size: applies to --layout digits only" in refused.output


# ---- the whole study on real images ----

# the probe's L2 penalty, selected on validation (a study's default protocol sweeps it, as studies/demo.toml does;
# scikit-learn's reference chooses its C on training rows): the default 5e-4 alone left seed 0 at 84.4% against 88.9%
PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


def spec_text(root: Path, work: Path, model_cache: Path) -> str:
    return f"""\
name = "real-digits"
out = "{work / 'study'}"
[dataset]
name = "folder"
root = "{root}"
[backbone]
handle = "random-resnet50v2"
model_cache = "{model_cache}"
precision = "fp32"
image_size = {PNG_SIZE}
[views]
num_views = 1
rcm_grid = 2
rcm_k = 1
[extraction]
features = "{work / 'features'}"
[heads]
methods = [{", ".join(f'"{m}"' for m in METHODS)}]
labels_per_class = ["all"]
seeds = [{", ".join(str(s) for s in SEEDS)}]
epochs = 24
batch_size = 32
device = "cpu"
precision = "fp32"
val_per_class = 1
[grid]
[grid.linear]
weight-decay = [{", ".join(f"{w:g}" for w in PROBE_WEIGHT_DECAYS)}]
"""


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def top1(predictions: Path) -> float:
    rows = rows_of(predictions)
    return sum(r["pred"] == r["label"] for r in rows) / len(rows)


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory, model_cache) -> Path:
    """The study on real digits, run once for this module's tests; its work folder."""
    from study.cli import run_study

    tmp_path = tmp_path_factory.mktemp("digits-study")
    root = write_digits(tmp_path / "data", size=PNG_SIZE, seed=0, images_per_class=PER_CLASS)
    spec = tmp_path / "digits.toml"
    spec.write_text(spec_text(root, tmp_path, model_cache))
    run_study(str(spec), None)
    return tmp_path


@pytest.mark.tf
@pytest.mark.slow
def test_a_study_on_real_images_learns_every_method_and_its_probe_matches_scikit_learn(digits_study):
    tmp_path = digits_study
    sweep = tmp_path / "study" / "sweep"
    runs = rows_of(sweep / "runs.csv")
    assert sorted({r["aux"] for r in runs}) == sorted(METHODS)
    assert len(runs) == (len(METHODS) - 1 + len(PROBE_WEIGHT_DECAYS)) * len(SEEDS)
    unhealthy = [(r["aux"], r["seed"], r["health"]) for r in runs if r["health"] != "ok" or r["status"] != "done"]
    assert not unhealthy, f"runs that did not learn (runs.csv health): {unhealthy}"

    selected = json.loads((sweep / "selection.json").read_text())["selected"]
    assert sorted(e["aux"] for e in selected) == sorted(METHODS)
    test = {(e["aux"], int(seed)): top1(sweep / run / "predictions.csv")
            for e in selected for seed, run in zip(e["seeds"], e["runs"])}
    assert len(test) == len(METHODS) * len(SEEDS)
    weak = {key: round(100 * v, 2) for key, v in test.items() if v <= 5 * CHANCE}
    assert not weak, f"selected test top-1 at or below 5x chance (50%): {weak}"

    features = tmp_path / "features"
    gaps = {}
    for seed in SEEDS:
        ref = reference_probe(features / "train.h5", features / "test.h5", seed)
        assert (ref.train_rows, ref.test_rows) == (210, 90)
        gaps[seed] = (test["linear", seed], ref)
    far = {seed: f"probe {100 * p:.2f}% vs scikit-learn {100 * ref.test_top1:.2f}% (C = {ref.c:g})"
           for seed, (p, ref) in gaps.items() if abs(p - ref.test_top1) > PROBE_TOLERANCE + 1e-9}
    assert not far, (f"the linear probe's test top-1 is not within {100 * PROBE_TOLERANCE:.1f} points of scikit-learn's "
                     f"LogisticRegression on the same cache: {far}")


# the numbers of this study as the code gave them before issue 35's restructuring (tests/support/golden.py); an
# accuracy moves in steps of one image (1.11 points of 90 test images), float arithmetic differs between CPUs in
# its last digits: 1e-3 lets the latter through, never the former
GOLDEN = Path(__file__).parent / "golden" / "real-digits.json"
GOLDEN_TOLERANCE = 1e-3


@pytest.mark.tf
@pytest.mark.slow
def test_the_study_gives_the_numbers_it_gave_before_the_restructuring(digits_study):
    from tests.support.golden import compare, study_numbers

    found = study_numbers(digits_study / "study")
    differences = compare(found, json.loads(GOLDEN.read_text()), GOLDEN_TOLERANCE)
    assert not differences, "\n".join(differences[:20])


def test_the_golden_comparison_names_each_changed_number_and_text():
    from tests.support.golden import compare

    golden = {"runs.csv": [{"aux": "none", "val_loss": "0.634911"}], "report.md": [["93.33", "2"]]}
    same = {"runs.csv": [{"aux": "none", "val_loss": "0.6349115"}], "report.md": [["93.33", "2"]]}
    assert compare(same, golden, 1e-3) == []
    moved = {"runs.csv": [{"aux": "dcl", "val_loss": "0.70"}], "report.md": [["92.22", "2"]]}
    assert compare(moved, golden, 1e-3) == ["runs.csv[0].aux: 'dcl' != 'none'", "runs.csv[0].val_loss: 0.70 != 0.634911",
                                           "report.md[0][0]: 92.22 != 93.33"]
    assert compare({"runs.csv": []}, golden) == ["the top: keys ['runs.csv'] != ['report.md', 'runs.csv']"]
