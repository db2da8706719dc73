"""Did a run learn? One definition, computed where a run ends from its own history and read by selection,
summaries and the study's report.

    ok          none of the below
    under-trained  it learned, but it kept the last epoch of its whole budget while validation was still
                improving (heads.training.epochs.still_improving): more epochs would likely have changed its result. It
                counts as learned (its numbers are the method's at this budget) and is flagged wherever shown
    diverged    a loss turned NaN/inf (the run failed), or a loss grew after the first epoch: some epoch's
                mean exceeds GROWTH x the first epoch's, and by more than GROWTH_MIN
    dead-units  more than DEAD_LIMIT of the ReLU units of its adapter were dead in the selected epoch
    at-chance   its best training accuracy stayed within chance: below max(2 x chance, chance + 3 binomial
                standard deviations of the epoch's labelled rows), capped at (1 + chance) / 2; and so did its
                best validation accuracy, by the same rule with the validation rows (a run of a few epochs
                over a few rows can end with a training accuracy, averaged over each epoch as the weights
                move, still under the line while its validation accuracy is well above it; a head that
                predicts one class scores 1 / classes on validation, whatever the epoch)

A ReLU unit is dead in an epoch when it gave no positive output for any training input of that epoch (every
position of a map included): it got no gradient for the whole epoch. `ReluMonitor` counts this during training
at the cost of one comparison per activation; history.csv carries it per epoch as `dead_frac` (methods with
ReLU units), beside `grad_norm`, the mean over the epoch's steps of the global gradient norm before clipping
(heads.training.train.clip_gradients).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from torch import Tensor, nn

HEALTH_STATES = ("ok", "under-trained", "at-chance", "diverged", "dead-units")
LEARNED = ("ok", "under-trained", "")  # states whose results may be read as the method's ("": not judged)
GROWTH, GROWTH_MIN = 3.0, 0.1  # a loss "grew" past GROWTH x its first epoch's mean, and by more than GROWTH_MIN
DEAD_LIMIT = 0.5  # more than half of the ReLU units dead in the selected epoch
NOT_LOSSES = ("epoch", "lr", "train_acc", "val_loss", "val_acc", "seconds", "grad_norm", "dead_frac")


class ReluMonitor:
    """Which units of a method's ReLU layers gave a positive output during training, per epoch.

    Hooks every nn.ReLU of `method`; only forward passes in training mode count. `fraction()` gives the share
    of dead units over the layers that ran since the last call (None when none ran) and starts a new count."""

    def __init__(self, method: nn.Module) -> None:
        self.active: dict[str, Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in method.named_modules()
                        if isinstance(m, nn.ReLU)]

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, out: Tensor) -> None:
            if module.training:
                fired = (out.detach() > 0).reshape(-1, out.shape[-1]).any(0)
                seen = self.active.get(name)
                self.active[name] = fired if seen is None else seen | fired
        return hook

    def fraction(self) -> float | None:
        if not self.active:
            return None
        units = sum(a.numel() for a in self.active.values())
        dead = sum(int((~a).sum()) for a in self.active.values())
        self.active = {}
        return dead / units

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def chance_threshold(num_classes: int, rows_per_epoch: int) -> float:
    """The training accuracy a run must pass to count as learning (module docstring)."""
    chance = 1.0 / max(num_classes, 1)
    sd = math.sqrt(chance * (1 - chance) / max(rows_per_epoch, 1))
    return min(max(2 * chance, chance + 3 * sd), (1 + chance) / 2)


def loss_growth(history: Sequence[dict[str, Any]]) -> tuple[str, float] | None:
    """(loss, factor) of the loss that grew most past its first epoch's mean when it grew (module docstring)."""
    if len(history) < 2:
        return None
    worst = None
    for key, first in history[0].items():
        if key in NOT_LOSSES or key.startswith("rows_") or not isinstance(first, (int, float)) or first <= 0:
            continue
        peak = max(float(r.get(key, 0.0)) for r in history[1:])
        factor = peak / first
        if factor > GROWTH and peak - first > GROWTH_MIN and (worst is None or factor > worst[1]):
            worst = (key, factor)
    return worst


