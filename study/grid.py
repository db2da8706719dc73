"""A study spec's [grid] and [grid.METHOD] tables as heads' typed grid: each TOML value through its option's own
type (heads.options), errors naming the spec's key; heads.search.grid.build_grid, the one grid builder, expands them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from heads.search.grid import GivenValues

FIXED_IN_HEADS = ("epochs", "batch_size", "precision", "val_fraction", "val_per_class", "patience")  # [heads], not [grid]


def grid_values(path: Path, grid: Any, methods: list[str]) -> "GivenValues":
    """[grid] (the spec's table, study.spec) -> {option name: [(None, typed values)], and (METHOD, typed values) for each [grid.METHOD]}: each TOML
    value through its option's own type (heads.options), an error naming the spec's key."""
    from heads.options import OPTIONS_BY_NAME

    given: dict[str, list[tuple[str | None, list[Any]]]] = {}
    for key, value in grid.data.items():
        if isinstance(value, dict):
            if key not in methods:
                raise PipelineError(f"{grid.where(key)}: [grid.{key}] scopes options to a method, but {key!r} is not "
                                    f"among [heads] methods ({', '.join(methods)})")
            for option, values in value.items():
                name = _option_name(grid, f"{key}.{option}", option, OPTIONS_BY_NAME)
                given.setdefault(name, []).append((key, _typed(path, OPTIONS_BY_NAME[name], values, key)))
        else:
            name = _option_name(grid, key, key, OPTIONS_BY_NAME)
            given.setdefault(name, []).insert(0, (None, _typed(path, OPTIONS_BY_NAME[name], value, None)))
    return given


def _typed(path: Path, option: Any, value: Any, method: str | None) -> list[Any]:
    """A [grid] value (one value or a list) as distinct typed values, through the option's type."""
    values = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for v in values:
        try:
            typed = option.convert(v)
        except click.BadParameter as e:
            raise PipelineError(f"{path}: [grid{'.' + method if method else ''}] {option.flag[2:]}: {e.message}") from None
        if typed not in out:
            out.append(typed)
    if not out:
        raise PipelineError(f"{path}: [grid{'.' + method if method else ''}] {option.flag[2:]}: expected at least one value")
    return out


def _option_name(grid: Any, where: str, flag: str, options: dict[str, Any]) -> str:
    name = flag.replace("-", "_")
    if name in FIXED_IN_HEADS or name == "labels_per_class":
        raise PipelineError(f"{grid.where(where)}: set {name} in [heads], not in [grid] (every run of a study shares it)")
    if name not in options or not options[name].sweepable:
        sweepable = sorted(o.flag[2:] for o in options.values() if o.sweepable and o.name not in FIXED_IN_HEADS)
        raise PipelineError(f"{grid.where(where)}: not an option of sweep-heads that a study sweeps "
                            f"(expected one of {', '.join(sweepable)})")
    return name


def study_grid(path: Path, methods: list[str], given: "GivenValues") -> dict[str, dict[str, list[Any]]]:
    """heads.search.grid.build_grid on the spec's typed values, its errors naming the spec's keys."""
    from heads.search.grid import SpecNames, build_grid

    return build_grid(methods, given, SpecNames(path=str(path)))
