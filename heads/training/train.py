"""The training loop: SGD + momentum, warm-up then cosine, one validation pass per epoch, the epoch rule's epoch
kept (heads.training.epochs: the latest epoch not worse than the lowest validation loss; a run stops early once it has
passed its best).

One loop trains 1..H heads on one batch stream (`fit_heads`): a single run is a bank of one (`fit`); a bank
of heads that differ only in lr or weight decay (heads.training.bank) takes one step of every head per batch. How the
heads step is the stepper's (heads.training.steppers: each head's own forward and backward, or the stacked linear fast
path); everything else is here, once: the epoch stream, the schedule, the step count, validation, the best
epoch, the health columns, a halving rung's state (heads.training.rungs).

The loop sees only the training cache (train and validation rows); the test split is evaluated once, by the
caller, with the weights of the epoch that scored best on validation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from heads.training import rungs
from heads.training.data import FeatureTable, LabelledStream, Scaler, train_batches
from heads.methods.method import Method
from heads.training.step import Diverged, Head, TrainOptions, batches_with_bar
from heads.training.steppers import HeadByHead, LinearStack, stacks


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    best_epoch: int  # 1-based; the last epoch when there is no validation split
    best_state: dict[str, Tensor]
    best_val: dict[str, Any]  # {"loss", "logits"} of the best epoch
    val_losses: list[np.ndarray] = field(default_factory=list)  # every epoch's per-image validation losses
    stopped_early: int | None = None  # the epoch after which the epoch rule stopped the run (heads.training.epochs)
    rung_state: dict[str, Any] | None = None  # stopped before its schedule's end: the state to continue from (heads.training.rungs)


def fit(method: Method, table: FeatureTable, train_rows: np.ndarray, val_rows: np.ndarray, scaler: Scaler,
        opts: TrainOptions, progress: bool = True, on_first_step: Callable[[], None] | None = None,
        labelled_rows: np.ndarray | None = None, resume: dict[str, Any] | None = None) -> TrainResult:
    """Fit `method`'s input transform (prepare_inputs) and train it on `train_rows` of `table` (fit_heads with one
    head), keeping the epoch rule's epoch; a loss that turns NaN or inf raises Diverged."""
    prepare_inputs(method, table, train_rows, opts.seed)
    (result,) = fit_heads([method], table, train_rows, val_rows, scaler, [opts], progress, on_first_step,
                          labelled_rows, [resume] if resume is not None else None)
    if isinstance(result, Diverged):
        raise result
    return result