def run_health(history: Sequence[dict[str, Any]], num_classes: int, best_epoch: int,
               failed: str | None = None, val_rows: int = 0, convergence: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """metrics.json's "health": the state (HEALTH_STATES) and the figures it was judged on (`val_rows`: the
    validation rows each epoch's val_acc was measured on; 0 when there were none; `convergence`: metrics.json's,
    heads.training.experiment.convergence_of)."""
    if failed is not None:
        return {"state": "diverged", "why": failed}
    rows = max((int(r.get("rows_ce", 0) or 0) for r in history), default=0)
    best_acc = max((float(r["train_acc"]) for r in history), default=0.0)
    threshold = chance_threshold(num_classes, rows)
    selected = next((r for r in history if int(r["epoch"]) == best_epoch), history[-1] if history else {})
    dead = selected.get("dead_frac")
    out: dict[str, Any] = {"best_train_acc": round(best_acc, 6), "chance": round(1.0 / num_classes, 6),
                           "learning_threshold": round(threshold, 6),
                           "dead_frac": None if dead is None or dead == "" else round(float(dead), 6)}
    grew = loss_growth(history)
    if grew is not None:
        out.update(state="diverged", why=f"the {grew[0]} loss grew to {grew[1]:.1f}x its first epoch's mean")
    elif out["dead_frac"] is not None and out["dead_frac"] > DEAD_LIMIT:
        out.update(state="dead-units", why=f"{100 * out['dead_frac']:.0f}% of the ReLU units were dead in the "
                                           f"selected epoch {best_epoch}")
    elif best_acc < threshold and not validation_learned(history, num_classes, val_rows, out):
        out.update(state="at-chance", why=f"best training accuracy {100 * best_acc:.1f}% against chance "
                                          f"{100 / num_classes:.1f}% (threshold {100 * threshold:.1f}%)")
    elif ((convergence or {}).get("still_improving") or {}).get("improving"):
        judged = convergence["still_improving"]
        out.update(state="under-trained", why=f"it kept its last epoch {best_epoch} of {convergence['ceiling']} while "
                                              f"validation loss was still falling ({judged['loss_then']:.4g} at epoch "
                                              f"{judged['compared_epoch']}, {judged['loss_last']:.4g} at the last)")
    else:
        out["state"] = "ok"
    return out


def validation_learned(history: Sequence[dict[str, Any]], num_classes: int, val_rows: int, out: dict[str, Any]) -> bool:
    """Whether the best validation accuracy passed its own chance line (recorded in `out` when it was measured)."""
    accs = [float(r["val_acc"]) for r in history if r.get("val_acc") not in (None, "")]
    if not val_rows or not accs:
        return False
    out.update(best_val_acc=round(max(accs), 6), val_threshold=round(chance_threshold(num_classes, val_rows), 6))
    return out["best_val_acc"] >= out["val_threshold"]


def state_of(metrics: dict[str, Any]) -> str:
    """A finished run's health state from its metrics.json ("diverged" for a failed run, "" when unrecorded)."""
    if metrics.get("failed"):
        return "diverged"
    return str((metrics.get("health") or {}).get("state", ""))


def verdict(states: Sequence[str]) -> str:
    """One setting's health over its seeds: "ok" when every run's state is ok, else the other states with their
    counts ("at-chance in 2 of 2 seeds", "under-trained in 1 of 2 seeds"); runs recorded before health was
    judged ("") count as ok."""
    bad = [s for s in states if s not in ("ok", "")]
    if not bad:
        return "ok"
    counts = {s: bad.count(s) for s in dict.fromkeys(bad)}
    return "; ".join(f"{s} in {n} of {len(states)} seeds" for s, n in counts.items())


def learned(states: Sequence[str]) -> bool:
    """Whether a setting's every run learned (its results may be read as the method's; under-trained ones are
    flagged by `verdict`, not excluded)."""
    return all(s in LEARNED for s in states)


def verdict_learned(text: str) -> bool:
    """Whether a `verdict` says every run learned ("ok", or only "under-trained ..." parts)."""
    return all(part.strip() == "ok" or part.strip().startswith("under-trained") for part in text.split(";"))
