"""The grid of a sweep: the aux choices, seeds and option values a user gives, parsed once and expanded into
settings (one per point of each aux choice's grid) and planned runs (one per setting and seed), each with its
typed spec (heads.spec.RunSpec, what the runner gets) and the directory it writes.

A run's name is its setting's `label`: the aux choice and the options named, `aux_opt=value_...`. sweep-heads
names the options that vary in its grid (`plan_sweep`); a study names every option off heads' defaults, so a
grown study finds its finished runs under the same names (`stable_names`): one naming rule, two choices of
which options it names.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from pipeline.errors import PipelineError

from heads.methods.registry import declaration
from heads.options import AUX_CHOICES, EXPERIMENT_OPTIONS, OPTIONS_BY_NAME, MethodOptions, Option, applicable
from heads.search.settings import SweepSettings
from heads.spec import K_NAME, RunSpec


DEFAULT_AUX = ("none", "pirl")


MAX_SEED = 2**31 - 1  # seeds are combined with other numbers into numpy's and torch's generators' seeds


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' (or a mix, '0-2,7') -> distinct seeds in the order given."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if sep and lo else [int(part)]
        except ValueError:
            raise click.BadParameter(f"expected a comma list of integers or a range like 0-4, found {text!r}",
                                     param_hint="'--seeds'") from None
        if sep and lo and int(hi) < int(lo):
            raise click.BadParameter(f"empty range {part!r}", param_hint="'--seeds'")
        seeds += [s for s in values if s not in seeds]
    if not seeds:
        raise click.BadParameter("expected at least one seed", param_hint="'--seeds'")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise click.BadParameter(f"expected seeds from 0 to {MAX_SEED}, found {bad[0]}", param_hint="'--seeds'")
    return seeds


def parse_aux(values: tuple[str, ...]) -> list[str]:
    auxes: list[str] = []
    for value in values or (",".join(DEFAULT_AUX),):
        for aux in (a.strip() for a in value.split(",") if a.strip()):
            if aux not in AUX_CHOICES:
                raise click.BadParameter(f"expected a comma list of {', '.join(AUX_CHOICES)}, found {aux!r}",
                                         param_hint="'--aux'")
            if aux not in auxes:
                auxes.append(aux)
    return auxes


def _values(opt: Option, text: str) -> list[Any]:
    out: list[Any] = []
    for item in (t for t in text.split(",") if t.strip()):
        value = opt.convert(item)
        if value not in out:
            out.append(value)
    if not out:
        raise click.BadParameter(f"expected a comma list of values, found {text!r}", param_hint=f"'{opt.flag}'")
    return out


@dataclass(frozen=True)
class GridNames:
    """How a grid's errors name its parts: sweep-heads' flags, or a study spec's keys."""

    methods: str = "--aux"  # where the methods are listed

    def option(self, opt: Option, aux: str | None) -> str:
        return opt.flag


@dataclass(frozen=True)
class SpecNames(GridNames):
    """A study spec's [grid] and [grid.METHOD] keys."""

    path: str = ""
    methods: str = "[heads] methods"

    def option(self, opt: Option, aux: str | None) -> str:
        return f"{self.path}: [grid{'.' + aux if aux else ''}] {opt.flag[2:]}"


GivenValues = dict[str, list[tuple[str | None, list[Any]]]]
"""option name -> [(a method it is scoped to, or None for every method it applies to; its typed values)]."""


def build_grid(auxes: list[str], given: GivenValues, names: GridNames = GridNames()) -> dict[str, dict[str, list[Any]]]:
    """aux -> {option: typed values}: every applicable option, its default unless given (a method's own list beats a
    plain list). The one grid builder: sweep-heads parses its text into `given`, a study fills it from its TOML."""
    grid = {aux: {o.name: [o.default] for o in applicable(aux) if o.sweepable} for aux in auxes}
    for name, entries in given.items():
        opt = OPTIONS_BY_NAME[name]
        plain, scoped = None, {}
        for aux, values in entries:
            if aux is None:
                plain = values
                continue
            if aux not in auxes:
                raise PipelineError(f"{names.option(opt, aux)}: {aux!r} is not among {names.methods} ({','.join(auxes)})")
            if not opt.applies_to(aux):
                raise PipelineError(f"{names.option(opt, aux)}: does not apply to method {aux}")
            scoped[aux] = values
        targets = [a for a in auxes if opt.applies_to(a)]
        if plain is not None and not targets:
            raise PipelineError(f"{names.option(opt, None)}: applies to {', '.join(sorted(opt.applies or []))}, none "
                                f"of which is among {names.methods} ({','.join(auxes)})")
        for aux in targets:
            if aux in scoped:
                grid[aux][name] = scoped[aux]
            elif plain is not None:
                grid[aux][name] = plain
    return grid


