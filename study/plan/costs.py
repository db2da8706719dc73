"""The cost model: seconds of one run from (method, rows, epochs, spatial) and a calibration on this machine.

A training step of method m over r rows costs step_s[m] + r * row_s[m] (fixed per-step work such as
the optimiser update, plus work per row); an epoch runs ceil(n_train / batch) steps over every
training row (K < all: each step also takes min(batch, labelled) labelled rows; a method without
self-supervised losses sees only those), then validates: predict_call_s[m] + n_val * predict_row_s[m].
A run adds its artifacts (model.pt, figures): overhead_s[m]. A selected run is scored once on the
test split: predict_call_s[m] + n_test * predict_row_s[m] + load_s[m] (its model.pt) + score_overhead_s.
A sweep adds once its first run's lazy set-up (first_run_s: the first fit's imports, the first figure's fonts) and its summary: the
report's intervals and two figures (about report_figures_s).

`MethodCost` is keyed by (method, spatial) so that a method with other mechanics (a cheaper DCL, a
search strategy that stops runs early) plugs in by giving its own per-step figures or its own
`run_seconds`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rows:
    """Row counts of one run: training rows (labelled + unlabelled), labelled rows, validation rows, batch."""

    train: int
    labelled: int
    val: int
    batch: int


@dataclass(frozen=True)
class MethodCost:
    """Measured per-step figures of one method at the study's shapes (heads calibration)."""

    step_s: float
    row_s: float
    predict_row_s: float
    overhead_s: float
    uses_unlabelled: bool
    model_bytes: int
    spread: float = 0.0  # relative spread of the measured epochs (interquartile range / median): the plan's range
    load_s: float = 0.0  # reading a run's model.pt back and rebuilding the method (scoring a selected run)
    predict_call_s: float = 0.0  # a prediction pass's cost besides its rows (validation each epoch, scoring once)
    fit_note: str = ""  # what the per-step fit could not resolve (a bound that held, a term raised to its FLOPs floor)
    cpu_share: float = 1.0  # the CPU time its measurements received against their wall time (study.plan.load)


@dataclass
class Calibration:
    """What `study --plan` measured on this machine; saved in the study directory for later ETAs."""

    methods: dict[str, MethodCost] = field(default_factory=dict)  # key: method_key(method, spatial)
    score_overhead_s: float = 1.0
    read_bytes_per_s: float = 200e6  # reading the caches (spatial maps: gzip) into memory
    bootstrap_s_per_interval: float = 0.5
    report_figures_s: float = 0.5  # one selected row's curves and confusion redrawn and shrunk to thumbnails
    first_run_s: float = 0.0  # a process's first run beyond a warm one (lazy imports, first figure), once a sweep
    first_end_s: float = 0.0  # the part of first_run_s paid at that run's end (its first files and figure)
    backbone_inputs_per_s: float | None = None
    backbone_startup_s: float | None = None
    backbone_finish_s: float | None = None  # an extraction's end after its rows: its views figure, the process's exit
    backbone: dict[str, Any] = field(default_factory=dict)  # feature_dim, spatial_shape, weights, precision
    seconds: float = 0.0  # how long the calibration took
    quick: bool = False  # the quick one a study run makes when no `study --plan` calibration was saved
    load: dict[str, Any] | None = None  # the load it was taken under (study.plan.load.LoadRecord); None: not recorded
    reuse_note: str = ""  # set when read back from calibration.json: what --plan says about reusing it

    @property
    def load_record(self) -> Any:
        from study.plan.load import LoadRecord

        return LoadRecord.from_json(self.load)

    @property
    def slowdown(self) -> float:
        """What the load the calibration saw implies against a quiet machine (1 when quiet or unknown); the
        methods' figures are a quiet machine's (study.plan.calibrate)."""
        record = self.load_record
        return record.slowdown if record is not None else 1.0

    @property
    def worst_slowdown(self) -> float:
        record = self.load_record
        return record.worst_slowdown if record is not None else 1.0

    def to_json(self) -> dict[str, Any]:
        data = {**asdict(self), "methods": {k: asdict(v) for k, v in self.methods.items()}}
        data.pop("reuse_note", None)  # said about a read-back copy, never saved
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Calibration":
        fields = MethodCost.__dataclass_fields__
        methods = {k: MethodCost(**{f: x for f, x in v.items() if f in fields}) for k, v in data.get("methods", {}).items()}
        return cls(**{**{k: v for k, v in data.items() if k in cls.__dataclass_fields__}, "methods": methods})


