"""Selected settings at the edge of their grid: an option with numeric values whose selected value is the
smallest or the largest the grid tried, read from sweep.json (the grid), selection.json and the selected runs'
config.json. One definition, read by the sweep's summary and the study's report.

An option is judged when its grid for the method holds 2 or more numeric values (a sweepable option of integer
or real type other than K). With 2 values every choice is at an edge: the flag then says
that the grid did not bracket the best value, which is what a reader needs to know; with 3 or more, an edge
means the interior values lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from heads.cells import K_NAME, Cell
from heads.training import artifacts
from heads.options import OPTIONS_BY_NAME

MIN_VALUES = 2  # an option is judged when its grid holds at least this many numeric values


@dataclass(frozen=True)
class Edge:
    """One selected setting's option at the edge of the values tried."""

    cell: Cell  # the selected setting's method and K
    option: str  # heads.options name, e.g. weight_decay
    value: Any
    side: str  # "largest" or "smallest"
    tried: tuple[Any, ...]  # the grid's values, increasing

    def text(self) -> str:
        """'weight decay at the largest of 2 values tried (0.01; tried 0.0001, 0.01)'."""
        name = self.option.replace("_", " ")
        tried = ", ".join(f"{v:g}" for v in self.tried)
        return f"{name} at the {self.side} of {len(self.tried)} values tried ({self.value:g}; tried {tried})"


def numeric(option: str) -> bool:
    """A sweepable option of integer or real type that is not K."""
    opt = OPTIONS_BY_NAME.get(option)
    return (opt is not None and opt.sweepable and option != K_NAME
            and isinstance(opt.type, (click.types.IntParamType, click.types.FloatParamType)))


def edges_of(grid: dict[str, dict[str, list[Any]]], cell: Cell, options: dict[str, Any]) -> list[Edge]:
    """The edges of one selected setting of `cell` (`options`: its run's options) in its method's `grid`."""
    out = []
    for option, values in (grid.get(cell.method) or {}).items():
        tried = sorted({float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if not numeric(option) or len(tried) < MIN_VALUES or option not in options:
            continue
        value = float(options[option])
        side = "largest" if value == tried[-1] else "smallest" if value == tried[0] else ""
        if side:
            out.append(Edge(cell, option, value, side, tuple(tried)))
    return out


def grid_edges(sweep_dir: Path) -> list[Edge]:
    """Every selected setting's edges, in selection.json's order (heads.results.selection), from the sweep's files."""
    grid = (artifacts.read_json(sweep_dir / "sweep.json").get("identity") or {}).get("grid") or {}
    out: list[Edge] = []
    for entry in artifacts.read_json(sweep_dir / "selection.json")["selected"]:
        config = artifacts.read_json(sweep_dir / entry["runs"][0] / "config.json")
        out += edges_of(grid, Cell.of_row(entry), config.get("options") or {})
    return out


def edges_text(edges: list[Edge], cell: Cell) -> str:
    """Every edge of one selected setting, joined: a setting may sit at the edge of several options' grids."""
    return "; ".join(e.text() for e in edges if e.cell == cell)