def parse_grid(auxes: list[str], raw: dict[str, tuple[str, ...]]) -> dict[str, dict[str, list[Any]]]:
    """sweep-heads: each option's texts ("V1,V2" or "AUX=V1,V2", repeatable) parsed into typed values, then
    build_grid."""
    given: GivenValues = {}
    for name, occurrences in raw.items():
        opt = OPTIONS_BY_NAME[name]
        for text in occurrences:
            aux, sep, rest = text.partition("=")
            given.setdefault(name, []).append((aux.strip(), _values(opt, rest)) if sep else (None, _values(opt, text)))
    return build_grid(auxes, given)


@dataclass(frozen=True)
class Setting:
    """One point of an aux choice's grid: the values of every option that applies to it."""

    aux: str
    values: tuple[tuple[str, Any], ...]

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.values)

    def label(self, named: list[str]) -> str:
        """'pirl_aux-weight=0.1_lr=0.03': the aux and the `named` options (`parts`) in its run names."""
        return "_".join([self.aux] + self.parts(named))

    def parts(self, named: list[str]) -> list[str]:
        """['aux-weight=0.1', 'lr=0.03']: each named option as flag=value."""
        opts = self.options
        return [f"{OPTIONS_BY_NAME[k].flag[2:]}={OPTIONS_BY_NAME[k].render(opts[k])}" for k in named]


def invalid_reason(setting: Setting) -> str | None:
    """Why a combination cannot run (it is left out of the grid: the method's declaration says), or None."""
    return declaration(setting.aux).invalid(setting.options)


def expand(grid: dict[str, dict[str, list[Any]]]) -> tuple[list[Setting], dict[str, list[str]], list[str]]:
    """(settings in grid order, aux -> options varying in its grid, notes on combinations left out)."""
    settings, varying, notes = [], {}, []
    for aux, options in grid.items():
        names = list(options)
        varying[aux] = [n for n in names if len(options[n]) > 1]
        skipped = 0
        for combo in itertools.product(*(options[n] for n in names)):
            setting = Setting(aux, tuple(zip(names, combo)))
            reason = invalid_reason(setting)
            if reason:
                skipped += 1
                last = reason
                continue
            settings.append(setting)
        if skipped:
            notes.append(f"--aux {aux}: {skipped} combination(s) left out of the grid ({last})")
    return settings, varying, notes


def swept_options(varying: dict[str, list[str]]) -> list[str]:
    """Options that take more than one value for some aux choice, in declaration order."""
    names = {n for v in varying.values() for n in v}
    return [o.name for o in EXPERIMENT_OPTIONS if o.name in names]


@dataclass(frozen=True)
class PlannedRun:
    """One run to train: its setting and seed, its typed spec (what the runner gets), and where it writes."""

    setting: Setting
    label: str  # the setting's name in runs.csv ('pirl_aux-weight=0.1')
    seed: int
    run_dir: Path
    spec: RunSpec
    named: tuple[str, ...] = ()  # the options its name carries (label = setting.label(named))

    @property
    def described(self) -> dict[str, Any]:
        """What sweep.json records of its setting (heads.search.sweep.record_plan): the aux choice and the named options
        as flag=value parts, which the summary and the report print (never parsed out of the name)."""
        return {"aux": self.setting.aux, "named": self.setting.parts(list(self.named))}


