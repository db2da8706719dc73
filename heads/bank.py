"""One pass for optimiser-only grids: `linear` (or `none`) settings of one seed that differ only in learning rate
or weight decay train as a bank of heads on the same batches (as DINOv2's eval/linear.py does).

Each head is the network its separate run would build (same seed, so the same initial weights), in its own
SGD parameter group (its own lr schedule, weight decay and momentum buffer); a step minimises the SUM of the
heads' losses, whose gradient with respect to one head's weights is that head's own gradient (the heads share
no parameter), so every head follows its separate run's trajectory. Each head is then selected and recorded as
its own run (own directory, config.json, history.csv, metrics.json, model.pt, curves.png) by the same
`heads.experiment` steps a separate run uses; metrics.json's timing says it trained in a bank (train_seconds
is the bank's time divided by its heads). A head whose loss turns non-finite is recorded as a failed run
(as its separate run would be) and leaves the bank; the others go on.

What a bank saves is the shared part of a step (batch order, gathering and standardising the rows, the loop)
and of an epoch (validation batches): the heads' own matrix products are not shared, so a bank of n heads
costs more than one run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from . import artifacts
from .data import LabelledStream, train_batches
from .method import Method
from .train import (Best, Diverged, EpochTally, TrainOptions, TrainResult, _batches_with_bar, autocast,
                    learning_rate, validate)

BANK_AUXES = ("linear", "none")
BANK_OPTIONS = ("lr", "weight_decay")  # settings that differ only in these share one pass


def bank_key(run: Any) -> tuple | None:
    """Runs with the same key can share a bank (None: this run trains alone)."""
    opts = run.options
    if run.setting.aux not in BANK_AUXES or opts.get("precision") == "fp16":
        return None
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


@dataclass
class Head:
    """One head of the bank: its method, options, step accounting and the epoch kept so far."""

    method: Method
    opts: TrainOptions
    group: dict[str, Any]
    best: Best = field(default_factory=Best)
    history: list[dict[str, float]] = field(default_factory=list)
    failed: Diverged | None = None
    tally: EpochTally | None = None
    lr: float = 0.0


def diverged(components: dict[str, torch.Tensor], loss: torch.Tensor, epoch: int, lr: float) -> Diverged:
    """The error a separate run raises (heads.train.train_step's message)."""
    bad = [k for k, v in components.items() if not torch.isfinite(v)]
    values = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in components.items())
    return Diverged(f"training diverged at epoch {epoch}: the {' and '.join(bad) or 'total'} loss turned "
                    f"{float(loss.detach())} ({values}) at learning rate {lr:.3g}; lower --lr")


def bank_step(heads: list[Head], optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], step: int,
              steps: tuple[int, int], epoch: int) -> None:
    """One optimiser step of every live head on the sum of their losses (each head's loss is train_step's)."""
    total, done = None, []
    for h in heads:
        h.lr = learning_rate(step, steps[0], steps[1], h.opts.lr)
        h.group["lr"] = h.lr
        with autocast(batch["original"].device, h.opts.precision):
            components = h.method.losses(batch)
        logits = components.pop("logits", None)
        loss = sum(h.method.loss_weights.get(k, 1.0) * v for k, v in components.items())
        if not torch.isfinite(loss):
            h.failed = diverged(components, loss, epoch, h.lr)
            continue
        total = loss if total is None else total + loss
        done.append((h, loss, components, logits))
    optimizer.zero_grad(set_to_none=True)
    if total is not None:
        total.backward()
        optimizer.step()
    for h, loss, components, logits in done:
        h.method.after_step(batch)
        if logits is None:
            with torch.no_grad():
                logits = h.method(batch)[batch["labelled"]]
        h.tally.add(batch, loss, components, logits)


def fit_bank(methods: list[Method], table: Any, train_rows: np.ndarray, val_rows: np.ndarray, scaler: Any,
             opts: list[TrainOptions], progress: bool = False, on_first_step: Callable[[], None] | None = None,
             labelled_rows: np.ndarray | None = None) -> list[TrainResult | Diverged]:
    """heads.train.fit for a bank of heads that differ only in lr / weight decay: one batch stream, one
    backward pass per step; per head a TrainResult (or the Diverged error its separate run would raise)."""
    o, device = opts[0], table.original.device
    stream = None
    if labelled_rows is not None and len(labelled_rows) < len(train_rows):
        stream = LabelledStream(torch.from_numpy(labelled_rows).to(device), o.batch_size, o.seed)
    val_idx = torch.from_numpy(val_rows).to(device)
    val_label = table.label[val_idx].cpu()
    train_idx = torch.from_numpy(train_rows).to(device)
    generator = torch.Generator().manual_seed(o.seed)
    optimizer = torch.optim.SGD([{"params": list(m.parameters()), "lr": p.lr, "momentum": p.momentum,
                                  "weight_decay": p.weight_decay} for m, p in zip(methods, opts)], lr=o.lr)
    heads = [Head(m, p, g) for m, p, g in zip(methods, opts, optimizer.param_groups)]
    per_epoch = math.ceil(len(train_rows) / o.batch_size)
    steps = (o.epochs * per_epoch, o.warmup_epochs * per_epoch)
    step, method0 = 0, methods[0]
    for epoch in range(1, min(o.stop_after or o.epochs, o.epochs) + 1):
        start = time.perf_counter()
        live = [h for h in heads if h.failed is None]
        if not live:
            break
        for h in live:
            h.method.train()
            h.tally = EpochTally(h.method.component_rows)
        batches = train_batches(table, train_idx, o.batch_size, scaler, generator, set(method0.needs), stream,
                                method0.uses_unlabelled)
        for batch in _batches_with_bar(batches, per_epoch, f"bank epoch {epoch}/{o.epochs}", progress):
            bank_step([h for h in live if h.failed is None], optimizer, batch, step, steps, epoch)
            step += 1
            if step == 1 and on_first_step is not None:
                on_first_step()
        seconds = time.perf_counter() - start
        for h in (h for h in live if h.failed is None):
            row = h.tally.row(epoch, h.lr)
            val_logits, key = validate(h.method, table, val_idx, val_label, scaler, h.opts, row, epoch)
            row["seconds"] = seconds / len(live)
            h.history.append(row)
            h.best.offer(epoch, key, h.method, row, val_logits)
    return [h.failed if h.failed is not None else TrainResult(h.history, h.best.epoch, h.best.state, h.best.val)
            for h in heads]


def train_bank(caches: Any, runs: list[Any], progress: bool, log: Callable[[str], None],
               record_failed: Callable[[Any, str, float], None]) -> list[tuple[Any, str]]:
    """Train a bank of planned runs in one pass and record each as its own run; [(run, message)].
    `record_failed(run, message, seconds)` records a head that diverged (heads.sweep.write_failed_run's way)."""
    from .experiment import prepare_experiment, record_experiment

    preps = [prepare_experiment(caches, run.options, log) for run in runs]
    first_step: list[float] = []
    started = time.time()
    p0 = preps[0]
    results = fit_bank([p.method for p in preps], caches.table, p0.rows["train"], p0.rows["val"], p0.scaler,
                       [p.train_options for p in preps], progress, lambda: first_step.append(time.time()),
                       p0.rows["labelled"])
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
        artifacts.write_json(partial / "metrics.json", metrics)
        artifacts.finish_run(partial, run.run_dir)
        out.append((run, f"best epoch {result.best_epoch}/{prep.train_options.epochs}, val top-1 "
                         f"{100 * val['top1']:.2f}% (in a bank of {len(runs)}, {seconds * len(runs):.1f} s)"))
    return out
