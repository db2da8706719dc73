"""The options of one stage-2 experiment, as data: `train-heads` and `sweep-heads` are both built from them.

The full table is heads.option_table's options and then each method's own, in the order of the registry
(heads.methods.registry). Which `--aux` choices an option applies to is read from the methods' declarations
(`None`: every choice, an option no method takes for itself). `train-heads` takes one value per option;
`sweep-heads` takes a comma list for every option marked `sweepable` and crosses an option only with the aux
choices it applies to, so a `none` run has no aux weight.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import click

from heads.methods.registry import DECLARATIONS
from heads.option_table import LabelsPerClass, MethodOptions, Option, TYPED_OPTIONS  # noqa: F401  (MethodOptions: re-exported)

AUX_CHOICES = tuple(d.aux for d in DECLARATIONS)
# each auxiliary method's same-network baseline: its network trained with cross-entropy on original images only
BASELINE_OF = {d.aux: d.baseline for d in DECLARATIONS if d.baseline}
AUX_HELP = "; ".join(f"{d.aux} = {d.help}" for d in DECLARATIONS) + "."


def _table() -> tuple[Option, ...]:
    """TYPED_OPTIONS then the methods' own options (in registry order), each applying to the aux choices whose
    declaration takes it."""
    own = {o.name: o for d in DECLARATIONS for o in d.own_options}
    typed = [o.name for o in TYPED_OPTIONS]
    assert not set(own) & set(typed), "a method declares an option of heads.option_table again"
    unknown = {n for d in DECLARATIONS for n in d.options} - set(typed)
    assert not unknown, f"methods take options that heads.option_table lacks: {sorted(unknown)}"
    takers = {name: frozenset(d.aux for d in DECLARATIONS if name in d.takes()) for name in [*typed, *own]}
    return tuple(replace(o, applies=takers[o.name] or None) for o in (*TYPED_OPTIONS, *own.values()))


EXPERIMENT_OPTIONS: tuple[Option, ...] = _table()
OPTIONS_BY_NAME = {o.name: o for o in EXPERIMENT_OPTIONS}


def applicable(aux: str) -> list[Option]:
    """The options that change an `aux` run, in declaration order."""
    return [o for o in EXPERIMENT_OPTIONS if o.applies_to(aux)]


def defaults(aux: str) -> dict[str, Any]:
    return {o.name: o.default for o in applicable(aux)}


def stacked(options: list[Callable]) -> Callable[[Callable], Callable]:
    """One decorator applying click options in their listed order (the first is the first in --help)."""
    def decorate(f: Callable) -> Callable:
        for decorator in reversed(options):
            f = decorator(f)
        return f

    return decorate


def common_options(sweep: bool) -> Callable[[Callable], Callable]:
    """The options both commands share besides the experiment's: caches, device, standardisation, output."""
    found = [
        click.option("--train", default="data/features/train.h5", help="Training feature cache (HDF5)."),
        click.option("--test", default="data/features/test.h5",
                     help="Test feature cache (HDF5); scored once, after selection."),
        click.option("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N."),
        click.option("--maps-in-memory", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
                     help="Spatial maps (DCL) and the shuffled views' pooled features (PIRL, DCL): held in memory, "
                          "or read out of core from an uncompressed scratch copy in $TMPDIR (their share of peak "
                          "memory flat in rows); auto: in memory up to 2 GiB of maps and 1 GiB of views (half the "
                          "free memory of a CUDA device)."),
        click.option("--standardize/--no-standardize", default=True,
                     help="Standardise features per dimension with the training rows' mean and std."),
        click.option("--data-root", default="data/CUB_200_2011",
                     help="CUB directory whose images/ the predictions gallery reads."),
        click.option("--out", default="runs/sweeps" if sweep else "runs",
                     help="Parent of the sweep directory <name>/." if sweep
                     else "Parent of the run directory <UTC timestamp>-<aux>/."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    return stacked(found)


def experiment_options(sweep: bool) -> Callable[[Callable], Callable]:
    """click options for every experiment option: one typed value, or (sweep) repeatable comma lists."""

    def decorate(f: Callable) -> Callable:
        for opt in reversed(EXPERIMENT_OPTIONS):
            scope = "" if opt.applies is None else f" [{', '.join(sorted(opt.applies))}]"
            if sweep and opt.sweepable:
                f = click.option(opt.flag, opt.name, multiple=True, metavar="[AUX=]V1,V2,...",
                                 help=f"{opt.help}{scope} Default {opt.default_text}. A comma list sweeps it; "
                                      "AUX=list sets the list for one aux choice (repeat the option for more).")(f)
            else:
                f = click.option(opt.flag, opt.name, type=opt.type, default=opt.default,
                                 show_default=opt.default_text if isinstance(opt.type, LabelsPerClass) else True,
                                 help=opt.help + scope)(f)
        return f

    return decorate


# --- where a sweep's runs train (heads.search.workers): in this process, or spread over workers on an engine ---
from pipeline.engines import ENGINE_OPTIONS, LAUNCHERS, SUBMITIT_CLUSTERS  # noqa: E402  (no engine is imported by this)

# launcher option -> the launchers it applies to
LAUNCH_OPTIONS = {
    "workers": LAUNCHERS,
    **ENGINE_OPTIONS,
}


def launch_options() -> Callable[[Callable], Callable]:
    """sweep-heads' --launcher and --workers and the engines' settings (as extract-features names them)."""
    found = [
        click.option("--launcher", type=click.Choice(LAUNCHERS), default=None,
                     help="Train the runs not finished yet on --workers N local processes, a SLURM job array "
                          "(submitit) or Ray tasks; each worker loads the caches once. Selection, test scoring "
                          "and the summary stay in this process.  [default: every run in this process]"),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Number of workers for --launcher (the runs are dealt out in order).  [default: 2]"),
        click.option("--cpus-per-task", type=click.IntRange(1), default=None,
                     help="CPUs (torch threads) per worker (SLURM --cpus-per-task, Ray num_cpus).  "
                          "[default: local: this machine's cores / --workers]"),
        click.option("--gpus-per-task", type=click.IntRange(0), default=None,
                     help="slurm, ray: GPUs per worker.  [default: slurm none; ray 1 when the cluster has GPUs]"),
        click.option("--slurm-partition", default=None, help="slurm: partition to submit to."),
        click.option("--slurm-time", type=click.IntRange(1), default=120, show_default=True,
                     help="slurm: time limit per worker, minutes."),
        click.option("--slurm-logs", default=None, help="slurm: submitit's folder for job scripts and logs (shared "
                                                        "storage).  [default: <sweep directory>/workers/submitit]"),
        click.option("--submitit-cluster", type=click.Choice(SUBMITIT_CLUSTERS), default="slurm",
                     hidden=True, help="submitit executor for --launcher slurm; local runs the array as local "
                                       "processes (tests)."),
        click.option("--ray-address", default=None, help="ray: address of the Ray cluster to join (e.g. "
                                                         "ray://head:10001 or auto).  [default: RAY_ADDRESS, else a "
                                                         "new local Ray instance]"),
    ]

    return stacked(found)


# --- how a sweep searches its grid (heads.search.halving) ---------------------------------------------------------
def search_options() -> Callable[[Callable], Callable]:
    """sweep-heads' --search grid|halving and successive halving's eta and rungs."""
    found = [
        click.option("--search", type=click.Choice(["grid", "halving"]), default="grid", show_default=True,
                     help="grid = every setting trains the full --epochs; halving = successive halving per aux "
                          "choice and labels per class: every setting trains --epochs / eta^(rungs-1) epochs of "
                          "its full schedule, the best 1/eta by mean validation loss over seeds go on (seeds "
                          "paired), the last rung's survivors train the full budget (the grid's own runs, each "
                          "continued from the state its rung left: the same numbers as from scratch); stopped runs "
                          "are listed in runs.csv, never selected."),
        click.option("--halving-eta", type=click.IntRange(2), default=3, show_default=True,
                     help="halving: keep the best 1/eta of the settings at each rung."),
        click.option("--halving-rungs", type=click.IntRange(1), default=3, show_default=True,
                     help="halving: number of rungs; rung k trains round(epochs / eta^(rungs-k)) epochs."),
    ]

    return stacked(found)


# --- how a sweep selects (heads.search.cv): on validation rows, or by cross-validation within the K labelled rows ----
DEFAULT_CV_FOLDS = 5  # --cv-folds' default is min(K, this) for each --labels-per-class K


def selection_options() -> Callable[[Callable], Callable]:
    """sweep-heads' --selection val|cv and --cv-folds."""
    found = [
        click.option("--selection", type=click.Choice(["val", "cv"]), default="val", show_default=True,
                     help="val = select each setting and its epoch on validation rows carved from the training "
                          "split (a point at K uses K + the validation rows' labels per class); cv = stratified "
                          "F-fold cross-validation within the K labelled rows of each class (needs K >= 2): the "
                          "validation rows are not used at all, each setting trains F fold runs per seed, the "
                          "setting and its epoch count are chosen on the folds' pooled held-out top-1, then the "
                          "selected setting retrains on all K rows for that many epochs (one final run per seed, "
                          "the only runs scored on the test split). cv trains no banks and refuses --search halving."),
        click.option("--cv-folds", type=click.IntRange(2), default=None,
                     help="cv: number of folds F (at most the smallest K, and at most any class's labelled rows: "
                          "checked against the cache before any run).  "
                          f"[default: min(K, {DEFAULT_CV_FOLDS}) for each K]"),
    ]

    return stacked(found)
