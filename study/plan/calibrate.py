"""A calibration of a few seconds: each method's step time at the study's shapes, and the backbone's speed.

Heads (in this process, PyTorch): each method is built as heads builds it (real training-row count,
so PIRL's memory bank has its real size; the spec's first grid setting), on random features of the
study's shapes (D, C, V, spatial h x w), and trained with `heads.training.train.fit` after a warm-up epoch at three
batch sizes over one batch of rows and at the full batch over twice the rows; the median epochs give step_s and
row_s (`study.plan.costs`). A run's own work (method, standardisation, its files and figure), scoring a run, reading
the caches, the report's bootstrap and figures are timed as the study does them.

Backbone (a subprocess, `python -m study.plan.backbone_probe`): TensorFlow never enters this process.

Load (study.plan.load): every fit is timed in wall and CPU time, and the cores' other demand (/proc/loadavg's runnable
tasks beyond this process's threads) sampled beside it. A fit that ran while other processes held the cores, and
received less than study.plan.load.QUIET_SHARE of its threads' wall time, has its epochs scaled to the CPU time they
received: the methods' figures are a quiet machine's, and the calibration's LoadRecord says what the load implies.
The per-step fit is least squares under the constraint that both terms are >= 0 (the best feasible point, not a
clipped one), over row counts 4x apart where the study has the rows, with the per-row term held at or above the
FLOPs of the head's linear layer; each of these, when it binds, is said (MethodCost.fit_note).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import PipelineError

from study.plan.costs import Calibration, MethodCost, can_use_maps, method_key
from study.plan.load import QUIET_LOAD, QUIET_SHARE, CpuMeter, LoadRecord, cores, cpu_share, load_average, runnable_others, threads_for_load


def _table(rows: int, dim: int, classes: int, views: int, spatial_hw: tuple[int, int] | None, kinds: tuple[str, ...],
           rcm_grid: int, patch_grid: int = 3):
    """A heads FeatureTable of random features with the study's shapes (no file)."""
    import torch

    from heads.training.data import FeatureTable

    g = torch.Generator().manual_seed(0)
    table = FeatureTable(None, torch.randn(rows, dim, generator=g), torch.arange(rows) % classes)  # type: ignore[arg-type]
    for kind, grid in (("jigsaw", 3), ("rcm", rcm_grid), ("patches", patch_grid)):
        if kind in kinds:
            shape = (rows, views, grid * grid, dim) if kind == "patches" else (rows, views, dim)
            table.views[kind] = torch.randn(*shape, generator=g)
            table.perms[kind] = torch.stack([torch.stack([torch.randperm(grid * grid, generator=g) for _ in range(views)])
                                             for _ in range(rows)]).to(torch.int16)
    if spatial_hw is not None:
        h, w = spatial_hw
        table.spatial["original"] = torch.randn(rows, h, w, dim, generator=g).half()
        if "rcm" in kinds:
            table.spatial["rcm"] = torch.randn(rows, views, h, w, dim, generator=g).half()
    return table


MIN_MEASURED_S = 0.4  # each figure is timed over at least this long (epochs repeated), warm-up excluded
MAX_EPOCHS = 40
REPEATS = 3  # the per-run artifacts are timed this many times


def _class_names(shapes: dict[str, Any]) -> list[str]:
    """The dataset's class names (tick labels and titles cost by their length), or CUB-like ones of its count."""
    names = list(shapes.get("class_names") or [])
    return names if len(names) == shapes["classes"] else [f"{c + 1:03d}.Synthetic_species_{c + 1}"
                                                         for c in range(shapes["classes"])]


def _confusion_like(classes: int, rows: int) -> np.ndarray:
    """A (C, C) test confusion of `rows` rows with half of them wrong, spread over other classes (a figure's cost
    depends on it: above 30 classes the most confused pairs are listed)."""
    rng = np.random.default_rng(0)
    label = np.arange(max(rows, classes)) % classes
    pred = np.where(rng.random(len(label)) < 0.5, label, rng.integers(0, classes, len(label)))
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (label, pred), 1)
    return matrix


PEAK_FLOPS_PER_CORE = 2e11  # generous: 2.6 GHz x 32 fp32 FLOPs per cycle x 2 FMA ports, rounded up
FIT_ROWS_APART = 4  # the per-row term is fitted over row counts this far apart where the study has the rows


