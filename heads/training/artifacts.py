"""A run directory and what goes in it: config, history, metrics, predictions, model, tables."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pipeline.errors import PipelineError
from pipeline.files import created_atomically, write_atomically
from pipeline.reader import FeatureCache

from heads.training.metrics import METRIC_LABELS, METRIC_NAMES


PARTIAL = ".partial"  # a run directory is written under <name>.partial and renamed when complete


def new_run_name(parent: str | Path, aux: str) -> Path:
    """parent/<UTC timestamp>-<aux> (final name; -2, -3... when taken), its .partial directory created."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = Path(parent) / f"{stamp}-{aux}"
    path, n = base, 1
    while True:
        if not path.exists():
            try:
                partial_dir(path).mkdir(parents=True, exist_ok=False)
                return path
            except FileExistsError:
                pass
        n += 1
        path = base.with_name(f"{base.name}-{n}")


def check_writable(path: Path, option: str) -> None:
    """Fail early, with one line naming the option, when `path` (or its nearest existing parent) can't be written."""
    base = Path(path)
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise PipelineError(f"{option} {path}: {base} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PipelineError(f"{option} {path}: cannot write in {base} ({e.strerror})") from None


def partial_dir(final: Path) -> Path:
    return final.with_name(final.name + PARTIAL)


def begin_run(final: Path) -> Path:
    """A fresh <final>.partial directory (a leftover of an interrupted run is removed first)."""
    partial = partial_dir(final)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def finish_run(partial: Path, final: Path) -> Path:
    """Rename the finished run into place: a directory without .partial is complete."""
    os.replace(partial, final)
    return final


def is_complete(run: Path) -> bool:
    """A run directory that was renamed into place (its metrics.json is there)."""
    return run.is_dir() and not run.name.endswith(PARTIAL) and (run / "metrics.json").is_file()


def check_complete(run: Path) -> None:
    """Refuse an unfinished run directory with one line."""
    if run.name.endswith(PARTIAL) or (run.is_dir() and not (run / "metrics.json").is_file()):
        raise PipelineError(f"{run}: unfinished run (interrupted before its artifacts were complete); "
                            "rerun the command that wrote it")


def cache_summary(cache: FeatureCache) -> dict[str, Any]:
    return {
        "path": str(cache.path),
        "config_hash": cache.attrs.get("config_hash"),
        "backbone": cache.config.get("backbone"),
        "backbone_weights": cache.attrs.get("backbone_weights"),
        "image_size": cache.config.get("image_size"),
        "num_rows": len(cache),
    }


def write_json(path: Path, obj: Any, compact: bool = False) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one. `compact`: no
    indentation (json's C encoder: a 200 x 200 confusion matrix in 5 ms instead of 19 ms indented)."""
    text = json.dumps(obj, separators=(",", ":")) if compact else json.dumps(obj, indent=2, sort_keys=False)
    write_atomically(path, text + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_history(path: Path, history: Sequence[dict[str, float]]) -> None:
    """history.csv, one row per epoch, written atomically."""
    keys = list(history[0])
    with created_atomically(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def write_predictions(path: Path, image_id: np.ndarray, label: np.ndarray, top5: np.ndarray) -> None:
    """One row per test image: image_id, label, pred (= first of top5), top5 (space-separated); atomically."""
    with created_atomically(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label", "pred", "top5"])
        for i, y, t in zip(image_id.tolist(), label.tolist(), top5.tolist()):
            w.writerow([i, y, t[0], " ".join(map(str, t))])


def save_model(path: Path, state: dict[str, torch.Tensor], scaler: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """model.pt: selected weights, standardisation and config, written atomically."""
    with created_atomically(path) as tmp:
        torch.save({"state_dict": state, "scaler": scaler, "config": config}, tmp)


def load_model(path: Path) -> dict[str, Any]:
    """model.pt as saved by save_model; a damaged file is one PipelineError naming it."""
    if Path(path).stat().st_size == 0:
        raise PipelineError(f"{path}: empty file (0 bytes), not a saved model; rerun the training that wrote it")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise PipelineError(f"{path}: truncated or damaged model file ({type(e).__name__}: {first}); rerun the "
                            "training that wrote it") from None
    if not isinstance(saved, dict) or not {"state_dict", "scaler", "config"} <= set(saved):
        raise PipelineError(f"{path}: not a model.pt written by train-heads (expected state_dict, scaler, config)")
    return saved


def weights_note(untrained: bool, weights: Any) -> str:
    if untrained:
        return (f"backbone weights: {weights} -- UNTRAINED (random) backbone: these numbers measure the heads "
                "on random features, not a pretrained model")
    return f"backbone weights: {weights}"


def metrics_table(columns: dict[str, dict[str, float] | None]) -> str:
    """Rows = metrics, one column per name, values in percent."""
    names = list(columns)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'metric':20s}" + "".join(f"{n:>{width + 2}s}" for n in names)]
    for key in METRIC_NAMES:
        cells = []
        for n in names:
            m = columns[n]
            cells.append(f"{100 * m[key]:>{width + 1}.2f}%" if m and key in m else f"{'-':>{width + 2}s}")
        lines.append(f"{METRIC_LABELS[key]:20s}" + "".join(cells))
    return "\n".join(lines)
