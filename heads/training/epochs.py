"""The epoch rule: which epoch a run keeps, when it stops, and whether it stopped short, from its per-image
validation losses alone (one definition, used by the training loop, successive halving's ranking and health).

Each epoch e gives the cross-entropy of every validation image, l_e = (l_e,1 .. l_e,n). Epochs are compared
PAIRED over the same images: d = l_a - l_b, "a is worse than b" when mean(d) > Z * sd(d) / sqrt(n) (sd with
n - 1; Z = 1.96). With one validation image (or none) no spread exists and no epoch is ever worse.

    kept epoch   the LATEST epoch whose losses are not worse than those of the epoch with the lowest mean
                 validation loss so far. The schedule's end is the converged solution of the objective (the
                 cosine decay ends at lr 0 and weight decay is selected per setting); an earlier epoch is kept
                 only when validation shows, beyond its noise, that training went past its best. Validation
                 top-1 is not used: on one validation image per class it moves in steps of whole images, and
                 a tie of 9/10 from epoch 2 to 12 kept epoch 2 of a linear probe (3 points below its last
                 epoch on the test split; benchmarks/RESULTS.md).
    stop         after `patience` epochs in a row that are not kept (each worse than the lowest): the run has
                 passed its best; the epochs left of the ceiling (--epochs) are not trained. patience 0: never.
    under-trained  the run trained its whole ceiling, kept its last epoch, and that epoch's losses are
                 BETTER (the same paired test) than those of the epoch a quarter of the ceiling before it, by at
                 least MATERIAL (3%) of that epoch's mean loss: validation was still improving, by an amount that
                 matters, when the budget ended. (Without the 3% a normalised MLP whose classifier's norm still
                 grows at lr ~ 0 was flagged for drops of 1.5-2.5% that moved no prediction; the MLP of the tests'
                 real-shaped cache at 8 epochs dropped 5.1% over its last quarter and gained 9 test points at 30.)

Computed incrementally (the loop asks `kept_epoch` after each epoch) or afresh from the saved
`val_losses.npy` of a run (its rows are the epochs): both give the same epoch, since an epoch's standing depends
only on the epochs before it and the lowest one among them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from heads.option_table import DEFAULT_PATIENCE  # noqa: F401  (--patience's default, read here by its rule)

Z = 1.96  # the paired test's threshold, in standard errors of the mean per-image difference
MATERIAL = 0.03  # under-trained: the last quarter's drop of the mean validation loss, relative, at least this
RULE = ("the latest epoch whose validation loss is not worse than the lowest epoch's, paired over the validation "
        f"images (worse: mean difference > {Z} standard errors); a run stops after --patience epochs in a row "
        "that are worse than its lowest; test never used")


def worse(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether per-image losses `a` are worse than `b` beyond noise (paired over the same images)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2 or not np.all(np.isfinite(d)):
        return bool(len(d) and not np.all(np.isfinite(a)))  # a non-finite epoch is worse; no spread: never
    sd = float(d.std(ddof=1))
    return float(d.mean()) > Z * sd / math.sqrt(len(d)) if sd > 0 else float(d.mean()) > 0


def lowest_epoch(losses: Sequence[np.ndarray]) -> int:
    """1-based epoch with the lowest mean validation loss (the first of equals)."""
    means = [float(np.mean(x)) if len(x) and np.all(np.isfinite(x)) else math.inf for x in losses]
    return int(np.argmin(means)) + 1


def kept_epoch(losses: Sequence[np.ndarray]) -> int:
    """1-based: the latest epoch not worse than the lowest (module docstring); the last epoch without
    validation rows."""
    if not losses:
        return 0
    if not len(losses[0]):
        return len(losses)
    low = lowest_epoch(losses)
    return max(e for e in range(low, len(losses) + 1) if e == low or not worse(losses[e - 1], losses[low - 1]))


def should_stop(losses: Sequence[np.ndarray], patience: int) -> bool:
    """Whether the last `patience` epochs were all worse than the lowest (never with patience 0)."""
    return patience > 0 and len(losses) - kept_epoch(losses) >= patience


def earliest_stop(patience: int) -> int | None:
    """The first epoch after which `should_stop` can stop a run: its first epoch kept, then `patience` worse ones
    (None with patience 0: the rule never stops a run)."""
    return patience + 1 if patience > 0 else None


def still_improving(losses: Sequence[np.ndarray], ceiling: int) -> dict[str, float | int | bool] | None:
    """Whether validation was still improving when a run's budget ended (module docstring), with the figures;
    None when it cannot be judged (no validation, or the run stopped before its ceiling)."""
    if len(losses) < ceiling or ceiling < 2 or not len(losses[0]):
        return None
    ref = ceiling - max(1, ceiling // 4)
    last, before = losses[ceiling - 1], losses[ref - 1]
    return {"compared_epoch": ref, "loss_then": round(float(np.mean(before)), 6),
            "loss_last": round(float(np.mean(last)), 6),
            "improving": (kept_epoch(losses[:ceiling]) == ceiling and worse(before, last)
                          and float(np.mean(before) - np.mean(last)) >= MATERIAL * float(np.mean(before)))}