class LoadLog:
    """Each fit's (method, wall s, CPU s, other runnable tasks): what study.plan.load.LoadRecord sums up."""

    def __init__(self) -> None:
        self.method = ""
        self.fits: list[tuple[str, float, float, float]] = []
        self.load_avg, self.started = load_average(), 0.0

    def threads(self) -> int:
        import torch

        return max(1, min(torch.get_num_threads(), cores()))

    def record(self) -> LoadRecord:
        threads = self.threads()
        wall = sum(w for _m, w, _c, _o in self.fits)
        cpu = sum(c for _m, _w, c, _o in self.fits)
        others = float(np.mean([o for *_x, o in self.fits])) if self.fits else 0.0
        shares: dict[str, list[float]] = {}
        for m, w, c, _o in self.fits:
            shares.setdefault(m, []).append(cpu_share(w, c, threads))
        return LoadRecord(load_avg=round(max(self.load_avg, others), 2), cores=cores(),
                          cpu_share=round(cpu_share(wall, cpu, threads), 3),
                          threads=threads, taken_at=time.time(),
                          shares={m: float(np.median(v)) for m, v in shares.items()}, others=round(others, 2))


_LOG = LoadLog()


def contended(share: float, others: float, n_cores: int) -> bool:
    """A fit that ran while other processes wanted the cores and received less than QUIET_SHARE of its threads'
    wall time: its wall time measures the load, not the work."""
    return share < QUIET_SHARE and others / max(n_cores, 1) > QUIET_LOAD


def _epoch_times(method: Any, table: Any, rows: int, batch: int, precision: str,
                 warm_up: list[float] | None = None, excess: list[float] | None = None) -> list[float]:
    """Seconds of each measured epoch of heads' training loop over `rows` rows at `batch`, after a warm-up epoch
    (first-step allocation, autograd set-up and lazy modules excluded): as many epochs as fill MIN_MEASURED_S.
    `warm_up`, when given and empty, receives the first fit's seconds besides its measured epochs: its warm-up epoch
    and its set-up (in a fresh process, the first fit's lazy imports: about a second). `excess` receives, for every
    later fit, what it took beyond its epochs at their median: the fit's own set-up (its optimiser, the fixed input
    transform of DCL's maps fitted on the rows) and its first epoch's extra time, which every run pays once."""
    from heads.training.data import Scaler
    from heads.training.step import TrainOptions
    from heads.training.train import fit

    def epochs(n: int) -> list[float]:
        opts = TrainOptions(epochs=n + 1, batch_size=batch, warmup_epochs=0, precision=precision)
        start, meter = time.perf_counter(), CpuMeter().start()
        result = fit(method, table, np.arange(rows), np.zeros(0, dtype=np.int64),
                     Scaler.identity(table.original.shape[1]), opts, progress=False)
        wall = time.perf_counter() - start
        fit_wall, fit_cpu = meter.read()
        threads = _LOG.threads()
        others = runnable_others(threads) or 0.0
        _LOG.fits.append((_LOG.method, fit_wall, fit_cpu, others))
        share = cpu_share(fit_wall, fit_cpu, threads)
        scale = share if contended(share, others, cores()) else 1.0  # a quiet machine's epochs: the CPU they got
        measured = [float(r["seconds"]) * scale for r in result.history[1:]]
        wall *= scale
        if warm_up is not None and not warm_up:
            warm_up.append(wall - sum(measured))
        elif excess is not None:
            excess.append(wall - (n + 1) * float(np.median(measured)))
        return measured

    first = epochs(2)
    more = min(MAX_EPOCHS, max(3, math.ceil(MIN_MEASURED_S / max(float(np.median(first)), 1e-4))))
    return first + (epochs(more) if more > 2 else [])


def _median_spread(times: list[float]) -> tuple[float, float]:
    """(the median repeat, relative spread): a run's time is the sum of its epochs, and an epoch of a few steps
    varies by itself (allocation, caches) even on a quiet machine, so the fastest repeat under-reads it (by 1.2-1.5x
    on the demo's epochs) while the median holds out an occasional stall; the spread is the middle half of the
    repeats' range over the median, the plan's range."""
    q25, q50, q75 = np.percentile(times, [25, 50, 75])
    return float(q50), float((q75 - q25) / q50) if q50 > 0 else 0.0


