"""The options of one stage-2 experiment, as data: `train-heads` and `sweep-heads` are both built from them.

Each option says which `--aux` choices it applies to (`None`: all of them). `train-heads` takes one
value per option; `sweep-heads` takes a comma list for every option marked `sweepable` and crosses
an option only with the aux choices it applies to, so a `none` run has no aux weight.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional

import click

from heads.cells import k_text, parse_k
from pipeline.precision import PRECISIONS

from heads.training.epochs import DEFAULT_PATIENCE

AUX_CHOICES = ("none", "linear", "pirl", "dcl", "dcl-none")
# each auxiliary method's same-network baseline: its network trained with cross-entropy on original images only
BASELINE_OF = {"pirl": "none", "dcl": "dcl-none"}
AUX_HELP = ("none = the report's MLP with cross-entropy only (PIRL's same-network baseline); "
            "linear = a linear probe; pirl = PIRL jigsaw memory-bank loss; dcl = DCL destruction (+ construction "
            "with spatial maps); dcl-none = DCL's network with cross-entropy only (DCL's same-network baseline).")
MLP = frozenset({"none", "pirl"})
DCL = frozenset({"dcl", "dcl-none"})
NEEDS_OPTIONS = ("pirl_form", "dcl_network")  # options that change which cached arrays a method reads (Caches.load)


def _negatives(value: Any) -> str:
    value = str(value)
    if value != "all" and (not value.isdigit() or int(value) < 1):
        raise click.BadParameter(f"expected 'all' or a positive integer, found {value!r}")
    return value


class LabelsPerClass(click.ParamType):
    name = "K|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        try:
            return parse_k(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


class Negatives(click.ParamType):
    name = "all|K"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return _negatives(value)
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)


@dataclass(frozen=True)
class Option:
    """One option of an experiment: its flag, type, default and the aux choices it applies to."""

    name: str  # python name, the key in config.json's "options"
    type: click.ParamType
    default: Any
    help: str
    applies: frozenset[str] | None = None  # None: every aux choice
    sweepable: bool = True
    condition: bool = False  # a sweep selects settings separately for each value (not a hyperparameter)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def render(self, value: Any) -> Any:
        """The value as config.json and a run's name hold it (K: 'all' or the number, as text)."""
        return k_text(value) if isinstance(self.type, LabelsPerClass) else value

    @property
    def default_text(self) -> str:
        return str(self.render(self.default))

    def applies_to(self, aux: str) -> bool:
        return self.applies is None or aux in self.applies

    def convert(self, value: Any) -> Any:
        """One typed value from its text (the command line) or a TOML value (a study spec), with the option's
        type checks (a one-line error naming the flag)."""
        try:
            return self.type.convert(value.strip() if isinstance(value, str) else value, None, None)
        except click.BadParameter as e:
            raise click.BadParameter(e.message, param_hint=f"'{self.flag}'") from None


