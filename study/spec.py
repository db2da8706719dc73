"""A study spec: one TOML file (read with the standard library's tomllib) -> a typed `StudySpec`.

    name = "cub-label-efficiency"
    out = "runs/studies/cub-label-efficiency"    # the study's directory (`study --out` overrides)
    [dataset]    name (cub | aircraft | cars | dogs | flowers102 | nabirds | folder; pipeline.datasets), root
                 (default data/<the dataset's directory>), download, [dataset.options] (the reader's: level, csv)
    [[datasets]] instead of [dataset], one table per dataset (name, label, root, download, [datasets.options]):
                 the same study on each, in out/<label> with caches in <features>/<label>, and one report
                 with a column per dataset (study.report.compare)
    [backbone]   handle, seed, model_cache, precision, image_size, batch_size; a PyTorch handle
                 (torchvision:<arch>, timm:<name>) also weights ("random" or a file's path, required for it) and
                 device (auto | cpu | cuda: where extraction runs it)
    [views]      num_views, jigsaw_grid, rcm_grid, rcm_k, patch_grid, patch_size, patch_jitter; kinds and spatial
                 default to what the methods need (pirl: jigsaw, or patches with `pirl-form = "paper"`; dcl: rcm)
    [extraction] features (directory of train.h5/test.h5), launcher (none|local|slurm|ray), shards,
                 [extraction.options] (launcher options, named like extract-features' flags)
    [heads]      methods, labels_per_class, seeds, epochs, patience, batch_size, device, precision,
                 val_per_class | val_fraction, interval (bootstrap|t), keep_weights,
                 selection (val | cv: cross-validation within the K labelled rows, K >= 2; heads.search.cv) and cv_folds,
                 search (grid | halving, with halving_eta, halving_rungs: heads.search.halving),
                 launcher (in-process | local | slurm | ray) and workers: the sweep's runs through heads.search.workers,
                 target_effect (points, default 1.0: the effect the report says how many seeds detect) and
                 max_seeds (grow the seeds toward target_effect from the spec's seeds as a pilot, up to this
                 many; study.run.stages.stage_grow)
    [grid]       sweep-heads options without their dashes: `aux-weight = [0.01, 0.1, 1]`;
                 [grid.<method>] scopes a list to one method (sweep-heads' `--weight-decay linear=...`)

Relative paths are relative to the directory the command runs in, as for every other command.
Every problem is one PipelineError naming the file and the key.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.errors import PipelineError

from heads.cells import K, parse_k

from study.grid import FIXED_IN_HEADS, grid_values, study_grid  # noqa: F401  (FIXED_IN_HEADS: read by the plan)

if TYPE_CHECKING:
    from heads.search.grid import GivenValues

LAUNCHERS = ("none", "local", "slurm", "ray")
SWEEP_LAUNCHERS = ("in-process", "local", "slurm", "ray")  # [heads] launcher (heads.search.workers)
KIND_ORDER = ("original", "jigsaw", "rcm", "patches")
DEFAULT_METHODS = ["none", "linear", "pirl"]


@dataclass(frozen=True)
class Extraction:
    features: Path
    launcher: str = "none"
    shards: int = 1
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudySpec:
    """Everything one study asks for, checked."""

    path: Path
    name: str
    out: Path
    data_root: Path
    download: bool
    backbone: str
    backbone_seed: int
    model_cache: Path
    precision: str  # extraction precision as asked (auto is resolved by the plan)
    image_size: int
    extract_batch_size: int
    kinds: tuple[str, ...]
    num_views: int
    jigsaw_grid: int
    rcm_grid: int
    rcm_k: float
    spatial: bool
    extraction: Extraction
    methods: list[str]
    labels_per_class: list[K]  # 1, 5, None (all)
    seeds: list[int]
    epochs: int
    batch_size: int
    device: str
    heads_precision: str
    val_per_class: int | None
    val_fraction: float
    interval: str
    keep_weights: str
    grid_given: GivenValues  # option name -> [(method or None, typed values)]: [grid], [grid.METHOD] and [heads]
    grid: dict[str, dict[str, list[Any]]]  # method -> option -> values (heads.search.grid.parse_grid)
    search: str = "grid"  # [heads] search: grid | halving (heads.search.halving)
    halving_eta: int = 3
    halving_rungs: int = 3
    launcher: str | None = None  # [heads] launcher: None = the study's own loop; in-process | local | slurm | ray
    workers: int = 2
    dataset: str = "cub"  # [dataset] name (pipeline.datasets.DATASETS)
    dataset_options: dict[str, Any] = field(default_factory=dict)  # the reader's options (e.g. aircraft's level)
    patch_grid: int = 3  # "patches" (PIRL in the paper's form): grid x grid patch crops per view
    patch_size: int | None = None  # pixels; None: VISSL's proportions (pipeline.views.patch_geometry)
    patch_jitter: int | None = None
    label: str | None = None  # [[datasets]] label: this dataset's part of a study of several
    selection: str = "val"  # [heads] selection: val (validation rows) | cv (cross-validation within the K rows)
    cv_folds: int | None = None  # [heads] cv_folds: F (None: min(K, 5), heads.search.cv.folds_for)
    backbone_weights: str | None = None  # [backbone] weights: a torch backbone's "random" or file (extract-features --weights)
    backbone_device: str = "auto"  # [backbone] device: where extraction runs a torch backbone (--device)
    target_effect: float = 1.0  # [heads] target_effect: points; the report's seeds-for-this-effect (heads.results.stats)
    max_seeds: int | None = None  # [heads] max_seeds: grow the seeds toward target_effect up to this many (None: no growth)
    patience: int = 5  # [heads] patience: the epoch rule's stop (heads.training.epochs; 0: train every epoch)

    @property
    def untrained_backbone(self) -> bool:
        """Whether the backbone's weights are random: random-resnet50v2, or a torch backbone's weights = "random"."""
        from extract.backbone_names import RANDOM_RESNET, RANDOM_WEIGHTS

        return self.backbone == RANDOM_RESNET or self.backbone_weights == RANDOM_WEIGHTS

    def backbone_argv(self) -> list[str]:
        """extract-features' (and the backbone probe's) --weights and --device, for a torch backbone only."""
        if self.backbone_weights is None:
            return []
        return ["--weights", self.backbone_weights, "--device", self.backbone_device]

    def views_config(self) -> dict[str, Any]:
        """The `views` part of a cache's config (schema in README, "Cache schema")."""
        config = {"kinds": list(self.kinds), "num_views": self.num_views, "jigsaw_grid": self.jigsaw_grid,
                  "rcm_grid": self.rcm_grid, "rcm_k": float(self.rcm_k)}
        if "patches" in self.kinds:  # as extract.config.ViewSpec.as_config writes it: the geometry resolved
            _cell, patch, jitter = self.patch_geometry()
            config.update({"patch_grid": self.patch_grid, "patch_size": patch, "patch_jitter": jitter})
        return config

    def patch_geometry(self) -> tuple[int, int, int]:
        """(cell, patch, jitter) in pixels at the spec's image size (pipeline.views.patch_geometry)."""
        from pipeline.views import patch_geometry

        return patch_geometry(self.image_size, self.patch_grid, self.patch_size, self.patch_jitter)

    @property
    def train_cache(self) -> Path:
        return self.extraction.features / "train.h5"

    @property
    def test_cache(self) -> Path:
        return self.extraction.features / "test.h5"


