"""One pass for optimiser-only grids: `linear` (or `none`) settings of one seed that differ only in learning rate
or weight decay train as a bank of heads on the same batches (as DINOv2's eval/linear.py does).

Each head is the network its separate run would build (same seed, so the same initial weights), trained by
its own SGD (its own lr schedule, weight decay and momentum buffer) on its own loss, so it follows its
separate run's trajectory: heads.training.train.fit_heads trains them, one step of every head per batch (linear probes
stacked into one matrix, heads.training.steppers.LinearStack). Each head is then selected and recorded as its own run
(own directory, config.json, history.csv, metrics.json, model.pt, curves.png) by the same `heads.training.experiment`
steps a separate run uses; metrics.json's timing says it trained in a bank (train_seconds is the bank's time
divided by its heads). A head whose loss turns non-finite is recorded as a failed run (as its separate run
would be) and leaves the bank; the others go on. This module decides which runs share a bank and records them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from heads.methods.registry import DECLARATIONS
from heads.training import artifacts, rungs
from heads.training.step import Diverged
from heads.training.train import fit_heads


BANK_AUXES = tuple(d.aux for d in DECLARATIONS if d.bank)  # heads.methods.declaration.Declaration.bank


BANK_OPTIONS = ("lr", "weight_decay")  # settings that differ only in these share one pass


def bank_key(run: Any) -> tuple | None:
    """Runs with the same key can share a bank (None: this run trains alone)."""
    opts = run.options
    if run.setting.aux not in BANK_AUXES or opts.get("precision") == "fp16" or opts.get("selection") == "cv":
        return None  # cv fold and final runs each train on their own rows (heads.search.cv): never a shared batch
    rest = tuple(sorted((k, repr(v)) for k, v in opts.items() if k not in BANK_OPTIONS))
    return (run.setting.aux, rest)


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


def bank_resumes(runs: list[Any]) -> list[dict[str, Any]] | None:
    """Every run's rung state (heads.training.rungs), when all have one from the same epoch; else None: the bank trains
    from scratch (a mixed bank cannot share one batch stream)."""
    states = [rungs.load_for(run.run_dir, run.options) for run in runs]
    if any(s is None for s in states) or len({int(s["epoch"]) for s in states}) != 1:
        return None
    return states


def train_bank(caches: Any, runs: list[Any], progress: bool, log: Callable[[str], None],
               record_failed: Callable[[Any, str, float], None]) -> list[tuple[Any, str]]:
    """Train a bank of planned runs in one pass and record each as its own run; [(run, message)].
    `record_failed(run, message, seconds)` records a head that diverged (heads.results.runs.write_failed_run's way)."""
    from heads.training.experiment import keep_rung_state, prepare_experiment, record_experiment

    first = prepare_experiment(caches, runs[0].options, log)  # the heads share rows, hence the standardisation
    preps = [first] + [prepare_experiment(caches, run.options, None, first.scaler) for run in runs[1:]]
    resumes = bank_resumes(runs)
    first_step: list[float] = []
    started = time.time()
    p0 = preps[0]
    results = fit_heads([p.method for p in preps], caches.table, p0.rows["train"], p0.rows["val"], p0.scaler,
                       [p.train_options for p in preps], progress, lambda: first_step.append(time.time()),
                       p0.rows["labelled"], resumes)
    seconds = (time.time() - started) / len(runs)
    out = []
    for run, prep, result in zip(runs, preps, results):
        if isinstance(result, Diverged):
            record_failed(run, str(result), seconds)
            out.append((run, str(result)))
            continue
        prep.method.load_state_dict(result.best_state)
        partial = artifacts.begin_run(run.run_dir)
        artifacts.write_json(partial / "config.json", prep.config)
        metrics, val = record_experiment(caches, prep, partial, result, seconds, first_step)
        metrics["timing"]["bank"] = {"heads": len(runs), "shared_seconds": seconds * len(runs)}
        keep_rung_state(partial, metrics, run.options, result, resumes[0] if resumes else None)
        artifacts.write_json(partial / "metrics.json", metrics)
        artifacts.finish_run(partial, run.run_dir)
        rungs.rung_file(run.run_dir).unlink(missing_ok=True)
        out.append((run, f"best epoch {result.best_epoch}/{prep.train_options.epochs}, val top-1 "
                         f"{100 * val['top1']:.2f}% (in a bank of {len(runs)}, {seconds * len(runs):.1f} s)"))
    return out
