"""One pass for optimiser-only grids: `linear` (or `none`) settings of one seed that differ only in learning rate
or weight decay train as a bank of heads on the same batches (as DINOv2's eval/linear.py does).

Each head is the network its separate run would build (same seed, so the same initial weights), trained by
its own SGD (its own lr schedule, weight decay and momentum buffer) on its own loss, so it follows its
separate run's trajectory: heads.training.train.fit_heads trains them, one step of every head per batch (linear probes
stacked into one matrix, heads.training.steppers.LinearStack). Each head is then selected and recorded as its own run
(own directory, config.json, history.csv, metrics.json, model.pt, curves.png) by the same `heads.training.experiment`
steps a separate run uses; metrics.json's timing says it trained in a bank (train_seconds is the bank's time
divided by its heads). A head whose loss turns non-finite is recorded as a failed run (as its separate run
would be) and leaves the bank; the others go on. This module decides which runs share a bank; heads.training.experiment.run_specs trains and records them.
"""

from __future__ import annotations

from typing import Any

from heads.methods.registry import DECLARATIONS
from heads.training import artifacts


BANK_AUXES = tuple(d.aux for d in DECLARATIONS if d.bank)  # heads.methods.declaration.Declaration.bank


BANK_OPTIONS = ("lr", "weight_decay")  # settings that differ only in these share one pass


def bank_key(run: Any) -> tuple | None:
    """Runs with the same key can share a bank (None: this run trains alone): the run's spec but its lr and
    weight decay."""
    spec = run.spec
    if spec.method not in BANK_AUXES or spec.options.precision == "fp16" or spec.fold is not None:
        return None  # cv fold and final runs each train on their own rows (heads.search.cv): never a shared batch
    rest = spec.with_options(lr=0.0, weight_decay=0.0).record()
    return (spec.method, tuple(sorted((k, repr(v)) for k, v in rest.items())))


def banks_of(runs: list[Any]) -> tuple[list[list[Any]], list[Any]]:
    """(banks of two or more unfinished runs, the runs that train alone), each in the given order."""
    groups: dict[tuple, list[Any]] = {}
    alone = []
    for run in runs:
        key = bank_key(run)
        if key is None or artifacts.is_complete(run.run_dir):
            alone.append(run)
        else:
            groups.setdefault(key, []).append(run)
    banks = [g for g in groups.values() if len(g) > 1]
    alone += [g[0] for g in groups.values() if len(g) == 1]
    order = {id(r): i for i, r in enumerate(runs)}
    return banks, sorted(alone, key=lambda r: order[id(r)])