@dataclass
class SweepPlan:
    """The parsed grid and the list of runs to train, in order (seed-major, then grid order)."""

    name: str
    sweep_dir: Path
    auxes: list[str]
    seeds: list[int]
    grid: dict[str, dict[str, list[Any]]]
    settings: list[Setting]
    varying: dict[str, list[str]]
    swept: list[str]
    notes: list[str]
    runs: list[PlannedRun]
    base: RunSpec  # what every run shares (the command, the rows rule, the options no grid sweeps)
    how: SweepSettings  # its search, selection, kept weights and where its runs train


def plan_sweep(options: dict[str, Any]) -> SweepPlan:
    """sweep-heads: parse the command's options once into typed values (the grid, each run's spec, the sweep's
    settings) and expand the grid into the runs to train (nothing read or written); runs are named by the options
    that vary in the grid."""
    auxes, seeds = parse_aux(options["aux"]), parse_seeds(options["seeds"])
    raw = {o.name: options[o.name] for o in EXPERIMENT_OPTIONS if o.sweepable and options[o.name]}
    grid = parse_grid(auxes, raw)
    how = SweepSettings.of_command(options)
    check_selection(how, grid)
    if not how.cv and options["val_fraction"] <= 0 and not options["val_per_class"]:
        raise PipelineError("--val-fraction 0: a sweep selects on validation rows; give a fraction in (0, 1) "
                            "or --val-per-class M")
    name = options["name"] or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    fixed = {o.name: options[o.name] for o in EXPERIMENT_OPTIONS if not o.sweepable}
    base = RunSpec("", 0, MethodOptions.of(fixed), bool(options["standardize"]), "sweep-heads")
    return plan_grid(name, Path(options["out"]) / name, auxes, seeds, grid, base, how=how)


def plan_grid(name: str, sweep_dir: Path, auxes: list[str], seeds: list[int], grid: dict[str, dict[str, list[Any]]],
              base: RunSpec, names: Callable[[Setting, list[str]], list[str]] | None = None,
              how: SweepSettings = SweepSettings()) -> SweepPlan:
    """The planned runs of a parsed grid, seed-major then grid order: each run's spec is `base` (the command, the
    standardisation, the options every run shares) with its aux, seed and setting's options; its name is its
    setting's label over `names(setting, varying)` (default: the options that vary in its aux choice's grid).
    Under --selection cv (`how`), each (setting, seed) as its fold runs (heads.search.cv.fold_runs)."""
    settings, varying, notes = expand(grid)
    runs = []
    for seed in seeds:
        for setting in settings:
            named = names(setting, varying[setting.aux]) if names else varying[setting.aux]
            label = setting.label(named)
            spec = dataclasses.replace(base, method=setting.aux, seed=seed,
                                       options=base.options.with_values(seed=seed, **setting.options))
            runs.append(PlannedRun(setting, label, seed, sweep_dir / "runs" / f"{label}_seed={seed}", spec,
                                   tuple(named)))
    if how.cv:  # the final runs are planned after selection (heads.search.cv)
        from heads.search.cv import fold_runs

        runs = fold_runs(runs, how.cv_folds)
    return SweepPlan(name, sweep_dir, auxes, seeds, grid, settings, varying, swept_options(varying), notes, runs,
                     base, how)


def off_default_names(exclude: tuple[str, ...] = ()) -> Callable[[Setting, list[str]], list[str]]:
    """A naming choice for plan_grid: every option off heads' default, and the conditions (K), but `exclude`.
    The name then does not depend on the rest of the grid (a study's choice: a grown study finds its runs)."""
    def names(setting: Setting, varying: list[str]) -> list[str]:
        return [k for k, v in setting.options.items() if k not in exclude
                and (k == K_NAME or v != OPTIONS_BY_NAME[k].default)]
    return names


def check_selection(how: SweepSettings, grid: dict[str, dict[str, list[Any]]]) -> None:
    """--selection cv's conditions (heads.search.cv.check_cv), one line each."""
    if not how.cv:
        if how.cv_folds:
            raise PipelineError("--cv-folds: applies to --selection cv only")
        return
    from heads.search.cv import check_cv

    ks = [k for opts in grid.values() for k in opts.get("labels_per_class", [None])]
    check_cv(ks, how.cv_folds, how.search)