def calibrate_method(aux: str, options: Any, shapes: dict[str, Any], batch: int, precision: str,
                     quick: bool = False, shared: dict[str, float] | None = None) -> MethodCost:
    """step_s, row_s and predict_row_s of one method from the median epoch at two batch sizes (quick: one batch
    size, the step's time split evenly between its fixed and per-row parts), its spread, and a run's own work
    (`_run_overhead`). `shared` carries what the methods' calibrations share: the first one's fit set-up and
    warm-up epoch ("warm_up_s") and first files' excess ("first_files_s") and, quick, the first one's run overhead
    without its model.pt ("run_s"), which the later ones reuse with their own model.pt."""
    import torch

    from heads.methods.registry import METHODS

    rows = max(2, min(shapes["n_train"], batch))
    small = max(1, batch // 4)
    # spatial maps (DCL) stay at 2x: their random tables at 4x the rows would cost a gigabyte and seconds at CUB's shape
    factors = (2,) if shapes["spatial_hw"] is not None else (FIT_ROWS_APART, 2)
    apart = next((f for f in factors if shapes["n_train"] >= f * rows), None)
    twice = apart * rows if not quick and apart else None  # a second row count, far from the first: see below
    table = _table(twice or rows, shapes["dim"], shapes["classes"], shapes["views"], shapes["spatial_hw"],
                   shapes["kinds"], shapes["rcm_grid"], shapes.get("patch_grid", 3))
    build = dataclasses.replace(options, views={"rcm_grid": shapes["rcm_grid"], "num_views": shapes["views"],
                                                "patch_grid": shapes.get("patch_grid", 3)},
                                spatial_kinds=tuple(table.spatial), train_rows=np.arange(shapes["n_train"]), seed=0)
    def build_method() -> Any:
        torch.manual_seed(0)
        return METHODS[aux](build, shapes["classes"], shapes["dim"], shapes["n_train"])

    shared = {} if shared is None else shared
    _LOG.method = method_key(aux, shapes["spatial_hw"] is not None, options)
    method, warm_up, excess = build_method(), [], []
    full, spread = _median_spread(_epoch_times(method, table, rows, rows, precision, warm_up, excess))
    fit_note = ""
    if quick:
        step_s, row_s = full / 2, full / 2 / rows
    else:  # epoch = steps * step_s + rows * row_s at three batch sizes and, where the study has the rows, over twice
        # the rows at the full batch (without it the per-row part is only an intercept, which noise can zero);
        # least squares, both parts >= 0
        batches = sorted({rows, max(1, rows // 2), small}, reverse=True)
        points = [(1, rows, (full, spread))] + [
            (math.ceil(rows / b), rows, _median_spread(_epoch_times(method, table, rows, b, precision, excess=excess)))
            for b in batches[1:]]
        if twice:
            points.append((twice // rows, twice, _median_spread(_epoch_times(method, table, twice, rows, precision,
                                                                             excess=excess))))
        spread = max(s for _n, _r, (_t, s) in points)
        step_s, row_s, fit_note = constrained_fit(np.array([float(n) for n, _r, _ in points]),
                                                  np.array([float(r) for _n, r, _ in points]),
                                                  np.array([t for _n, _r, (t, _s) in points]),
                                                  row_floor(shapes["dim"], shapes["classes"], _LOG.threads()))
    fit_s = max(float(np.median(excess)), 0.0) if excess else 0.0  # each run's fit set-up and first epoch's extra
    shared.setdefault("warm_up_s", max(warm_up[0] - full - fit_s, 0.0))
    predict_row_s, predict_call_s = _predict_seconds(method, table, rows, shapes["n_val"], precision)
    if quick and "run_s" in shared:  # the first method's run work, with this one's own model.pt
        save_s, load_s = _save_load_seconds(method, build_method)
        overhead = shared["run_s"] + save_s
    else:
        overhead, save_s, load_s, first_s = _run_overhead(build_method, shapes)
        shared.setdefault("run_s", max(overhead - save_s, 0.0))
        shared.setdefault("first_files_s", first_s)
    return MethodCost(step_s, row_s, predict_row_s, overhead + fit_s, bool(method.uses_unlabelled), _model_bytes(method),
                      spread, load_s, predict_call_s, fit_note, _LOG.record().shares.get(_LOG.method, 1.0))


def row_floor(dim: int, classes: int, threads: int) -> float:
    """Seconds per row below which no head's step can run: the FLOPs of its linear classifier, forward and
    backward (6 x D x C), at the cores' generous peak (PEAK_FLOPS_PER_CORE per thread)."""
    return 6.0 * dim * classes / (PEAK_FLOPS_PER_CORE * max(threads, 1))


def constrained_fit(steps: np.ndarray, rows: np.ndarray, times: np.ndarray,
                    floor: float = 0.0) -> tuple[float, float, str]:
    """(step_s, row_s, note) of times = steps * step_s + rows * row_s by least squares under step_s >= 0 and
    row_s >= `floor`: the unconstrained fit when it is feasible, else the best fit on the boundary (each term held
    at its bound, the other refitted). The note says which bound held (empty when none did): a slope the data
    could not resolve is said, not silently set to 0."""
    design = np.stack([steps, rows], axis=1).astype(float)
    times = np.asarray(times, dtype=float)
    (step_s, row_s), *_ = np.linalg.lstsq(design, times, rcond=None)
    if step_s >= 0 and row_s >= floor:
        return float(step_s), float(row_s), ""

    def sse(a: float, b: float) -> float:
        return float(np.sum((design @ np.array([a, b]) - times) ** 2))

    rest = times - rows * floor  # row_s held at its floor: step_s refitted (>= 0)
    at_floor = (max(float(rest @ steps / (steps @ steps)), 0.0), floor)
    no_step = (0.0, max(float(times @ rows / (rows @ rows)), floor))  # step_s held at 0: row_s refitted
    (step_s, row_s) = min((at_floor, no_step), key=lambda c: sse(*c))
    if (step_s, row_s) == at_floor:
        note = (f"per-row term unresolved by the measurements (their fit gave {1e6 * float(np.linalg.lstsq(design, times, rcond=None)[0][1]):.1f} "
                f"us/row): held at the FLOPs floor {1e6 * floor:.2f} us/row")
    else:
        note = "per-step term came out negative: held at 0, the time counted per row"
    return float(step_s), float(row_s), note


def _predict_seconds(method: Any, table: Any, rows: int, n_val: int, precision: str) -> tuple[float, float]:
    """(per row, per pass besides its rows) of predicting: the median over repeats (after one warm-up pass) of a
    pass over `rows` rows and of a validation pass as heads.training.step.validate makes it over `n_val` rows (the epoch's
    validation: a few rows, so its fixed part dominates)."""
    import torch

    from heads.training.data import Scaler
    from heads.training.step import TrainOptions, predict, validate

    scaler, idx = Scaler.identity(table.original.shape[1]), torch.arange(rows)
    val_idx = torch.arange(max(n_val, 1)) % len(table.original)
    val_label, opts = table.label[val_idx], TrainOptions(batch_size=rows, precision=precision)

    def median_of(work: Callable[[], Any]) -> float:
        work()
        times: list[float] = []
        while len(times) < REPEATS or (sum(times) < MIN_MEASURED_S / 4 and len(times) < MAX_EPOCHS):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    row_s = median_of(lambda: predict(method, table, idx, 1024, scaler, precision)) / rows
    val_s = median_of(lambda: validate(method, table, val_idx, val_label, scaler, opts, {}, 1))
    return row_s, max(val_s - len(val_idx) * row_s, 0.0)


def _save_load_seconds(method: Any, build: Callable[[], Any]) -> tuple[float, float]:
    """(writing, reading back and rebuilding) one run's model.pt: the part of a run's overhead, and of scoring it,
    that grows with the model."""
    from heads.training import artifacts

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        artifacts.save_model(Path(tmp) / "model.pt", method.state_dict(), {}, {"options": {}})
        saved = time.perf_counter()
        artifacts.load_model(Path(tmp) / "model.pt")
        build()
        return saved - start, time.perf_counter() - saved


def _model_bytes(method: Any) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in method.state_dict().items()}, buffer)
    return buffer.getbuffer().nbytes


