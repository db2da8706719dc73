"""Stage 2 under bad input and interruptions: one clear line, exit 2, nothing silently wrong, nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import heads.training.artifacts
from heads.cli import evaluate_main, train_main
from heads.methods.method import Method
from tests.support.synthetic import write_synthetic_cache
from heads.training.step import Diverged, TrainOptions
from heads.training.train import fit
from heads.training.data import FeatureTable, Scaler

C, D = 3, 16
KW = dict(num_classes=C, dim=D, separation=0.5, per_class=10)
FAST = ["--epochs", "2", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pair")
    return {"train": write_synthetic_cache(d / "train.h5", "train", seed=0, **KW),
            "test": write_synthetic_cache(d / "test.h5", "test", seed=1, first_id=1000, **KW)}


def train(out: Path, train_cache: Path, test_cache: Path, *args: str):
    argv = ["--train", str(train_cache), "--test", str(test_cache), "--out", str(out), *FAST, *args]
    return CliRunner().invoke(train_main, argv, catch_exceptions=False)


def one_error(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("where", ["train", "test"])
def test_nan_in_spatial_maps_is_refused_before_training(tmp_path, where):
    kw = dict(KW, spatial_shape=(2, 2))
    caches = {"train": write_synthetic_cache(tmp_path / "train.h5", "train", seed=0, **kw),
              "test": write_synthetic_cache(tmp_path / "test.h5", "test", seed=1, first_id=1000, **kw)}
    with h5py.File(caches[where], "r+") as f:
        f["spatial/original"][7, 1, 0, 3] = np.inf
        image_id = int(f["image_id"][7])
    line = one_error(train(tmp_path / "runs", caches["train"], caches["test"], "--aux", "dcl"))
    assert f"{where}.h5" in line and "spatial/original" in line and "row 7" in line and f"image_id {image_id}" in line
    assert not (tmp_path / "runs").exists()


class NaNAux(Method):
    """A method whose auxiliary loss turns NaN on the second step."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(D, C)
        self.steps = 0

    def forward(self, batch):
        return self.lin(batch["original"])

    def losses(self, batch):
        self.steps += 1
        ce = torch.nn.functional.cross_entropy(self(batch), batch["label"])
        return {"ce": ce, "pirl": ce * (float("nan") if self.steps == 2 else 1.0)}


def test_a_nan_loss_names_its_component(pair):
    from pipeline.reader import read_cache

    cache = read_cache(pair["train"])
    table = FeatureTable.from_cache(cache, set(), "cpu")
    rows = np.arange(len(cache))
    with pytest.raises(Diverged, match="the pirl loss turned nan .*ce [0-9.]+, pirl nan.*lower --lr"):
        fit(NaNAux(), table, rows[:20], rows[20:], Scaler.identity(D), TrainOptions(epochs=1, batch_size=8),
            progress=False)


def test_caches_the_wrong_way_round_are_refused(pair, tmp_path):
    line = one_error(train(tmp_path, pair["test"], pair["train"], "--aux", "none"))
    assert "--train" in line and "test split" in line and "swapped" in line
    both_train = write_synthetic_cache(tmp_path / "other_train.h5", "train", seed=2, first_id=5000, **KW)
    line = one_error(train(tmp_path, pair["train"], both_train, "--aux", "none"))
    assert "--test" in line and "train split" in line
    everything = write_synthetic_cache(tmp_path / "all.h5", "all", seed=3, first_id=9000, **KW)
    assert "split 'all'" in one_error(train(tmp_path, everything, pair["test"], "--aux", "none"))
    assert not any(p.is_dir() for p in tmp_path.iterdir())


def test_missing_test_cache_names_the_option(pair, tmp_path):
    line = one_error(train(tmp_path, pair["train"], tmp_path / "nope.h5", "--aux", "none"))
    assert line.startswith(f"error: --test {tmp_path / 'nope.h5'}: feature cache not found")
    assert "extract-features --split test" in line


@pytest.mark.parametrize("device, words", [("foo", "--device: expected auto, cpu, cuda or cuda:N, found 'foo'"),
                                           ("meta", "--device: expected")])
def test_bad_device_is_one_line(pair, tmp_path, device, words):
    assert words in one_error(train(tmp_path, pair["train"], pair["test"], "--device", device))


def test_unwritable_out_is_one_line_before_training(pair, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = one_error(train(blocker / "runs", pair["train"], pair["test"], "--aux", "none"))
    assert "--out" in line and "is a file, not a directory" in line
    if os.geteuid() != 0:  # root writes through a read-only mode bit
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert "cannot write" in one_error(train(ro, pair["train"], pair["test"], "--aux", "none"))


def test_an_interrupted_run_stays_partial_and_is_refused(pair, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands in for a kill while the run writes its files

    monkeypatch.setattr(heads.training.artifacts, "save_model", killed)
    assert train(tmp_path, pair["train"], pair["test"], "--aux", "none").exit_code != 0
    (partial,) = tmp_path.iterdir()
    assert partial.name.endswith("-none.partial") and (partial / "config.json").is_file()
    assert not (partial / "model.pt").exists()
    monkeypatch.undo()
    line = one_error(CliRunner().invoke(evaluate_main, [str(partial)]))
    assert "unfinished run" in line and str(partial) in line
    # a finished run is renamed into place with everything in it
    assert train(tmp_path, pair["train"], pair["test"], "--aux", "none").exit_code == 0
    (done,) = [p for p in tmp_path.iterdir() if not p.name.endswith(".partial")]
    assert {"model.pt", "metrics.json", "predictions.csv", "curves.png"} <= {p.name for p in done.iterdir()}


@pytest.mark.parametrize("content, words", [(b"", "empty file"), (b"garbage" * 10, "truncated or damaged"),
                                            (None, "truncated or damaged")])
def test_damaged_model_files_are_one_line(pair, tmp_path, content, words):
    assert train(tmp_path / "runs", pair["train"], pair["test"], "--aux", "none").exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    model = run / "model.pt"
    if content is None:  # truncated to half
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
    else:
        model.write_bytes(content)
    line = one_error(CliRunner().invoke(evaluate_main, [str(run)]))
    assert words in line and "model.pt" in line


def test_evaluate_heads_without_arguments_prints_usage():
    result = CliRunner().invoke(evaluate_main, [])
    assert result.exit_code == 2 and "Usage:" in result.output and "expected one or more run directories" in result.output


def test_quiet_logs_no_progress_codes_and_one_untrained_note(tmp_path):
    kw = dict(KW, backbone_weights="random (untrained)")
    tr = write_synthetic_cache(tmp_path / "u_train.h5", "train", seed=0, **kw)
    te = write_synthetic_cache(tmp_path / "u_test.h5", "test", seed=1, first_id=1000, **kw)
    argv = ["--train", str(tr), "--test", str(te), "--out", str(tmp_path / "runs"), "--epochs", "2", "--aux", "pirl"]
    result = CliRunner().invoke(train_main, argv, catch_exceptions=False)  # not --quiet, but not a terminal
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "\x1b" not in result.output
    assert result.output.count("UNTRAINED") == 1
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "config.json").read_text())["backbone_untrained"] is True
