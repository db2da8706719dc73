"""Stage 2's --precision: torch's reading of the one rule (pipeline.precision), resolved once at the command's edge,
so every planned run, bank head and config.json carries a concrete precision, never 'auto'; the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import pipeline.precision as rule
from heads.cli import resolved_precisions, sweep_main, train_main
from heads.options import EXPERIMENT_OPTIONS
from heads.search.grid import plan_sweep
from heads.training.bank import banks_of
from heads.training.experiment import Caches, run_experiment
from heads.training.step import resolve_precision
from pipeline.errors import PipelineError
from tests.support.synthetic import write_synthetic_cache

CPU = torch.device("cpu")


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Set whether this CPU has native bfloat16, whatever this machine is: cpu_bf16(True or False)."""
    def simulate(native: bool) -> None:
        monkeypatch.setattr(rule, "cpu_has_native_bf16", lambda *a: native)
        monkeypatch.setattr(rule, "cpu_model_name", lambda *a: "Test CPU 9000")
    return simulate


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("precision-caches")
    kw = dict(num_classes=3, dim=8, separation=0.5)
    return {"train": write_synthetic_cache(d / "train.h5", "train", per_class=12, seed=0, **kw),
            "test": write_synthetic_cache(d / "test.h5", "test", per_class=4, seed=1, first_id=10_000, **kw)}


@pytest.mark.parametrize("native, asked, expected", [
    (True, "auto", "bf16"), (False, "auto", "fp32"), (True, "bf16", "bf16"), (False, "fp32", "fp32"),
    (False, "bf16", "--precision bf16: this CPU (Test CPU 9000) has no native bfloat16"),
    (True, "fp16", "--precision fp16: mixed float16 needs a GPU (--device cuda)"),
])
def test_torch_on_a_cpu_reads_the_rule(cpu_bf16, native, asked, expected):
    cpu_bf16(native)
    if expected.startswith("--"):
        with pytest.raises(PipelineError) as e:
            resolve_precision(asked, CPU)
        assert str(e.value).startswith(expected) and "\n" not in str(e.value)
    else:
        assert resolve_precision(asked, CPU) == resolve_precision(asked, "cpu") == expected
        assert expected == rule.resolve(asked, rule.Capabilities("cpu", cpu_bf16=native))  # the same rule


def test_sweep_heads_resolves_each_precision_once(cpu_bf16):
    cpu_bf16(True)
    assert resolved_precisions((), "cpu") == ("bf16",)  # not given: the default, auto, resolved
    assert resolved_precisions(("auto,fp32", "linear=auto"), "cpu") == ("bf16,fp32", "linear=bf16")
    cpu_bf16(False)
    assert resolved_precisions(("auto",), "cpu") == ("fp32",)
    with pytest.raises(PipelineError, match=r"^--precision fp16: mixed float16 needs a GPU"):
        resolved_precisions(("none=fp32,fp16",), "cpu")


def sweep_options(tmp_path: Path, **grid: tuple[str, ...]) -> dict:
    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=("none,linear",), seeds="0", name="s", out=str(tmp_path), standardize=True, epochs=("1",),
                   weight_decay=("1e-4,1e-2",), **grid)
    return options


def test_the_planned_runs_and_bank_heads_carry_a_concrete_precision(cpu_bf16, tmp_path):
    cpu_bf16(True)
    options = sweep_options(tmp_path)
    options["precision"] = resolved_precisions(options["precision"], "cpu")  # as sweep-heads does
    runs = plan_sweep(options).runs
    assert len(runs) == 4 and {r.spec.options.precision for r in runs} == {"bf16"}
    banks, _alone = banks_of(runs)
    assert banks and all(r.spec.options.precision == "bf16" for bank in banks for r in bank)


def test_a_run_refuses_an_unresolved_precision(caches, tmp_path):
    loaded = Caches.load(str(caches["train"]), str(caches["test"]), ["none"], CPU, log=lambda m: None)
    options = sweep_options(tmp_path, precision=("auto",))
    (run, *_) = plan_sweep(options).runs
    with pytest.raises(ValueError, match="resolve --precision once"):
        run_experiment(loaded, run.spec, tmp_path / "run", score_test=False)


def invoke(command, caches, out: Path, *args: str):
    argv = ["--train", str(caches["train"]), "--test", str(caches["test"]), "--out", str(out), "--device", "cpu",
            "--data-root", str(out / "no-images"), "--epochs", "1", "--batch-size", "16", "--quiet", *args]
    return CliRunner().invoke(command, argv, catch_exceptions=False)


def configs(parent: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(parent.rglob("config.json"))]


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_train_and_sweep_heads_record_the_precision_they_resolved(caches, tmp_path, cpu_bf16, native, expected):
    cpu_bf16(native)
    assert invoke(train_main, caches, tmp_path / "train", "--aux", "linear").exit_code == 0
    result = invoke(sweep_main, caches, tmp_path / "sweep", "--name", "s", "--aux", "none,linear", "--seeds", "0",
                    "--weight-decay", "linear=1e-4,1e-2")  # a bank of two linear heads, and a run alone
    assert result.exit_code == 0, result.output
    found = configs(tmp_path / "train") + configs(tmp_path / "sweep")
    assert len(found) == 4
    assert all(c["options"]["precision"] == c["resolved"]["precision"] == expected for c in found)
    identity = json.loads((tmp_path / "sweep" / "s" / "sweep.json").read_text())["identity"]
    assert all(grid["precision"] == [expected] for grid in identity["grid"].values())


@pytest.mark.parametrize("native, asked, words", [
    (False, "bf16", "error: --precision bf16: this CPU (Test CPU 9000) has no native bfloat16"),
    (True, "fp16", "error: --precision fp16: mixed float16 needs a GPU (--device cuda)"),
])
def test_a_precision_the_device_cannot_run_is_one_line(caches, tmp_path, cpu_bf16, native, asked, words):
    cpu_bf16(native)
    for command, extra in ((train_main, ()), (sweep_main, ("--name", "s"))):
        result = invoke(command, caches, tmp_path, "--aux", "none", "--precision", asked, *extra)
        lines = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
        assert result.exit_code == 2 and lines and lines[0].startswith(words) and len(lines) == 1, result.output
        assert not list(tmp_path.rglob("config.json"))  # stopped before any run
