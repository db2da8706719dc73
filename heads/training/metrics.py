"""Classification metrics from predictions alone (so predictions.csv reproduces metrics.json).

All values are fractions in [0, 1]:
- top1: share of rows whose first prediction is the label;
- top5: share of rows whose label is among the 5 highest-scoring classes;
- mean_per_class_acc: the per-class top-1 (recall) averaged over the classes present in the labels;
- macro_precision / macro_recall / macro_f1: unweighted means over the classes that occur in the
  labels or the predictions (scikit-learn's macro average; 0/0 counts as 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRIC_NAMES = ("top1", "top5", "mean_per_class_acc", "macro_precision", "macro_recall", "macro_f1")
METRIC_LABELS = {
    "top1": "top-1",
    "top5": "top-5",
    "mean_per_class_acc": "mean per-class acc",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_f1": "macro F1",
}


def classification_metrics(label: np.ndarray, top5: np.ndarray) -> dict[str, float]:
    """Metrics from labels (N,) and the ranked top-k predictions (N, k); pred = top5[:, 0]."""
    from sklearn.metrics import precision_recall_fscore_support

    label = np.asarray(label)
    top5 = np.asarray(top5).reshape(len(label), -1)
    pred = top5[:, 0]
    p, r, f1, _ = precision_recall_fscore_support(label, pred, average="macro", zero_division=0)
    return {
        "top1": float(np.mean(pred == label)),
        "top5": float(np.mean((top5 == label[:, None]).any(1))),
        "mean_per_class_acc": mean_per_class_accuracy(label, pred),
        "macro_precision": float(p),
        "macro_recall": float(r),
        "macro_f1": float(f1),
    }


def mean_per_class_accuracy(label: np.ndarray, pred: np.ndarray) -> float:
    """Recall averaged over the classes present in `label` (sklearn's balanced accuracy). A small held-out set
    (a cross-validation fold) may lack classes the predictions name; sklearn warns about that, the value is right."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(label, pred))


def confusion(label: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(label), np.asarray(pred)), 1)
    return out


def metrics_from_predictions_csv(path: Any) -> dict[str, float]:
    """Recompute the test metrics from a run's predictions.csv."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    label = np.array([int(r["label"]) for r in rows])
    top5 = np.array([[int(c) for c in r["top5"].split()] for r in rows])
    pred = np.array([int(r["pred"]) for r in rows])
    if not (pred == top5[:, 0]).all():
        raise ValueError(f"{path}: pred differs from the first top5 entry")
    return classification_metrics(label, top5)