def _run_overhead(build: Callable[[], Any], shapes: dict[str, Any]) -> tuple[float, float, float, float]:
    """(a run's own work besides its epochs, the model.pt part of it, reading it back to score it, the first
    repeat's excess: in a fresh process the first validation metrics' imports and the first figure's fonts, about
    a second and a half), each the median of REPEATS after that first one, as heads.training.experiment.run_experiment does
    it: the method built, the standardisation fitted on the training rows (heads.training.data.Scaler), the run directory
    begun and renamed into place, the validation rows' metrics, confusion and health, and config.json,
    confusion.json, history.csv, model.pt, curves.png and metrics.json written (each atomically, as the run writes
    them)."""
    from heads.training import artifacts
    from heads.training import figures as plots
    from heads.training.data import Scaler
    from heads.training.health import run_health
    from heads.training.metrics import classification_metrics, confusion

    rng = np.random.default_rng(0)
    features = rng.standard_normal((shapes["n_train"], shapes["dim"])).astype(np.float32)
    classes, n_val, names = shapes["classes"], max(shapes["n_val"], 1), _class_names(shapes)
    val_labels, val_top5 = np.arange(n_val) % classes, rng.integers(0, classes, (n_val, min(5, classes)))
    history = [{"epoch": e, "lr": 0.1, "loss": 1.0 / e, "ce": 1.0 / e, "train_acc": 0.5, "grad_norm": 1.0,
                "dead_frac": 0.0, "rows_ce": shapes["n_train"], "val_loss": 1.0, "val_acc": 0.5, "seconds": 0.1}
               for e in range(1, shapes["epochs"] + 1)]
    times, saves, loads = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(REPEATS + 1):
            start = time.perf_counter()
            method = build()
            Scaler.fit(features, np.arange(len(features)))
            partial = artifacts.begin_run(Path(tmp) / f"run{i}")
            artifacts.write_json(partial / "config.json", {"x": list(range(1000))})
            val = classification_metrics(val_labels, val_top5)
            matrix = confusion(val_labels, val_top5[:, 0], classes)
            health = run_health(history, classes, len(history), val_rows=n_val)
            artifacts.write_json(partial / "confusion.json", {"class_names": names, "val": matrix.tolist()}, compact=True)
            artifacts.write_history(partial / "history.csv", history)
            saving = time.perf_counter()
            artifacts.save_model(partial / "model.pt", method.state_dict(), {}, {"options": {}})
            saves.append(time.perf_counter() - saving)
            plots.plot_curves(history, partial / "curves.png", 1, title="calibration")
            artifacts.write_json(partial / "metrics.json", {"val": val, "test": None, "health": health})
            run = artifacts.finish_run(partial, Path(tmp) / f"run{i}")
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            artifacts.load_model(run / "model.pt")
            build()  # scoring rebuilds the method around the loaded weights (heads.training.experiment.load_trained)
            loads.append(time.perf_counter() - start)
    run_s = float(np.median(times[1:]))
    return run_s, float(np.median(saves[1:])), float(np.median(loads[1:])), max(times[0] - run_s, 0.0)


