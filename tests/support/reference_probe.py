"""The linear probe's outside reference: scikit-learn's LogisticRegression on a study's cached pooled features.

Protocol (issue 33; OpenAI CLIP's probe is the same kind of model): the train and test caches' `features/original`
rows (pipeline.reader), standardised with the TRAINING rows' mean and std; C chosen on a stratified, seeded
held-out 20% of the training rows only (highest held-out accuracy, ties to the lower held-out log loss, then the
smaller C); refit with that C on every training row; test top-1 scored once. The test split never informs C.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

C_GRID = tuple(float(c) for c in np.logspace(-4, 3, 8))  # 1e-4 .. 1e3


@dataclass(frozen=True)
class ReferenceProbe:
    c: float  # the C chosen on the held-out training rows
    held_out_top1: float  # accuracy of that C on them
    test_top1: float  # after the refit on every training row
    train_rows: int
    test_rows: int


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(0)
    std = train.std(0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant dimension stays 0 rather than dividing by ~0
    return [(x - mean) / std for x in (train, *others)]


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=1000).fit(x, y)


def reference_probe(train_cache: str | Path, test_cache: str | Path, seed: int = 0,
                    held_out: float = 0.2, grid: tuple[float, ...] = C_GRID) -> ReferenceProbe:
    """LogisticRegression on the caches' pooled features by the protocol above; `seed` draws the held-out rows."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    from pipeline.reader import read_cache

    train, test = read_cache(train_cache, kinds=["original"]), read_cache(test_cache, kinds=["original"])
    x, y = train.features["original"].astype(np.float64), np.asarray(train.label)
    x_test, y_test = test.features["original"].astype(np.float64), np.asarray(test.label)
    fit_rows, held_rows = train_test_split(np.arange(len(y)), test_size=held_out, stratify=y, random_state=seed)
    xf, xh = _standardise(x[fit_rows], x[held_rows])  # the split's own training statistics while choosing C
    scored = []
    for c in grid:
        model = _fit(xf, y[fit_rows], c)
        acc = float((model.predict(xh) == y[held_rows]).mean())
        loss = float(log_loss(y[held_rows], model.predict_proba(xh), labels=model.classes_))
        scored.append((-acc, loss, c))
    _, _, best = min(scored)
    held_top1 = -min(scored)[0]
    xs, xt = _standardise(x, x_test)
    model = _fit(xs, y, best)
    return ReferenceProbe(best, held_top1, float((model.predict(xt) == y_test).mean()), len(y), len(y_test))