EXPERIMENT_OPTIONS: tuple[Option, ...] = (
    Option("epochs", click.IntRange(1), 30,
           "Most training epochs: the length of the cosine schedule. A run stops earlier once validation shows it "
           "has passed its best (--patience); one that kept its last epoch while validation was still improving is "
           "marked under-trained."),
    Option("batch_size", click.IntRange(1), 256, "Rows per step."),
    Option("lr", click.FloatRange(0, min_open=True), 0.1, "Peak learning rate (SGD)."),
    Option("momentum", click.FloatRange(0, 1), 0.9, "SGD momentum."),
    Option("weight_decay", click.FloatRange(0), 5e-4, "SGD weight decay (the linear probe's L2 penalty)."),
    Option("warmup_epochs", click.IntRange(0), 2, "Linear warm-up before the cosine decay."),
    Option("grad_clip", click.FloatRange(0), 1.0,
           "Before each update, scale each parameter tensor's gradient to a norm of at most this value, each on its "
           "own (0: off). Keeps DCL's heads from diverging as the adapter's output grows; per tensor, so heads "
           "that share no parameter stay independent."),
    Option("patience", click.IntRange(0), DEFAULT_PATIENCE,
           "Stop a run after this many epochs in a row whose validation loss is worse than its lowest epoch's (paired "
           "over the validation images, beyond 1.96 standard errors): it has passed its best. 0: train every epoch.",
           sweepable=False),
    Option("val_fraction", click.FloatRange(0, 1, max_open=True), 0.1,
           "Share of each class of the training cache held out to select the epoch (0: keep the last).",
           sweepable=False),
    Option("val_per_class", click.IntRange(1), None,
           "Hold out exactly M rows of each class for validation instead of --val-fraction (for few labels: "
           "keep M no larger than --labels-per-class).", sweepable=False),
    Option("labels_per_class", LabelsPerClass(), None,
           "K training rows of each class keep their labels (a nested seeded draw); the rest are unlabelled: "
           "cross-entropy never sees them, the self-supervised losses do. A sweep selects settings per K.",
           condition=True),
    Option("precision", click.Choice(PRECISIONS), "auto",
           "Matrix products in bfloat16 autocast (auto: bf16 on CPUs with native bf16 and on CUDA devices that "
           "support it, else fp16 on CUDA and fp32 on a CPU; bf16 elsewhere is refused; fp16: float16 autocast "
           "with loss scaling, CUDA only). Resolved once per command, where the device is known."),
    Option("classifier_input", click.Choice(["embedding", "hidden"]), "embedding",
           "none/pirl: classify from the 128-d normalised embedding f (the report's design) or from the "
           "D-d hidden layer before the projection (SimCLR's choice for downstream use).", MLP),
    Option("jigsaw_head", click.Choice(["separate", "shared"]), "separate",
           "PIRL: separate = the report's head_jig on the cached jigsaw feature (it shares no trainable weight "
           "with the classifier, so on a frozen backbone the jigsaw views cannot change it); shared = the jigsaw "
           "feature goes through f's first layer first (the paper's shared trunk).", frozenset({"pirl"})),
    Option("pirl_form", click.Choice(["report", "paper"]), "report",
           "PIRL: report = g on the cached feature of the whole re-assembled jigsaw image (the report's design); "
           "paper = g over the nine cached patch features of a view (per-patch Linear(D,128), concatenated in the "
           "stored shuffled order, Linear(1152,128); needs extract-features --views ...,patches).",
           frozenset({"pirl"})),
    Option("aux_weight", click.FloatRange(0), 1.0, "PIRL: total loss = CE + aux-weight x PIRL loss.",
           frozenset({"pirl"})),
    Option("negatives", Negatives(), "all", "PIRL negatives: 'all' other bank entries, or K sampled per step.",
           frozenset({"pirl"})),
    Option("pirl_loss", click.Choice(["infonce", "nce"]), "infonce",
           "PIRL: infonce = softmax cross-entropy; nce = the paper's binary NCE.", frozenset({"pirl"})),
    Option("temperature", click.FloatRange(0, min_open=True), 0.07, "PIRL temperature.", frozenset({"pirl"})),
    Option("dcl_adv", click.Choice(["binary", "swap"]), "binary",
           "DCL adversarial branch: binary = 2-way original/destructed discriminator; swap = 2C-way classifier.",
           frozenset({"dcl"})),
    Option("dcl_adv_weight", click.FloatRange(0), 1.0, "DCL: weight of the adversarial loss.", frozenset({"dcl"})),
    Option("dcl_align_weight", click.FloatRange(0), 1.0,
           "DCL: weight of the region-alignment L1 loss (needs a cache extracted with --spatial).", frozenset({"dcl"})),
    Option("dcl_test_logits", click.Choice(["original", "sum"]), "original",
           "DCL test predictions: the classifier on the original image, or the official code's sum of classifier "
           "and swap logits (needs --dcl-adv swap).", frozenset({"dcl"})),
    Option("dcl_hidden", click.IntRange(1), 512, "DCL: width d of the shared adapter.", DCL),
    Option("dcl_pca", click.IntRange(0), 0,
           "DCL with spatial maps: project each position's layer-normalised D channels onto N fixed principal axes "
           "before the adapter (0: off). Fitted once on a seeded sample of positions of training rows only; "
           "config.json records the rows, positions and explained variance.", DCL),
    Option("dcl_network", click.Choice(["pooled", "maps"]), "pooled",
           "DCL's network (dcl and dcl-none): pooled = the classifier and the adversarial head read the standardised "
           "pooled feature through the adapter Linear(D, d) + ReLU, as none's first layer does, and the classifier is "
           "none's layers after it (Linear(d, 128), L2, Linear(128, C)); with spatial maps, region alignment reads the "
           "same adapter applied at each position. maps = the adapter at each position of the maps, average-pooled, "
           "feeds every branch, the classifier Linear(d, C) (runs saved before this option existed).", DCL),
)
OPTIONS_BY_NAME = {o.name: o for o in EXPERIMENT_OPTIONS}
CONDITIONS = [o.name for o in EXPERIMENT_OPTIONS if o.condition]  # selected separately for each value (K)