def _score_overhead(shapes: dict[str, Any]) -> float:
    """Scoring a selected run besides its predictions and reading its model.pt (heads.training.experiment.score_test_split):
    the test metrics and confusion, predictions.csv, confusion.json (read and written back) and metrics.json written
    and the test confusion figure drawn with the dataset's class names (a study draws no predictions gallery: it
    passes no image directory); after a warm-up, the median of REPEATS."""
    from heads.training import artifacts
    from heads.training import figures as plots
    from heads.training.metrics import classification_metrics, confusion

    classes, n_test, names = shapes["classes"], shapes["n_test"], _class_names(shapes)
    matrix, times = _confusion_like(classes, n_test), []
    ids, labels = np.arange(n_test), np.arange(n_test) % classes
    top5 = np.stack([labels] * 5, axis=1)
    with tempfile.TemporaryDirectory() as tmp:
        plots.plot_confusion(matrix, names, Path(tmp) / "warm-up.png")
        classification_metrics(labels, top5)
        artifacts.write_json(Path(tmp) / "confusion.json", {"class_names": names, "val": matrix.tolist()}, compact=True)
        for i in range(REPEATS):
            start = time.perf_counter()
            classification_metrics(labels, top5)
            artifacts.write_predictions(Path(tmp) / f"predictions{i}.csv", ids, labels, top5)
            confusions = artifacts.read_json(Path(tmp) / "confusion.json")
            confusions["test"] = confusion(labels, top5[:, 0], classes).tolist()
            artifacts.write_json(Path(tmp) / f"confusion{i}.json", confusions, compact=True)
            plots.plot_confusion(matrix, names, Path(tmp) / f"confusion{i}.png")
            artifacts.write_json(Path(tmp) / f"metrics{i}.json", {"val": {}, "test": {"top1": 0.5}})
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def _report_figures_cost(shapes: dict[str, Any]) -> float:
    """Seconds the report spends on one selected row: its first seed's curves and test confusion redrawn under a
    title of the report's length with the dataset's class names, and both shrunk to the HTML's thumbnails
    (study.report.figures, study.report.render); the median of REPEATS after a warm-up draw."""
    from heads.training import figures as plots

    from study.plan.thumbs import THUMB_WIDTH, png_data

    epochs, classes = shapes["epochs"], shapes["classes"]
    history = [{"epoch": e, "loss": 2.0 / e, "ce": 2.0 / e, "aux": 1.0 / e, "train_acc": e / epochs,
                "val_loss": 2.5 / e, "val_acc": 0.8 * e / epochs} for e in range(1, epochs + 1)]
    matrix, names = _confusion_like(classes, shapes["n_test"]), _class_names(shapes)
    title = "method, K = 5, aux-weight 0.1, lr 0.1, seed 0 · untrained backbone · synthetic data · 3 seeds"
    with tempfile.TemporaryDirectory() as tmp:
        def draw(i: int) -> float:
            start = time.perf_counter()
            curves, confusion = Path(tmp) / f"curves{i}.png", Path(tmp) / f"confusion{i}.png"
            plots.plot_curves(history, curves, epochs, title=title)
            plots.plot_confusion(matrix, names, confusion, title=title)
            png_data(curves, THUMB_WIDTH), png_data(confusion, THUMB_WIDTH)
            return time.perf_counter() - start

        draw(0)  # matplotlib's fonts and the curves figure are made once per process
        return float(np.median([draw(i) for i in range(1, REPEATS + 1)]))


