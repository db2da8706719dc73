"""--aux dcl end to end: spatial caches from the random backbone on the sample data, both adversarial
modes, evaluation from model.pt, and the destruction-only fallback without spatial maps."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from extract.inputs import ViewSpec
from extract.run import extract_split
from heads.cli import evaluate_main, train_main
from heads.training.metrics import metrics_from_predictions_csv
from pipeline.cub import load_cub
from tests.support import IMAGE_SIZE  # the size the shared backbone fixture runs at

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # needs TensorFlow (stage 1); launchers and end-to-end runs

SPEC = ViewSpec(("original", "rcm"), num_views=2, jigsaw_grid=3, rcm_grid=7, rcm_k=2)


@pytest.fixture(scope="module")
def caches(sample_root, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("dcl-features")
    paths = {}
    for spatial in (True, False):
        for split in ("train", "test"):
            path = out / f"{split}{'-spatial' if spatial else ''}.h5"
            extract_split(load_cub(sample_root, split), backbone, path, SPEC, IMAGE_SIZE, seed=0, spatial=spatial,
                          batch_size=12, progress=False)
            paths[split, spatial] = path
    return paths


def train(caches, out, spatial, *args):
    argv = ["--train", str(caches["train", spatial]), "--test", str(caches["test", spatial]), "--out", str(out),
            "--aux", "dcl", "--epochs", "3", "--batch-size", "4", "--lr", "0.01", "--quiet", *args]
    result = CliRunner().invoke(train_main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run, result.output


@pytest.mark.parametrize("adv,test_logits", [("binary", "original"), ("swap", "sum")])
def test_both_adversarial_modes_run_end_to_end(caches, tmp_path, adv, test_logits):
    run, output = train(caches, tmp_path, True, "--dcl-adv", adv, "--dcl-test-logits", test_logits)
    header = (run / "history.csv").read_text().split("\n")[0].split(",")
    assert {"ce", "adv", "align"} <= set(header)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["top1"] == pytest.approx(metrics_from_predictions_csv(run / "predictions.csv")["top1"])
    result = CliRunner().invoke(evaluate_main, [str(run)], catch_exceptions=False)
    assert result.exit_code == 0 and "matches metrics.json" in result.output
    assert "construction learning" not in output


def test_without_spatial_maps_destruction_only(caches, tmp_path):
    run, output = train(caches, tmp_path, False)
    assert "construction learning (region alignment) needs extract-features --spatial" in output
    header = (run / "history.csv").read_text().split("\n")[0].split(",")
    assert {"ce", "adv"} <= set(header) and "align" not in header


def test_sum_logits_need_swap(caches, tmp_path):
    argv = ["--train", str(caches["train", True]), "--test", str(caches["test", True]), "--out", str(tmp_path),
            "--aux", "dcl", "--dcl-test-logits", "sum", "--quiet"]
    result = CliRunner().invoke(train_main, argv)
    assert result.exit_code == 2 and "swap" in result.output
