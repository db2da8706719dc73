"""The typed options of one stage-2 experiment: the `Option` type, the table of options `MethodOptions` has a
field for (every method's training options and the built-in methods' own), and `MethodOptions`.

This module is a leaf of heads/ (it imports click and heads.training.epochs): the methods import it, the registry
(heads.methods.registry) lists the methods, and heads.options assembles the full option table from both (which
`--aux` choices each option applies to is read from the methods' declarations, never written here).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Optional, Sequence

import click

from pipeline.precision import PRECISIONS

from heads.cells import k_text, parse_k


def _negatives(value: Any) -> str:
    value = str(value)
    if value != "all" and (not value.isdigit() or int(value) < 1):
        raise click.BadParameter(f"expected 'all' or a positive integer, found {value!r}")
    return value


DEFAULT_PATIENCE = 5  # --patience: epochs worse than the lowest before a run stops (heads.training.epochs)


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
    """One option of an experiment: its flag, type, default and the aux choices it applies to (heads.options fills
    `applies` from the methods' declarations: the aux choices whose declaration takes the option)."""

    name: str  # python name, the key in config.json's "options"
    type: click.ParamType
    default: Any
    help: str
    applies: frozenset[str] | None = None  # None: every aux choice
    sweepable: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def applies_to(self, aux: str) -> bool:
        return self.applies is None or aux in self.applies

    def render(self, value: Any) -> Any:
        """The value as config.json and a run's name hold it (K: 'all' or the number, as text)."""
        return k_text(value) if isinstance(self.type, LabelsPerClass) else value

    @property
    def default_text(self) -> str:
        return str(self.render(self.default))

    def convert(self, value: Any) -> Any:
        """One typed value from its text (the command line) or a TOML value (a study spec), with the option's
        type checks (a one-line error naming the flag)."""
        try:
            return self.type.convert(value.strip() if isinstance(value, str) else value, None, None)
        except click.BadParameter as e:
            raise click.BadParameter(e.message, param_hint=f"'{self.flag}'") from None


TYPED_OPTIONS: tuple[Option, ...] = (  # in --help order; a method added later declares its own (MethodOptions.extra)
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
           "cross-entropy never sees them, the self-supervised losses do. A sweep selects settings per K."),
    Option("precision", click.Choice(PRECISIONS), "auto",
           "Matrix products in bfloat16 autocast (auto: bf16 on CPUs with native bf16 and on CUDA devices that "
           "support it, else fp16 on CUDA and fp32 on a CPU; bf16 elsewhere is refused; fp16: float16 autocast "
           "with loss scaling, CUDA only). Resolved once per command, where the device is known."),
    Option("classifier_input", click.Choice(["embedding", "hidden"]), "embedding",
           "none/pirl: classify from the 128-d normalised embedding f (the report's design) or from the "
           "D-d hidden layer before the projection (SimCLR's choice for downstream use)."),
    Option("jigsaw_head", click.Choice(["separate", "shared"]), "separate",
           "PIRL: separate = the report's head_jig on the cached jigsaw feature (it shares no trainable weight "
           "with the classifier, so on a frozen backbone the jigsaw views cannot change it); shared = the jigsaw "
           "feature goes through f's first layer first (the paper's shared trunk)."),
    Option("pirl_form", click.Choice(["report", "paper"]), "report",
           "PIRL: report = g on the cached feature of the whole re-assembled jigsaw image (the report's design); "
           "paper = g over the nine cached patch features of a view (per-patch Linear(D,128), concatenated in the "
           "stored shuffled order, Linear(1152,128); needs extract-features --views ...,patches)."),
    Option("aux_weight", click.FloatRange(0), 1.0, "PIRL: total loss = CE + aux-weight x PIRL loss."),
    Option("negatives", Negatives(), "all", "PIRL negatives: 'all' other bank entries, or K sampled per step."),
    Option("pirl_loss", click.Choice(["infonce", "nce"]), "infonce",
           "PIRL: infonce = softmax cross-entropy; nce = the paper's binary NCE."),
    Option("temperature", click.FloatRange(0, min_open=True), 0.07, "PIRL temperature."),
    Option("dcl_adv", click.Choice(["binary", "swap"]), "binary",
           "DCL adversarial branch: binary = 2-way original/destructed discriminator; swap = 2C-way classifier."),
    Option("dcl_adv_weight", click.FloatRange(0), 1.0, "DCL: weight of the adversarial loss."),
    Option("dcl_align_weight", click.FloatRange(0), 1.0,
           "DCL: weight of the region-alignment L1 loss (needs a cache extracted with --spatial)."),
    Option("dcl_test_logits", click.Choice(["original", "sum"]), "original",
           "DCL test predictions: the classifier on the original image, or the official code's sum of classifier "
           "and swap logits (needs --dcl-adv swap)."),
    Option("dcl_hidden", click.IntRange(1), 512, "DCL: width d of the shared adapter."),
    Option("dcl_pca", click.IntRange(0), 0,
           "DCL with spatial maps: project each position's layer-normalised D channels onto N fixed principal axes "
           "before the adapter (0: off). Fitted once on a seeded sample of positions of training rows only; "
           "config.json records the rows, positions and explained variance."),
    Option("dcl_network", click.Choice(["pooled", "maps"]), "pooled",
           "DCL's network (dcl and dcl-none): pooled = the classifier and the adversarial head read the standardised "
           "pooled feature through the adapter Linear(D, d) + ReLU, as none's first layer does, and the classifier is "
           "none's layers after it (Linear(d, 128), L2, Linear(128, C)); with spatial maps, region alignment reads the "
           "same adapter applied at each position. maps = the adapter at each position of the maps, average-pooled, "
           "feeds every branch, the classifier Linear(d, C) (runs saved before this option existed)."),
)