def _read_rate(spatial_hw: tuple[int, int] | None, dim: int) -> float:
    """Bytes per second of reading gzip-compressed float16 maps from HDF5, as the caches store them."""
    import h5py

    if spatial_hw is None:
        return 1e9
    h, w = spatial_hw
    maps = np.random.default_rng(0).standard_normal((32, h, w, dim)).astype(np.float16)
    maps[maps < 0] = 0  # post-ReLU maps: about half zeros, like a real backbone's
    with tempfile.TemporaryDirectory() as tmp:
        with h5py.File(Path(tmp) / "m.h5", "w") as f:
            f.create_dataset("m", data=maps, chunks=(1, h, w, dim), compression="gzip", compression_opts=1, shuffle=True)
        start = time.perf_counter()
        with h5py.File(Path(tmp) / "m.h5", "r") as f:
            f["m"][...]
        return maps.nbytes / max(time.perf_counter() - start, 1e-6)


def _bootstrap_cost(seeds: int, n_test: int) -> float:
    from heads.results.stats import hierarchical_bootstrap

    values = np.random.default_rng(0).integers(-1, 2, (seeds, n_test)).astype(float)
    start = time.perf_counter()
    hierarchical_bootstrap(values, resamples=500)
    return (time.perf_counter() - start) * 20  # the report draws 10,000 resamples


