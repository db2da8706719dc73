"""A run directory and what goes in it: config, history, metrics, predictions, model, tables."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pipeline.cache import FeatureCache

from .metrics import METRIC_LABELS, METRIC_NAMES


def make_run_dir(parent: str | Path, aux: str) -> Path:
    """parent/<UTC timestamp>-<aux>/, with -2, -3... when two runs start in the same second."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = Path(parent) / f"{stamp}-{aux}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def cache_summary(cache: FeatureCache) -> dict[str, Any]:
    return {
        "path": str(cache.path),
        "config_hash": cache.attrs.get("config_hash"),
        "backbone": cache.config.get("backbone"),
        "backbone_weights": cache.attrs.get("backbone_weights"),
        "image_size": cache.config.get("image_size"),
        "num_rows": len(cache),
    }


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_history(path: Path, history: Sequence[dict[str, float]]) -> None:
    keys = list(history[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def write_predictions(path: Path, image_id: np.ndarray, label: np.ndarray, top5: np.ndarray) -> None:
    """One row per test image: image_id, label, pred (= first of top5), top5 (space-separated)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label", "pred", "top5"])
        for i, y, t in zip(image_id.tolist(), label.tolist(), top5.tolist()):
            w.writerow([i, y, t[0], " ".join(map(str, t))])


def save_model(path: Path, state: dict[str, torch.Tensor], scaler: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    torch.save({"state_dict": state, "scaler": scaler, "config": config}, path)


def load_model(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


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