class _Table:
    """One TOML table: typed getters that name `file [section] key` in every error; unknown keys refused."""

    def __init__(self, path: Path, section: str, data: Any):
        if not isinstance(data, dict):
            raise PipelineError(f"{path}: [{section}] must be a table")
        self.path, self.section, self.data, self.used = path, section, data, set()

    def where(self, key: str) -> str:
        return f"{self.path}: [{self.section}] {key}" if self.section else f"{self.path}: {key}"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple = ()) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise PipelineError(f"{self.where(key)}: missing")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            raise PipelineError(f"{self.where(key)}: expected {_kind_name(kind)}, found {value!r}")
        if choices and value not in choices:
            raise PipelineError(f"{self.where(key)}: expected one of {', '.join(map(str, choices))}, found {value!r}")
        return value

    def positive(self, key: str, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if value is not None and value < 1:
            raise PipelineError(f"{self.where(key)}: expected a positive integer, found {value}")
        return value

    def sub(self, key: str) -> "_Table":
        self.used.add(key)
        return _Table(self.path, f"{self.section}.{key}" if self.section else key, self.data.get(key, {}))

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise PipelineError(f"{self.where(unknown[0])}: unknown key (expected one of {', '.join(sorted(self.used))})")


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in _tuple(kind))


def read_toml(path: Path) -> dict[str, Any]:
    """The spec file's tables; a missing file or a TOML syntax error is one line."""
    if path.is_dir():
        raise PipelineError(f"{path}: is a directory, not a study spec (give its .toml file, e.g. studies/demo.toml)")
    if not path.is_file():
        raise PipelineError(f"{path}: no such study spec")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None