def calibrate_heads(settings: list[tuple[str, dict[str, Any]]], shapes: dict[str, Any], batch: int, precision: str,
                    spatial: bool, calibration: Calibration, quick: bool = False) -> Calibration:
    """Fill `calibration` with each method's costs (settings: (method, its first grid setting's options) for each
    study.plan.costs.method_key).

    quick (what `study` does when no --plan calibration is saved): one batch size per method, a run's figure
    and file overheads measured once; enough for the progress lines' ETA, which corrects itself as runs end. The
    costs every method shares (scoring, reading, the report's bootstrap and figures) are measured either way.
    """
    global _LOG
    threads_for_load().adjust()  # the threads the sweep will train on, given the cores other work leaves free
    start, meter = time.perf_counter(), CpuMeter().start()
    _LOG = LoadLog()
    shared: dict[str, float] = {}
    for aux, options in settings:
        maps = spatial and can_use_maps(aux)
        aux_shapes = {**shapes, "spatial_hw": shapes["spatial_hw"] if maps else None}
        calibration.methods[method_key(aux, maps, options)] = calibrate_method(aux, options, aux_shapes, batch,
                                                                                precision, quick, shared)
    # a study's first run pays the first fit's set-up and first figure, unless this (quick) calibration paid them
    # in the same process
    calibration.first_run_s = 0.0 if quick else shared.get("warm_up_s", 0.0) + shared.get("first_files_s", 0.0)
    calibration.first_end_s = 0.0 if quick else shared.get("first_files_s", 0.0)
    calibration.score_overhead_s = _score_overhead(shapes)
    calibration.read_bytes_per_s = _read_rate(shapes["spatial_hw"] if spatial else None, shapes["dim"])
    calibration.bootstrap_s_per_interval = _bootstrap_cost(shapes["seeds"], shapes["n_test"])
    calibration.report_figures_s = _report_figures_cost(shapes)
    _quiet_rest(calibration, *meter.read())
    calibration.load = _LOG.record().to_json()
    calibration.seconds += time.perf_counter() - start
    return calibration


def _quiet_rest(calibration: Calibration, wall_s: float, cpu_s: float) -> None:
    """The figures timed outside the fits (a run's own work, prediction, scoring, the report's parts, reading),
    scaled to the CPU time they received when other processes held the cores (their share, one thread: mostly
    single-threaded work), as the fits' epochs are: the calibration's figures are a quiet machine's."""
    import dataclasses

    fits_wall = sum(w for _m, w, _c, _o in _LOG.fits)
    fits_cpu = sum(c for _m, _w, c, _o in _LOG.fits)
    others = float(np.mean([o for *_x, o in _LOG.fits])) if _LOG.fits else (runnable_others(1) or 0.0)
    share = cpu_share(wall_s - fits_wall, cpu_s - fits_cpu, 1)
    if not contended(share, others, cores()):
        return
    for key, c in calibration.methods.items():
        calibration.methods[key] = dataclasses.replace(
            c, overhead_s=c.overhead_s * share, predict_row_s=c.predict_row_s * share,
            predict_call_s=c.predict_call_s * share, load_s=c.load_s * share)
    for name in ("score_overhead_s", "report_figures_s", "bootstrap_s_per_interval", "first_run_s", "first_end_s"):
        setattr(calibration, name, getattr(calibration, name) * share)
    calibration.read_bytes_per_s /= max(share, 1e-3)


def probe_backbone(argv: list[str], calibration: Calibration) -> Calibration:
    """Run `python -m study.plan.backbone_probe ARGV` (TensorFlow in its own process); record inputs/s and start-up."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "study.plan.backbone_probe", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        tail = errors[-1] if errors else (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"backbone calibration failed: {tail.removeprefix('error: ')}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    calibration.backbone_inputs_per_s = float(out["inputs_per_s"])
    calibration.backbone_startup_s = float(out["startup_s"])
    # an extraction's end: its views figure, and the process's exit (the probe's wall beyond its JSON line)
    calibration.backbone_finish_s = float(out.get("figure_s", 0.0)) + max(wall - float(out.get("elapsed_s", wall)), 0.0)
    calibration.backbone = {k: out.get(k) for k in ("feature_dim", "spatial_shape", "weights", "precision", "batch",
                                                    "stand_in")}
    calibration.seconds += time.perf_counter() - start
    return calibration


def saved_calibration_verdict(data: dict[str, Any], now: float | None = None,
                              quiet_now: bool | None = None) -> tuple[bool, str]:
    """(reuse it?, what --plan says) for a saved calibration's JSON (study.plan.load.reuse_verdict): a loaded one is
    measured again on a quiet machine, and reused with a warning on a loaded one. `now` and `quiet_now` default to
    the clock and the machine's load (other processes' runnable tasks and the load average)."""
    from study.plan.load import machine_is_quiet, reuse_verdict

    if quiet_now is None:
        quiet_now = machine_is_quiet() and (runnable_others(1) or 0.0) / cores() <= QUIET_LOAD
    return reuse_verdict(LoadRecord.from_json(data.get("load")), time.time() if now is None else now, quiet_now)
