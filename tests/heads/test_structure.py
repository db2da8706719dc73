"""The shape of heads/ (the house-wide import-cycle check is tests/e2e/test_imports.py): one leaf Method module, every method subclasses it, options as one typed object,
the sweep as plan / run / select / score / report steps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from heads.methods.method import Method
from heads.methods.registry import METHODS
from heads.options import AUX_CHOICES, EXPERIMENT_OPTIONS, MethodOptions

HEADS = Path(__file__).resolve().parents[2] / "heads"


def imports_of(path: Path) -> set[str]:
    """Modules a file imports ('.x' for a relative import of heads.x)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
    return out


def test_method_module_is_a_leaf():
    assert imports_of(HEADS / "methods" / "method.py") <= {"__future__", "typing", "torch"}


@pytest.mark.parametrize("aux", AUX_CHOICES)
def test_every_builder_returns_a_method(aux):
    options = {"views": {"rcm_grid": 3}, "spatial_kinds": []}
    method = METHODS[aux](options, 3, 8, 10)
    assert isinstance(method, Method)
    assert set(METHODS) == set(AUX_CHOICES)


def test_method_options_take_their_defaults_from_the_option_list():
    o = MethodOptions.of({"lr": 0.5, "aux": "pirl", "views": {"rcm_grid": 7}, "spatial_kinds": ["original", "rcm"]})
    assert o.lr == 0.5 and o.rcm_grid == 7 and o.spatial_kinds == ("original", "rcm")
    for opt in EXPERIMENT_OPTIONS:
        if opt.name != "lr":
            assert getattr(o, opt.name) == opt.default
    with pytest.raises(AttributeError):
        o.lr = 1.0  # frozen


def test_plan_sweep_lists_the_runs_seed_major(tmp_path):
    from heads.search.grid import plan_sweep

    options = {o.name: () if o.sweepable else o.default for o in EXPERIMENT_OPTIONS}
    options.update(aux=("none,linear",), seeds="0,1", lr=("0.1,0.01",), name="s", out=str(tmp_path),
                   standardize=True)
    plan = plan_sweep(options)
    assert [(r.seed, r.label) for r in plan.runs] == [
        (0, "none_lr=0.1"), (0, "none_lr=0.01"), (0, "linear_lr=0.1"), (0, "linear_lr=0.01"),
        (1, "none_lr=0.1"), (1, "none_lr=0.01"), (1, "linear_lr=0.1"), (1, "linear_lr=0.01")]
    assert plan.runs[1].run_dir == tmp_path / "s" / "runs" / "none_lr=0.01_seed=0"
    assert plan.runs[1].spec.options.lr == 0.01 and plan.runs[1].spec.command == "sweep-heads"
    assert not (tmp_path / "s").exists()  # planning writes nothing