def load_spec(path: str | Path, out: str | Path | None = None) -> StudySpec:
    """Read and check a study spec of one dataset; `out` (study --out) overrides the spec's own `out`."""
    specs = load_specs(path, out)
    if len(specs) > 1:
        raise PipelineError(f"{path}: [[datasets]] lists {len(specs)} datasets; expected one here")
    return specs[0]


def load_specs(path: str | Path, out: str | Path | None = None) -> list[StudySpec]:
    """The study of each dataset of a spec: [dataset] gives one; [[datasets]] (name, label, root, download,
    [datasets.options]) gives one per entry, each in `out/<label>` with its caches in `features/<label>`."""
    path = Path(path)
    data = read_toml(path)
    if "datasets" not in data:
        return [_load(path, _Table(path, "", data), out, None)]
    entries = data["datasets"]
    if "dataset" in data or not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise PipelineError(f"{path}: [[datasets]]: expected one or more [[datasets]] tables and no [dataset]")
    specs, labels = [], []
    for i, entry in enumerate(entries):
        label = str(entry.get("label", entry.get("name", "cub")))
        if label in labels or not label.replace("-", "").replace("_", "").isalnum():
            raise PipelineError(f"{path}: [[datasets]] {i + 1} label: expected a distinct name of letters, digits, "
                                f"- and _, found {label!r}")
        labels.append(label)
        table = _Table(path, f"datasets.{label}", {k: v for k, v in entry.items() if k != "label"})
        specs.append(_load(path, _Table(path, "", {k: v for k, v in data.items() if k != "datasets"}), out, (label, table)))
    return specs


def _load(path: Path, root: _Table, out: str | Path | None, entry: tuple[str, _Table] | None) -> StudySpec:
    """One dataset's study: [dataset], or one [[datasets]] entry (label, table) under out/<label>."""
    name = root.get("name", str, path.stem)
    if not name.strip():
        raise PipelineError(f"{root.where('name')}: expected a non-empty name (it titles the report and names the "
                            "default out)")
    spec_out = root.get("out", str, f"runs/studies/{name}")
    if not spec_out.strip():
        raise PipelineError(f"{root.where('out')}: expected a directory for the study (an empty out would write it into "
                            "the working directory)")
    out_dir = Path(out) if out else Path(spec_out)
    if entry is not None:
        out_dir = out_dir / entry[0]
    dataset = entry[1] if entry is not None else root.sub("dataset")
    backbone, views = root.sub("backbone"), root.sub("views")
    extraction, heads, grid = root.sub("extraction"), root.sub("heads"), root.sub("grid")
    methods, seeds, ladder = _heads_lists(heads)
    given = grid_values(path, grid, methods)
    kinds, spatial = _views(views, methods, study_grid(path, methods, given))
    data = _dataset(dataset)
    spec_fields = dict(
        path=path, name=name, out=out_dir,
        data_root=Path(dataset.get("root", str, _default_root(data["dataset"]))),
        download=dataset.get("download", bool, False),
        backbone=extraction_option(backbone, "backbone"), backbone_seed=extraction_option(backbone, "seed"),
        model_cache=Path(extraction_option(backbone, "model_cache")), precision=extraction_option(backbone, "precision"),
        image_size=extraction_option(backbone, "image_size"), extract_batch_size=extraction_option(backbone, "batch_size"),
        kinds=kinds, spatial=spatial,
        **{name: extraction_option(views, name) for name in ("num_views", "jigsaw_grid", "rcm_grid", "rcm_k",
                                                             "patch_grid", "patch_size", "patch_jitter")},
        extraction=_extraction(extraction, out_dir, entry[0] if entry else None), methods=methods, labels_per_class=ladder, seeds=seeds,
        epochs=heads_option(heads, "epochs"), batch_size=heads_option(heads, "batch_size"),
        patience=heads_option(heads, "patience"),
        device=_device(heads), heads_precision=heads_option(heads, "precision"),
        **_validation(heads), **_selection(heads), interval=heads.get("interval", str, "bootstrap", ("bootstrap", "t")),
        keep_weights=heads.get("keep_weights", str, "selected", ("selected", "all")), **_power(heads, seeds),
        **_engines(heads), **data, **_torch_backbone(backbone),
    )
    for table in (root, dataset, backbone, views, extraction, heads):
        table.check_unknown()
    _check_views(path, spec_fields)
    _check_selection(heads, spec_fields, ladder)
    # every run of a study shares these ([heads]); they reach heads' grid as one-value lists
    given.update(labels_per_class=[(None, ladder)], epochs=[(None, [spec_fields["epochs"]])],
                 batch_size=[(None, [spec_fields["batch_size"]])], precision=[(None, [spec_fields["heads_precision"]])])
    return StudySpec(**spec_fields, grid_given=given, grid=study_grid(path, methods, given),
                     label=entry[0] if entry else None)