def fit_heads(methods: list[Method], table: FeatureTable, train_rows: np.ndarray, val_rows: np.ndarray,
              scaler: Scaler, opts: list[TrainOptions], progress: bool = False,
              on_first_step: Callable[[], None] | None = None, labelled_rows: np.ndarray | None = None,
              resumes: list[dict[str, Any]] | None = None,
              between_epochs: Callable[[], None] | None = None) -> list[TrainResult | Diverged]:
    """Train every head on `train_rows` of `table` (one batch stream, one step of every live head per batch), each
    selecting its epoch with the best validation top-1; per head a TrainResult, or the Diverged error of a head
    whose loss turned NaN or inf (it leaves the bank; the others go on).

    `labelled_rows` (a subset of train_rows, --labels-per-class) are the only rows whose labels the cross-entropy
    sees; the self-supervised losses see every training row (heads.training.data.train_batches). `resumes`: every head's
    state from an earlier rung at the same epoch (heads.training.rungs), continued; a run stopped before its schedule's end
    returns its own in `rung_state`. `between_epochs` is called after each epoch (a study sets torch's threads to
    the cores other processes leave free there: a load that starts during a run).
    """
    o, device = opts[0], table.original.device
    if len(methods) == 1 and hasattr(methods[0], "reduced_table"):  # e.g. DCL's maps projected once by its fixed PCA
        table = methods[0].reduced_table(table)  # (fitted by prepare_inputs before the loop, on training rows only)
    stream = None
    if labelled_rows is not None and len(labelled_rows) < len(train_rows):
        stream = LabelledStream(torch.from_numpy(labelled_rows).to(device), o.batch_size, o.seed)
    val_idx = torch.from_numpy(val_rows).to(device)
    val_label = table.label[val_idx].cpu()
    train_idx = torch.from_numpy(train_rows).to(device)
    generator = torch.Generator().manual_seed(o.seed)
    for method, state in zip(methods, resumes or []):
        rungs.restore_method(method, state["method"])  # before a LinearStack stacks the weights
    banked = len(methods) > 1 and stacks(methods, opts)  # the stacked fast path is for banks; one run: the general step
    stepper = LinearStack(methods, opts) if banked else HeadByHead(methods, opts, device)
    per_epoch = math.ceil(len(train_rows) / o.batch_size)
    steps, step, first = (o.epochs * per_epoch, o.warmup_epochs * per_epoch), 0, 1
    if resumes:
        step, first = rungs.resume_heads(stepper, resumes, generator, stream)
    last = min(o.stop_after or o.epochs, o.epochs)  # a halving rung: the full run's schedule, cut short
    bar = tqdm(range(first, last + 1), desc="epochs", disable=not progress, dynamic_ncols=True)
    try:
        for epoch in bar:
            live = [h for h in stepper.heads if h.failed is None and h.stopped_early is None]
            if not live:
                break
            start = time.perf_counter()
            for h in live:
                h.method.train()
                h.tally = h.new_tally()
            batches = train_batches(table, train_idx, o.batch_size, scaler, generator, set(methods[0].needs), stream,
                                    methods[0].uses_unlabelled)
            for batch in batches_with_bar(batches, per_epoch, f"epoch {epoch}/{o.epochs}", progress):
                stepping = [h for h in live if h.failed is None]
                if not stepping:
                    break
                stepper.step(stepping, batch, step, steps, epoch)
                step += 1
                if step == 1 and on_first_step is not None:
                    on_first_step()
            done = [h for h in live if h.failed is None]
            record_epoch(done, stepper, epoch, table, val_idx, val_label, scaler, start)
            for h in done:
                if epoch < o.epochs and h.best.should_stop(h.opts.patience):
                    h.stopped_early = epoch  # passed its best: it leaves the loop (heads.training.epochs)
            if between_epochs is not None:
                between_epochs()
            if progress and len(done) == 1:
                row = done[0].history[-1]
                bar.set_postfix({k: f"{row[k]:.3f}" for k in row if k not in ("epoch", "lr", "seconds")}, refresh=False)
        states = [rungs.head_state(stepper, h, step, generator, stream, last)
                  if last < o.epochs and h.stopped_early is None else None for h in stepper.heads]
    finally:
        bar.close()
        stepper.close()
    return [h.failed if h.failed is not None else TrainResult(h.history, h.best.epoch, h.best.state, h.best.val,
                                                              h.best.losses, h.stopped_early, state)
            for h, state in zip(stepper.heads, states)]


def prepare_inputs(method: Method, table: FeatureTable, train_rows: np.ndarray, seed: int) -> dict[str, Any] | None:
    """A method's fixed input transform fitted on training rows only (DCL's maps), or None."""
    prepare = getattr(method, "prepare_inputs", None)
    return prepare(table, train_rows, seed) if prepare is not None else None


def record_epoch(heads: list[Head], stepper: HeadByHead | LinearStack, epoch: int, table: FeatureTable,
                 val_idx: Tensor, val_label: Tensor, scaler: Scaler, start: float) -> None:
    """Each head's history row of the epoch (validation included, and the epoch's seconds shared among the heads)
    and its best epoch so far."""
    if not heads:
        return
    rows = [h.tally.row(epoch, h.lr, h.monitor.fraction() if h.monitor is not None else None) for h in heads]
    for h in heads:
        h.method.eval()
    validated = stepper.validate(heads, rows, table, val_idx, val_label, scaler, epoch)
    seconds = (time.perf_counter() - start) / len(heads)
    for h, row, (val_logits, losses) in zip(heads, rows, validated):
        row["seconds"] = seconds
        h.history.append(row)
        h.best.offer(epoch, losses, h.method, row, val_logits)