def applicable(aux: str) -> list[Option]:
    """The options that change an `aux` run, in declaration order."""
    return [o for o in EXPERIMENT_OPTIONS if o.applies_to(aux)]


def defaults(aux: str) -> dict[str, Any]:
    return {o.name: o.default for o in applicable(aux)}


@dataclass(frozen=True)
class MethodOptions:
    """What a method's builder reads, as one typed object: every experiment option (defaults from
    EXPERIMENT_OPTIONS, written there once), the seed, and what the training cache says (its "views"
    settings, its "spatial_kinds", the "train_rows" trained on; absent when evaluate-heads rebuilds a model)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    warmup_epochs: int
    grad_clip: float
    patience: int
    val_fraction: float
    val_per_class: Optional[int]
    labels_per_class: Optional[int]  # K; None: every training row ("all")
    precision: str
    classifier_input: str
    jigsaw_head: str
    pirl_form: str
    aux_weight: float
    negatives: str
    pirl_loss: str
    temperature: float
    dcl_adv: str
    dcl_adv_weight: float
    dcl_align_weight: float
    dcl_test_logits: str
    dcl_hidden: int
    dcl_pca: int
    dcl_network: str
    seed: int = 0
    views: Optional[Mapping[str, Any]] = None  # the training cache's config["views"] (grids, V, k)
    spatial_kinds: tuple[str, ...] = ()  # kinds whose spatial maps the training cache holds
    train_rows: Any = None  # cache rows trained on (validation rows excluded); None: every row

    @classmethod
    def of(cls, options: "MethodOptions | Mapping[str, Any]") -> "MethodOptions":
        """From a dict of options (train-heads' options, a saved "builder_options"); a missing option takes
        its default, keys that are not options (aux, command, standardize, ...) are ignored."""
        if isinstance(options, MethodOptions):
            return options
        values = {o.name: options.get(o.name, o.default) for o in EXPERIMENT_OPTIONS}
        values["labels_per_class"] = parse_k(values["labels_per_class"])  # a saved record holds K as text
        extra = {f.name: options[f.name] for f in fields(cls) if f.name not in values and f.name in options}
        if "spatial_kinds" in extra:
            extra["spatial_kinds"] = tuple(extra["spatial_kinds"] or ())
        return cls(**values, **extra)

    @property
    def rcm_grid(self) -> int:
        """R, the RCM grid of the training cache's views."""
        if not self.views or "rcm_grid" not in self.views:
            raise ValueError("DCL needs the training cache's views settings (rcm_grid)")
        return int(self.views["rcm_grid"])


_OPTION_FIELDS = [f.name for f in fields(MethodOptions)][:len(EXPERIMENT_OPTIONS)]
assert _OPTION_FIELDS == [o.name for o in EXPERIMENT_OPTIONS], "MethodOptions must list EXPERIMENT_OPTIONS in order"


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
                                 show_default=opt.default_text if isinstance(opt.type, LabelsPerClass) else True, help=opt.help + scope)(f)
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