def _torch_backbone(backbone: _Table) -> dict[str, Any]:
    """[backbone] weights and device, which only a torchvision:/timm: handle takes (one line naming the key)."""
    from extract.backbone_names import RANDOM_WEIGHTS, is_torch_handle

    handle = extraction_option(backbone, "backbone")
    weights = extraction_option(backbone, "weights")
    device = extraction_option(backbone, "device")
    if not is_torch_handle(handle):
        for key, given in (("weights", weights is not None), ("device", "device" in backbone.data)):
            if given:
                raise PipelineError(f"{backbone.where(key)}: is for torchvision:<arch> and timm:<name> backbones; "
                                    f"handle {handle!r} brings its own weights and device")
        return {}
    if weights is None:
        raise PipelineError(f"{backbone.where('weights')}: handle {handle!r} needs weights = \"{RANDOM_WEIGHTS}\" "
                            "(untrained, seeded from seed) or the path of a local state dict file")
    if weights != RANDOM_WEIGHTS and not Path(weights).is_file():
        raise PipelineError(f"{backbone.where('weights')}: {weights}: no such file (give \"{RANDOM_WEIGHTS}\" or a "
                            "local state dict file)")
    return {"backbone_weights": weights, "backbone_device": device}


def _power(heads: _Table, seeds: list[int]) -> dict[str, Any]:
    """[heads] target_effect (points, > 0) and max_seeds (at least the spec's seeds; growth needs more)."""
    from heads.results.stats import DEFAULT_TARGET_EFFECT

    target = heads.get("target_effect", (int, float), DEFAULT_TARGET_EFFECT)
    if not 0 < target <= 100:
        raise PipelineError(f"{heads.where('target_effect')}: expected points in (0, 100], found {target}")
    cap = heads.positive("max_seeds", None)
    if cap is not None and cap < len(seeds):
        raise PipelineError(f"{heads.where('max_seeds')}: expected at least the {len(seeds)} seeds of [heads] seeds, "
                            f"found {cap}")
    return {"target_effect": float(target), "max_seeds": cap}


def _device(heads: _Table) -> str:
    """[heads] device: auto, cpu, cuda or cuda:N (checked here, naming the key; heads.training.experiment.device_of checks
    that CUDA is there when the sweep starts)."""
    value = heads.get("device", str, "auto")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise PipelineError(f"{heads.where('device')}: expected auto, cpu, cuda or cuda:N, found {value!r}")
    return value


def heads_option(heads: _Table, name: str) -> Any:
    """A [heads] key that is a heads option (heads.options): its default and its type's checks, in one line
    naming the spec key."""
    from heads.options import OPTIONS_BY_NAME

    option = OPTIONS_BY_NAME[name]
    if name not in heads.data:
        heads.used.add(name)
        return option.default
    value = heads.get(name, (str, int, float), option.default)
    try:
        return option.convert(str(value))
    except click.BadParameter as e:
        raise PipelineError(f"{heads.where(name)}: {e.message}") from None


def extraction_option(table: _Table, name: str) -> Any:
    """A [backbone] or [views] key through extract-features' own option (extract.options): its default, its
    limits, refused in one line naming the spec key."""
    from extract.options import EXTRACT

    option = EXTRACT[name]
    key = option.spec_key.split(".", 1)[1]
    value = table.get(key, object, option.default)
    return option.check(value, table.where(key)) if key in table.data else value