@dataclass(frozen=True)
class MethodOptions:
    """What a method's builder reads, as one typed object: every option of TYPED_OPTIONS (defaults written there
    once), the values of the options its method declares itself (`own`, by name: a method added without a field
    here, heads.methods.declaration), the seed, and what the training cache says (its "views" settings, its
    "spatial_kinds", the "train_rows" trained on; absent when evaluate-heads rebuilds a model)."""

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
    own: Mapping[str, Any] = field(default_factory=dict)  # the method's own options (Declaration.own_options)

    @classmethod
    def of(cls, options: "MethodOptions | Mapping[str, Any]", own: Sequence[Option] = ()) -> "MethodOptions":
        """From a dict of options (train-heads' options, a saved "builder_options"); a missing option takes
        its default, keys that are not options (aux, command, standardize, ...) are ignored. `own`: the options
        a method declares itself, read into `own` the same way."""
        if isinstance(options, MethodOptions):
            missing = {o.name: o.default for o in own if o.name not in options.own}
            return replace(options, own={**options.own, **missing}) if missing else options
        values = {o.name: options.get(o.name, o.default) for o in TYPED_OPTIONS}
        values["labels_per_class"] = parse_k(values["labels_per_class"])  # a saved record holds K as text
        extra = {f.name: options[f.name] for f in fields(cls)
                 if f.name not in values and f.name != "own" and f.name in options}
        if "spatial_kinds" in extra:
            extra["spatial_kinds"] = tuple(extra["spatial_kinds"] or ())
        return cls(**values, **extra, own={o.name: options.get(o.name, o.default) for o in own})

    def value(self, name: str) -> Any:
        """An option's value: a typed field, or one of the method's own options."""
        return self.own[name] if name in self.own else getattr(self, name)

    def with_values(self, **values: Any) -> "MethodOptions":
        """These options with `values` set: typed fields by name, the rest among the method's own."""
        typed = {k: v for k, v in values.items() if k in _FIELD_NAMES}
        own = {k: v for k, v in values.items() if k not in _FIELD_NAMES}
        return replace(self, **typed, **({"own": {**self.own, **own}} if own else {}))

    @property
    def rcm_grid(self) -> int:
        """R, the RCM grid of the training cache's views."""
        if not self.views or "rcm_grid" not in self.views:
            raise ValueError("DCL needs the training cache's views settings (rcm_grid)")
        return int(self.views["rcm_grid"])


_FIELD_NAMES = frozenset(f.name for f in fields(MethodOptions)) - {"own"}
_OPTION_FIELDS = [f.name for f in fields(MethodOptions)][:len(TYPED_OPTIONS)]
assert _OPTION_FIELDS == [o.name for o in TYPED_OPTIONS], "MethodOptions must list TYPED_OPTIONS in order"
