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

A bank shares each step's batch (order, gathering, standardising), the standardisation statistics, and for
fp32 linear probes the product itself: the heads' (C, D) weights are stacked into one (H*C, D) matrix and
every head's logits come from ONE matrix product (`StackedLinear`), its weight gradients from one more; only
the cross-entropy, the SGD update and validation stay per head. Their arithmetic is then their separate
runs' up to the order in which the BLAS sums a dot product (a wider product may block it differently: at
CUB's shape, weights within 1e-7 of the separate runs' after two epochs, history.csv the same). `none` heads
(an MLP each) and bf16 banks run each head's own forward and backward on the shared batch (exactly its
separate run's arithmetic).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import artifacts
from .data import LabelledStream, train_batches
from .linear import LinearProbe
from .method import Batch, Method, masks
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
    index: int = 0  # its place in the bank (and in a Stack)


def diverged(components: dict[str, torch.Tensor], loss: torch.Tensor, epoch: int, lr: float) -> Diverged:
    """The error a separate run raises (heads.train.train_step's message)."""
    bad = [k for k, v in components.items() if not torch.isfinite(v)]
    values = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in components.items())
    return Diverged(f"training diverged at epoch {epoch}: the {' and '.join(bad) or 'total'} loss turned "
                    f"{float(loss.detach())} ({values}) at learning rate {lr:.3g}; lower --lr")


class StackedLinear(torch.autograd.Function):
    """F.linear(x, W_h, b_h) of every head h from ONE product x W^T + b over the stacked weights W (sum C_h, D)
    and biases b, split into the heads' (B, C_h) logits. `params` (W_1..W_H, b_1..b_H) are views of W and b:
    gradients go to them.

    Backward gives each head what its own F.linear gives: weight gradients G_h^T x as row blocks of one
    G^T x product (G: the heads' logit gradients side by side), bias gradients G_h summed over rows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, *params: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.sizes = [len(b) for b in params[len(params) // 2:]]
        return F.linear(x, weight, bias).split(ctx.sizes, dim=1)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        grads = tuple(g.contiguous() for g in grads)
        weights = torch.cat(grads, dim=1).t().mm(x).split(ctx.sizes)
        return (None, None, None, *weights, *(g.sum(0) for g in grads))


@dataclass
class Stack:
    """The linear heads' weights stacked into one (sum C_h, D) matrix and their biases into one vector; each
    head's nn.Linear parameters are views of them, so the optimiser's in-place steps update the stack."""

    layers: list[torch.nn.Linear]
    weight: Tensor
    bias: Tensor

    @classmethod
    def of(cls, methods: list[Method]) -> "Stack":
        layers = [m.probe.linear for m in methods]
        weight = torch.cat([m.weight.detach() for m in layers])
        bias = torch.cat([m.bias.detach() for m in layers])
        sizes = [m.out_features for m in layers]
        for m, w, b in zip(layers, weight.split(sizes), bias.split(sizes)):
            m.weight, m.bias = torch.nn.Parameter(w), torch.nn.Parameter(b)
        return cls(layers, weight, bias)

    def release(self) -> None:
        """Give each head its own parameters again (copies of the views)."""
        for m in self.layers:
            m.weight = torch.nn.Parameter(m.weight.detach().clone())
            m.bias = torch.nn.Parameter(m.bias.detach().clone())

    def losses(self, heads: list[Head], batch: Batch) -> list[dict[str, Tensor]]:
        """Each live head's LinearProbe.losses(batch) (cross-entropy of W_h x + b_h on the labelled rows, and
        those logits) from one StackedLinear product over every head of the bank."""
        labelled, _ = masks(batch)
        x, label = batch["original"][labelled], batch["label"][labelled]
        params = [m.weight for m in self.layers] + [m.bias for m in self.layers]
        parts = StackedLinear.apply(x, self.weight, self.bias, *params)
        return [{"ce": F.cross_entropy(parts[h.index], label), "logits": parts[h.index]} for h in heads]


def stacks(methods: list[Method], precision: str) -> bool:
    """Whether a bank's heads train through one stacked product: fp32 linear probes (`StackedLinear`)."""
    return precision == "fp32" and all(type(m) is LinearProbe for m in methods)


def own_losses(heads: list[Head], batch: Batch) -> list[dict[str, Tensor]]:
    """Each head's own method.losses(batch), under its precision's autocast (train_step's way)."""
    out = []
    for h in heads:
        with autocast(batch["original"].device, h.opts.precision):
            out.append(h.method.losses(batch))
    return out


def bank_step(heads: list[Head], optimizer: torch.optim.Optimizer, batch: Batch, step: int, steps: tuple[int, int],
              epoch: int, losses: Callable[[list[Head], Batch], list[dict[str, Tensor]]]) -> None:
    """One optimiser step of every live head on the sum of their losses (each head's loss is train_step's;
    `losses`: own_losses or a Stack's)."""
    total, done = None, []
    for h, components in zip(heads, losses(heads, batch)):
        h.lr = learning_rate(step, steps[0], steps[1], h.opts.lr)
        h.group["lr"] = h.lr
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
        h.tally.add(batch, loss, components, logits.detach())


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
    stack = Stack.of(methods) if stacks(methods, o.precision) else None  # before the optimiser takes the parameters
    optimizer = torch.optim.SGD([{"params": list(m.parameters()), "lr": p.lr, "momentum": p.momentum,
                                  "weight_decay": p.weight_decay} for m, p in zip(methods, opts)], lr=o.lr)
    heads = [Head(m, p, g, index=i) for i, (m, p, g) in enumerate(zip(methods, opts, optimizer.param_groups))]
    per_epoch = math.ceil(len(train_rows) / o.batch_size)
    steps = (o.epochs * per_epoch, o.warmup_epochs * per_epoch)
    step, method0, losses = 0, methods[0], own_losses if stack is None else stack.losses
    try:
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
                bank_step([h for h in live if h.failed is None], optimizer, batch, step, steps, epoch, losses)
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
    finally:
        if stack is not None:
            stack.release()
    return [h.failed if h.failed is not None else TrainResult(h.history, h.best.epoch, h.best.state, h.best.val)
            for h in heads]


def train_bank(caches: Any, runs: list[Any], progress: bool, log: Callable[[str], None],
               record_failed: Callable[[Any, str, float], None]) -> list[tuple[Any, str]]:
    """Train a bank of planned runs in one pass and record each as its own run; [(run, message)].
    `record_failed(run, message, seconds)` records a head that diverged (heads.sweep.write_failed_run's way)."""
    from .experiment import prepare_experiment, record_experiment

    first = prepare_experiment(caches, runs[0].options, log)  # the heads share rows, hence the standardisation
    preps = [first] + [prepare_experiment(caches, run.options, None, first.scaler) for run in runs[1:]]
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