def can_use_maps(aux: str) -> bool:
    """The `aux` method can use spatial maps, as its declaration says (heads.methods.registry): with the caches
    holding them, its runs are timed with them."""
    from heads.methods.registry import declaration

    return declaration(aux).maps


def method_key(method: str, spatial: bool, options: Any = None) -> str:
    """The calibration's name for a method's costs: +spatial with maps; PIRL in the paper's form (g over the
    nine patch features, --pirl-form paper) costs its own, +paper. `options`: the run's typed options
    (heads.options.MethodOptions), None for the defaults."""
    paper = method == "pirl" and options is not None and options.pirl_form == "paper"
    return f"{method}{'+paper' if paper else ''}{'+spatial' if spatial else ''}"


def epoch_seconds(cost: MethodCost, rows: Rows) -> float:
    """One epoch: ceil(train / batch) steps; rows seen per epoch as the two-stream loop feeds them."""
    steps = math.ceil(rows.train / rows.batch)
    if rows.labelled >= rows.train:
        seen = rows.train
    else:
        seen = steps * min(rows.batch, rows.labelled) + (rows.train if cost.uses_unlabelled else 0)
    validation = cost.predict_call_s + rows.val * cost.predict_row_s if rows.val else 0.0
    return steps * cost.step_s + seen * cost.row_s + validation


# A bank of H linear/none heads that differ only in lr or weight decay (heads.training.bank) costs one run plus this share
# of one run per extra head: benchmarks/bench_bank.py at CUB's shape measured a 10-head fp32 bank at 4.5-7.4x one
# run on a shared 2-core Xeon (each further head 0.39-0.71 of a run: the heads' products are the run's work and
# they do not shrink in a bank; what a bank shares is the batches and the standardisation). Each head still writes
# its own run directory (model.pt, curves, files: heads.training.experiment.run_specs), so the runs' own work is not shared.
BANK_HEAD_SHARE = 0.55


def bank_seconds(run_seconds_each: list[float], own_work_each: list[float] | None = None) -> float:
    """One pass of a bank: its longest run's training plus BANK_HEAD_SHARE of it per further head, and every
    head's own work (`own_work_each`: each run's part of `run_seconds_each` that is its run directory,
    MethodCost.overhead_s; none when not given)."""
    own = own_work_each or [0.0] * len(run_seconds_each)
    training = max(t - o for t, o in zip(run_seconds_each, own))
    return training * (1 + BANK_HEAD_SHARE * (len(run_seconds_each) - 1)) + sum(own)


def run_seconds(method: str, rows: Rows, epochs: float, spatial: bool, calibration: Calibration,
                options: Any = None, ends: float = 1.0) -> float:
    """Estimated seconds of one run of `method` (training, validation each epoch, artifacts; `ends`: the times
    its run directory is written, once, or under halving once per rung it trains in)."""
    cost = calibration.methods[method_key(method, spatial, options)]
    return epochs * epoch_seconds(cost, rows) + cost.overhead_s * ends


def score_seconds(method: str, n_test: int, spatial: bool, calibration: Calibration) -> float:
    """Scoring a selected run on the test split once (predictions, confusion figure)."""
    cost = next(c for k, c in calibration.methods.items() if k.split("+")[0] == method and ("+spatial" in k) == spatial)
    return cost.predict_call_s + n_test * cost.predict_row_s + cost.load_s + calibration.score_overhead_s


def input_equivalents(whole_inputs: int, patch_inputs: int, patch_px: int, image_size: int) -> float:
    """Backbone inputs per image in units of one full-size input: a patch crop of p px costs (p / S)^2 of one
    S-px input (a convolutional trunk's FLOPs grow with the pixels; nine 64-px patches ~ 0.73 of one 224-px
    input, benchmarks/bench_extract.py)."""
    return whole_inputs + patch_inputs * (patch_px / image_size) ** 2


EXTRACTION_PARTS = ("start-up", "rows", "finish")  # an extraction process's parts, each timed apart by the plan


def extraction_parts(images: int, per_image: float, calibration: Calibration,
                     pipeline_factor: float) -> dict[str, float] | None:
    """An extraction's seconds in its parts (EXTRACTION_PARTS): the process's start-up (imports, the backbone's
    load, its first batch), its rows (backbone inputs / the inputs/s), and its finish after the last row (the views
    figure, the process's exit); None without the backbone timed. The live ETA learns each part's own ratio."""
    if calibration.backbone_inputs_per_s is None:
        return None
    rows = images * per_image / (calibration.backbone_inputs_per_s * pipeline_factor)
    return {"start-up": calibration.backbone_startup_s or 0.0, "rows": rows,
            "finish": calibration.backbone_finish_s or 0.0}
