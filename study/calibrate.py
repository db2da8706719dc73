"""A calibration of a few seconds: each method's step time at the study's shapes, and the backbone's speed.

Heads (in this process, PyTorch): each method is built as heads builds it (real training-row count,
so PIRL's memory bank has its real size; the spec's first grid setting), on random features of the
study's shapes (D, C, V, spatial h x w), and trained for 2 epochs of `heads.train.fit` at two batch
sizes; the second epoch's time gives step_s and row_s (`study.costs`). Artifacts (model.pt,
learning-curve figure) and a confusion figure are timed once.

Backbone (a subprocess, `python -m study.backbone_probe`): TensorFlow never enters this process.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError

from .costs import Calibration, MethodCost, method_key


def _table(rows: int, dim: int, classes: int, views: int, spatial_hw: tuple[int, int] | None, kinds: tuple[str, ...],
           rcm_grid: int, patch_grid: int = 3):
    """A heads FeatureTable of random features with the study's shapes (no file)."""
    import torch

    from heads.data import FeatureTable

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


def _epoch_time(method: Any, table: Any, rows: int, batch: int, precision: str) -> float:
    """Seconds of the second of two epochs of heads' training loop over `rows` rows at `batch`."""
    from heads.data import Scaler
    from heads.step import TrainOptions
    from heads.train import fit

    opts = TrainOptions(epochs=2, batch_size=batch, warmup_epochs=0, precision=precision)
    result = fit(method, table, np.arange(rows), np.zeros(0, dtype=np.int64), Scaler.identity(table.original.shape[1]),
                 opts, progress=False)
    return float(result.history[-1]["seconds"])


def calibrate_method(aux: str, options: dict[str, Any], shapes: dict[str, Any], batch: int, precision: str,
                     overhead_s: float | None = None, quick: bool = False) -> MethodCost:
    """step_s, row_s and predict_row_s of one method from two batch sizes (quick: one batch size, the step's
    time split evenly between its fixed and per-row parts); the artifacts' overhead unless given."""
    import torch

    from heads.data import Scaler
    from heads.methods import METHODS
    from heads.step import predict

    rows = max(2, min(shapes["n_train"], batch))
    small = max(1, batch // 4)
    table = _table(rows, shapes["dim"], shapes["classes"], shapes["views"], shapes["spatial_hw"], shapes["kinds"],
                   shapes["rcm_grid"], shapes.get("patch_grid", 3))
    build = {**options, "views": {"rcm_grid": shapes["rcm_grid"], "num_views": shapes["views"],
                                  "patch_grid": shapes.get("patch_grid", 3)},
             "spatial_kinds": list(table.spatial), "train_rows": np.arange(shapes["n_train"]), "seed": 0}
    torch.manual_seed(0)
    method = METHODS[aux](build, shapes["classes"], shapes["dim"], shapes["n_train"])
    if quick:
        t = _epoch_time(method, table, rows, rows, precision)
        step_s, row_s = t / 2, t / 2 / rows
    else:
        times = {b: _epoch_time(method, table, rows, b, precision) for b in (rows, small)}
        n1, n2 = 1, math.ceil(rows / small)
        step_s = max(0.0, (times[small] - times[rows]) / max(n2 - n1, 1))
        row_s = max(1e-9, (times[rows] - n1 * step_s) / rows)
    start = time.perf_counter()
    predict(method, table, torch.arange(rows), 1024, Scaler.identity(shapes["dim"]), precision)
    predict_row_s = (time.perf_counter() - start) / rows
    overhead = _overhead(method, shapes["epochs"]) if overhead_s is None else overhead_s + _save_seconds(method)
    return MethodCost(step_s, row_s, predict_row_s, overhead, bool(method.uses_unlabelled), _model_bytes(method))


def _save_seconds(method: Any) -> float:
    """Writing one run's model.pt (the part of a run's overhead that grows with the model)."""
    from heads import artifacts

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        artifacts.save_model(Path(tmp) / "model.pt", method.state_dict(), {}, {"options": {}})
        return time.perf_counter() - start


def _model_bytes(method: Any) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in method.state_dict().items()}, buffer)
    return buffer.getbuffer().nbytes


def _overhead(method: Any, epochs: int) -> float:
    """One run's artifacts: model.pt and the learning-curve figure (heads.artifacts, heads.plots)."""
    from heads import artifacts, plots

    history = [{"epoch": e, "lr": 0.1, "loss": 1.0 / e, "ce": 1.0 / e, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                "seconds": 0.1} for e in range(1, epochs + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        artifacts.save_model(Path(tmp) / "model.pt", method.state_dict(), {}, {"options": {}})
        plots.plot_curves(history, Path(tmp) / "curves.png", 1, title="calibration")
        artifacts.write_json(Path(tmp) / "config.json", {"x": list(range(1000))})
        return time.perf_counter() - start


def _score_overhead(classes: int) -> float:
    """Scoring a selected run adds the confusion figure and a 16-image gallery (about half a second)."""
    from heads import plots

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        plots.plot_confusion(np.eye(classes, dtype=np.int64), [f"{c:03d}.Class" for c in range(classes)],
                             Path(tmp) / "confusion.png")
        return time.perf_counter() - start + 0.5


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
    from heads.stats import hierarchical_bootstrap

    values = np.random.default_rng(0).integers(-1, 2, (seeds, n_test)).astype(float)
    start = time.perf_counter()
    hierarchical_bootstrap(values, resamples=500)
    return (time.perf_counter() - start) * 20  # the report draws 10,000 resamples


def calibrate_heads(settings: list[tuple[str, dict[str, Any]]], shapes: dict[str, Any], batch: int, precision: str,
                    spatial: bool, calibration: Calibration, quick: bool = False) -> Calibration:
    """Fill `calibration` with each method's costs (settings: (method, its first grid setting's options) for each
    study.costs.method_key).

    quick (what `study` does when no --plan calibration is saved): one batch size per method, the figure
    and file overheads measured once; enough for the progress lines' ETA, which corrects itself as runs end.
    """
    start = time.perf_counter()
    figures = None
    for aux, options in settings:
        maps = spatial and aux in ("dcl", "dcl-none")
        aux_shapes = {**shapes, "spatial_hw": shapes["spatial_hw"] if maps else None}
        cost = calibrate_method(aux, options, aux_shapes, batch, precision, figures, quick)
        if quick and figures is None:
            figures = cost.overhead_s
        calibration.methods[method_key(aux, maps, options)] = cost
    if not quick:
        calibration.score_overhead_s = _score_overhead(shapes["classes"])
        calibration.read_bytes_per_s = _read_rate(shapes["spatial_hw"] if spatial else None, shapes["dim"])
        calibration.bootstrap_s_per_interval = _bootstrap_cost(shapes["seeds"], shapes["n_test"])
    calibration.seconds += time.perf_counter() - start
    return calibration


def probe_backbone(argv: list[str], calibration: Calibration) -> Calibration:
    """Run `python -m study.backbone_probe ARGV` (TensorFlow in its own process); record inputs/s and start-up."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "study.backbone_probe", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        tail = errors[-1] if errors else (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"backbone calibration failed: {tail.removeprefix('error: ')}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    calibration.backbone_inputs_per_s = float(out["inputs_per_s"])
    calibration.backbone_startup_s = float(out["startup_s"])
    calibration.backbone = {k: out.get(k) for k in ("feature_dim", "spatial_shape", "weights", "precision", "batch",
                                                    "stand_in")}
    calibration.seconds += time.perf_counter() - start
    return calibration