def _heads_lists(heads: _Table) -> tuple[list[str], list[int], list[K]]:
    from heads.options import AUX_CHOICES

    methods = heads.get("methods", list, DEFAULT_METHODS)
    bad = [m for m in methods if m not in AUX_CHOICES]
    if bad or not methods or len(set(methods)) != len(methods):
        raise PipelineError(f"{heads.where('methods')}: expected distinct methods among {', '.join(AUX_CHOICES)}, "
                            f"found {methods!r}")
    seeds = heads.get("seeds", (list, str), [0, 1, 2])
    seeds = _seeds(heads, seeds)
    ladder: list[K] = []
    for k in heads.get("labels_per_class", list, ["all"]):
        try:
            value = parse_k(k)
        except ValueError as e:
            raise PipelineError(f"{heads.where('labels_per_class')}: {e}") from None
        if value not in ladder:
            ladder.append(value)
    if not ladder:
        raise PipelineError(f"{heads.where('labels_per_class')}: expected at least one K (or \"all\")")
    return methods, seeds, ladder


def _seeds(heads: _Table, value: list | str) -> list[int]:
    from heads.search.grid import parse_seeds

    import click

    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    if isinstance(value, list) and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise PipelineError(f"{heads.where('seeds')}: expected a list of integers or a range like \"0-4\", found {value!r}")
    try:
        return parse_seeds(text)
    except click.BadParameter as e:
        raise PipelineError(f"{heads.where('seeds')}: {e.message}") from None


def needed_kinds(methods: list[str], grid: dict[str, dict[str, list[Any]]]) -> list[str]:
    """The view kinds the methods read, as their declarations say (heads.methods.registry), at every value the
    study's grid gives the options that change them (e.g. pirl: jigsaw, or patches with --pirl-form paper;
    dcl: rcm); in KIND_ORDER."""
    from heads.methods.registry import declaration
    from heads.options import OPTIONS_BY_NAME

    needed = {"original"}
    for aux in methods:
        d, options = declaration(aux), grid.get(aux, {})
        names = d.reads_options
        for values in itertools.product(*(options.get(n, [OPTIONS_BY_NAME[n].default]) for n in names)):
            needed |= d.reads(d.typed(dict(zip(names, values))))
    return [k for k in KIND_ORDER if k in needed]


def _views(views: _Table, methods: list[str], grid: dict[str, dict[str, list[Any]]]) -> tuple[tuple[str, ...], bool]:
    """Kinds and spatial maps: what the methods need unless the spec says otherwise (spatial maps: when a method
    can use them)."""
    from heads.methods.registry import declaration

    needed = needed_kinds(methods, grid)
    kinds = views.get("kinds", list, needed)
    order = KIND_ORDER
    if not kinds or any(k not in order for k in kinds) or "original" not in kinds:
        raise PipelineError(f"{views.where('kinds')}: expected a list of {', '.join(order)} with original, "
                            f"found {kinds!r}")
    missing = [k for k in needed if k not in kinds]
    if missing:
        raise PipelineError(f"{views.where('kinds')}: the methods need the {missing[0]} views, which {kinds!r} leaves out")
    needs_maps = any(declaration(m).maps for m in methods)
    spatial = views.get("spatial", (bool, str), "auto")
    if spatial == "auto":
        spatial = needs_maps
    elif not isinstance(spatial, bool):
        raise PipelineError(f"{views.where('spatial')}: expected true, false or \"auto\", found {spatial!r}")
    return tuple(k for k in order if k in kinds), spatial


def _check_views(path: Path, f: dict[str, Any]) -> None:
    if "rcm" in f["kinds"] and not 1 <= f["rcm_k"] < f["rcm_grid"]:
        raise PipelineError(f"{path}: [views] rcm_k: expected 1 <= k < rcm_grid ({f['rcm_grid']}), found {f['rcm_k']}")
    for key in ("jigsaw_grid", "rcm_grid"):
        if f[key] > f["image_size"]:
            raise PipelineError(f"{path}: [views] {key} {f[key]} is larger than [backbone] image_size {f['image_size']}")
    if "patches" in f["kinds"]:
        from pipeline.views import patch_geometry

        try:
            patch_geometry(f["image_size"], f["patch_grid"], f["patch_size"], f["patch_jitter"])
        except ValueError as e:  # names --patch-grid / --patch-size / --patch-jitter: the spec's keys instead
            key, _, message = str(e).partition(": ")
            raise PipelineError(f"{path}: [views] {key.lstrip('-').replace('-', '_')}: {message}") from None


def _extraction(table: _Table, out_dir: Path, label: str | None = None) -> Extraction:
    """[extraction]; with several datasets an explicit `features` directory gets one subdirectory per dataset."""
    launcher = table.get("launcher", str, "none", LAUNCHERS)
    shards = table.positive("shards", 1)
    if launcher == "none" and shards != 1:
        raise PipelineError(f"{table.where('shards')}: {shards} shards need a launcher (local, slurm or ray)")
    options_table = table.sub("options")
    options = {k: v for k, v in options_table.data.items()}
    for key, value in options.items():
        if not isinstance(value, (str, int, float, bool)) or isinstance(value, dict):
            raise PipelineError(f"{options_table.where(key)}: expected a string, number or boolean")
    if options and launcher == "none":
        raise PipelineError(f"{options_table.where(next(iter(options)))}: launcher options need a launcher")
    features = table.get("features", str, None)
    features = out_dir / "features" if features is None else Path(features) / label if label else Path(features)
    return Extraction(features, launcher, shards, options)


def _engines(heads: _Table) -> dict[str, Any]:
    """[heads] search (grid | halving, with halving_eta and halving_rungs), launcher and workers."""
    from heads.search.halving import DEFAULT_ETA, DEFAULT_RUNGS, SEARCHES

    out = {"search": heads.get("search", str, "grid", SEARCHES),
           "halving_eta": heads.positive("halving_eta", DEFAULT_ETA), "halving_rungs": heads.positive("halving_rungs", DEFAULT_RUNGS),
           "launcher": heads.get("launcher", str, None, SWEEP_LAUNCHERS), "workers": heads.positive("workers", 2)}
    if out["halving_eta"] < 2:
        raise PipelineError(f"{heads.where('halving_eta')}: expected an integer >= 2, found {out['halving_eta']}")
    if out["search"] != "halving" and ({"halving_eta", "halving_rungs"} & set(heads.data)):
        raise PipelineError(f"{heads.where('halving_eta' if 'halving_eta' in heads.data else 'halving_rungs')}: "
                            "is for search = \"halving\"")
    if out["launcher"] in (None, "in-process") and "workers" in heads.data:
        raise PipelineError(f"{heads.where('workers')}: workers need a launcher (local, slurm or ray)")
    return out


def _default_root(name: str) -> str:
    from pipeline.datasets import DATASETS

    return f"data/{DATASETS[name].dirname}"


def _dataset(table: _Table) -> dict[str, Any]:
    """[dataset] name (cub by default) and the reader's options ([dataset.options])."""
    from pipeline.datasets import DATASETS

    name = table.get("name", str, "cub", tuple(DATASETS))
    options_table = table.sub("options")
    options = dict(options_table.data)
    for key, value in options.items():
        if key not in DATASETS[name].options:
            raise PipelineError(f"{options_table.where(key)}: {name} has no option {key!r} "
                                f"(options: {', '.join(DATASETS[name].options) or 'none'})")
        allowed = DATASETS[name].options[key]
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            raise PipelineError(f"{options_table.where(key)}: expected one of {', '.join(allowed or ['a string'])}, "
                                f"found {value!r}")
    return {"dataset": name, "dataset_options": options}


def _validation(heads: _Table) -> dict[str, Any]:
    per_class = heads.positive("val_per_class", None)
    fraction = heads.get("val_fraction", (int, float), None)
    if per_class is not None and fraction is not None:
        raise PipelineError(f"{heads.where('val_fraction')}: give val_per_class or val_fraction, not both")
    if fraction is not None and not 0 < fraction < 1:
        raise PipelineError(f"{heads.where('val_fraction')}: expected a fraction in (0, 1), found {fraction}")
    return {"val_per_class": per_class, "val_fraction": 0.1 if fraction is None else float(fraction)}


def _selection(heads: _Table) -> dict[str, Any]:
    selection = heads.get("selection", str, "val", ("val", "cv"))
    folds = heads.positive("cv_folds", None)
    if folds is not None and selection != "cv":
        raise PipelineError(f"{heads.where('cv_folds')}: is for selection = \"cv\"")
    return {"selection": selection, "cv_folds": folds}


def _check_selection(heads: _Table, f: dict[str, Any], ladder: list[K]) -> None:
    """selection = "cv": heads.search.cv.check_cv's conditions (every K >= 2, F <= K, search = "grid"), named here."""
    if f["selection"] != "cv":
        return
    from heads.search.cv import SPEC_CV_NAMES, check_cv

    try:
        check_cv(ladder, f["cv_folds"], f["search"], SPEC_CV_NAMES)
    except PipelineError as e:
        raise PipelineError(f"{heads.where('selection')}: {e}") from None
