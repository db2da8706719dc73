"""One pass for optimiser-only grids: `linear` (or `none`) settings of one seed that differ only in learning rate
or weight decay train as a bank of heads on the same batches (as DINOv2's eval/linear.py does).

Each head is the network its separate run would build (same seed, so the same initial weights), trained by
its own SGD (its own lr schedule, weight decay and momentum buffer) on its own loss, so it follows its
separate run's trajectory. Each head is then selected and recorded as its own run (own directory,
config.json, history.csv, metrics.json, model.pt, curves.png) by the same `heads.experiment` steps a separate
run uses; metrics.json's timing says it trained in a bank (train_seconds is the bank's time divided by its
heads). A head whose loss turns non-finite is recorded as a failed run (as its separate run would be) and
leaves the bank; the others go on.

Two ways to train a bank:
- `LinearStack` (linear probes, fp32 or bf16): the heads' (C, D) weights are rows of one (H*C, D) matrix, so
  a step is one product for every head's logits, one for every head's weight gradients, and a few
  element-wise passes over the stack for the cross-entropy and SGD (per-head weight decay and learning
  rate as columns), whatever H; validation is one product per batch. A head's numbers equal its separate
  run's to rounding: the wide product and the vectorised update order some sums differently. At CUB's
  shape after two epochs: fp32 weights within 1e-7 and the same history.csv; bf16 (whose products round
  their results to bfloat16) weights within 3e-4 of values about 0.15, history within 1e-4 (relative).
- `HeadByHead` (`none` heads, an MLP each, and any other precision): each head's own forward and backward
  on the shared batch, one backward pass of the sum of the losses, torch's SGD with a parameter group per
  head: exactly each separate run's arithmetic.
Both share each step's batch (order, gathering, standardising) and the standardisation statistics.
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

from . import artifacts, rungs
from .data import LabelledStream, eval_batches, train_batches
from .linear import LinearProbe
from .method import Batch, Method, masks
from .health import ReluMonitor
from .train import (Best, Diverged, EpochTally, TrainOptions, TrainResult, _batches_with_bar, autocast, best_state,
                    clip_gradients, learning_rate, method_state, momentum_of, restore_best, restore_method,
                    restore_streams, set_momentum, stream_state, validate)

BANK_AUXES = ("linear", "none")
BANK_OPTIONS = ("lr", "weight_decay")  # settings that differ only in these share one pass


def bank_key(run: Any) -> tuple | None:
    """Runs with the same key can share a bank (None: this run trains alone)."""
    opts = run.options
    if run.setting.aux not in BANK_AUXES or opts.get("precision") == "fp16" or opts.get("selection") == "cv":
        return None  # cv fold and final runs each train on their own rows (heads.cv): never a shared batch
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
    index: int  # its place in the bank (and its rows in a LinearStack)
    best: Best = field(default_factory=Best)
    history: list[dict[str, float]] = field(default_factory=list)
    failed: Diverged | None = None
    tally: EpochTally | None = None
    lr: float = 0.0
    monitor: ReluMonitor | None = None  # HeadByHead: its dead ReLU units per epoch (heads.health)


def diverged(components: dict[str, torch.Tensor], loss: torch.Tensor, epoch: int, lr: float) -> Diverged:
    """The error a separate run raises (heads.train.train_step's message)."""
    bad = [k for k, v in components.items() if not torch.isfinite(v)]
    values = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in components.items())
    return Diverged(f"training diverged at epoch {epoch}: the {' and '.join(bad) or 'total'} loss turned "
                    f"{float(loss.detach())} ({values}) at learning rate {lr:.3g}; lower --lr")


Steps = tuple[int, int]  # (total steps, warm-up steps) of the schedule


class HeadByHead:
    """Each head's own forward and backward on the shared batch (any method, any precision): one backward
    pass of the SUM of the heads' losses and torch's SGD with a parameter group per head."""

    def __init__(self, methods: list[Method], opts: list[TrainOptions]):
        self.optimizer = torch.optim.SGD([{"params": list(m.parameters()), "lr": p.lr, "momentum": p.momentum,
                                           "weight_decay": p.weight_decay} for m, p in zip(methods, opts)],
                                         lr=opts[0].lr)
        self.heads = [Head(m, p, i, monitor=ReluMonitor(m)) for i, (m, p) in enumerate(zip(methods, opts))]

    def step(self, heads: list[Head], batch: Batch, step: int, steps: Steps, epoch: int) -> None:
        """One optimiser step of the live heads on the sum of their losses (each head's loss is train_step's;
        each head's gradients, which are its own, clipped to its --grad-clip as its separate run's are)."""
        total, done = None, []
        for h in heads:
            h.lr = learning_rate(step, steps[0], steps[1], h.opts.lr)
            self.optimizer.param_groups[h.index]["lr"] = h.lr
            with autocast(batch["original"].device, h.opts.precision):
                components = h.method.losses(batch)
            logits = components.pop("logits", None)
            loss = sum(h.method.loss_weights.get(k, 1.0) * v for k, v in components.items())
            if not torch.isfinite(loss):
                h.failed = diverged(components, loss, epoch, h.lr)
                continue
            total = loss if total is None else total + loss
            done.append((h, loss, components, logits))
        self.optimizer.zero_grad(set_to_none=True)
        norms = {}
        if total is not None:
            total.backward()
            norms = {h.index: clip_gradients(h.method.parameters(), h.opts.grad_clip) for h, *_ in done}
            self.optimizer.step()
        for h, loss, components, logits in done:
            h.method.after_step(batch)
            if logits is None:
                with torch.no_grad():
                    logits = h.method(batch)[batch["labelled"]]
            h.tally.add(batch, loss, components, logits.detach(), norms[h.index])

    def validate(self, heads: list[Head], rows: list[dict[str, float]], table: Any, val_idx: Tensor,
                 val_label: Tensor, scaler: Any, epoch: int) -> list[tuple[Tensor | None, tuple[float, float]]]:
        """heads.train.validate of each live head."""
        return [validate(h.method, table, val_idx, val_label, scaler, h.opts, row, epoch)
                for h, row in zip(heads, rows)]

    def momentum_buffers(self, h: Head) -> dict[str, Tensor]:
        """Head h's momentum buffers by parameter name (heads.train.momentum_of's form)."""
        return momentum_of(h.method, self.optimizer)

    def set_momentum_buffers(self, h: Head, momentum: dict[str, Tensor]) -> None:
        set_momentum(h.method, self.optimizer, momentum)

    def close(self) -> None:
        """Remove the heads' ReLU monitors."""
        for h in self.heads:
            h.monitor.close()


def stacks(methods: list[Method], opts: list[TrainOptions]) -> bool:
    """Whether a bank trains as one LinearStack: linear probes of one shape, momentum and precision (fp32/bf16)."""
    return (all(type(m) is LinearProbe for m in methods) and len({p.precision for p in opts}) == 1
            and opts[0].precision in ("fp32", "bf16") and len({m.probe.linear.weight.shape for m in methods}) == 1
            and len({p.momentum for p in opts}) == 1)


class LinearStack:
    """Linear probes trained as one: the heads' (C, D) weights stacked into one (H*C, D) matrix W (each
    head's parameters are views of its rows, so its state_dict is always current), so a step is one product
    for every head's logits and one for every head's weight gradients, whatever H.

    Per head h, on the labelled rows x_i, y_i (i = 1..n) of the batch, z_hi = W_h x_i + b_h and
      L_h = (1/n) sum_i -log softmax(z_hi)[y_i]             (cross-entropy, LinearProbe.losses)
      dL_h/dz_hi = (softmax(z_hi) - onehot(y_i)) / n,  dL_h/dW_h = sum_i dz_hi x_i^T,  dL_h/db_h = sum_i dz_hi
      d = g + wd_h w;  buf = momentum buf + d;  w -= lr_h(t) buf     (torch.optim.SGD, buf starting at 0)
    computed for all heads at once; a head's numbers equal its separate run's to float rounding. In bf16 the
    two products take bfloat16 operands and give bfloat16 results, as autocast gives a separate run's."""

    def __init__(self, methods: list[Method], opts: list[TrainOptions]):
        self.layers = [m.probe.linear for m in methods]
        self.classes = self.layers[0].out_features
        self.weight = torch.cat([m.weight.detach() for m in self.layers])
        self.bias = torch.cat([m.bias.detach() for m in self.layers])
        for m, w, b in zip(self.layers, self.weight.split(self.classes), self.bias.split(self.classes)):
            m.weight, m.bias = torch.nn.Parameter(w), torch.nn.Parameter(b)
        self.momentum = opts[0].momentum
        self.operands = torch.bfloat16 if opts[0].precision == "bf16" else torch.float32  # the products' dtype
        self.buffers = (torch.zeros_like(self.weight), torch.zeros_like(self.bias))
        self.decay = self.per_row([p.weight_decay for p in opts])
        self.clip = torch.tensor([p.grad_clip for p in opts], device=self.weight.device)
        self.heads = [Head(m, p, i) for i, (m, p) in enumerate(zip(methods, opts))]

    def per_row(self, values: list[float]) -> Tensor:
        """One value per head -> a (H*C, 1) column, a head's value on each of its rows."""
        column = torch.tensor(values, dtype=self.weight.dtype, device=self.weight.device)
        return column.repeat_interleave(self.classes)[:, None]

    def logits(self, x: Tensor) -> Tensor:
        """(B, H, C) float32: every head's W_h x + b_h from one product (in the operands' dtype)."""
        c = self.operands
        return torch.addmm(self.bias.to(c), x.to(c), self.weight.to(c).t()).float().view(len(x), -1, self.classes)

    @torch.no_grad()
    def step(self, heads: list[Head], batch: Batch, step: int, steps: Steps, epoch: int) -> None:
        """One SGD step of every head on its own cross-entropy (the equations above); live heads are counted."""
        labelled, _ = masks(batch)
        x, y = batch["original"][labelled], batch["label"][labelled]
        n, count = len(x), len(self.heads)
        logits = self.logits(x)
        grad = logits.log_softmax(2)
        at_label = y.view(n, 1, 1).expand(n, count, 1)
        ce = -grad.gather(2, at_label).squeeze(2).mean(0)  # (H,)
        hits = (logits.argmax(2) == y.view(n, 1)).sum(0)
        grad.exp_().scatter_add_(2, at_label, torch.full_like(at_label, -1, dtype=grad.dtype)).div_(n)
        lrs = [learning_rate(step, steps[0], steps[1], h.opts.lr) for h in self.heads]
        grad = grad.to(self.operands)
        grad_weight = grad.view(n, -1).t().mm(x.to(self.operands)).float()
        grad_bias = grad.sum(0).view(-1).float()
        norms = self.clip_per_head(grad_weight, grad_bias)
        self.update(grad_weight, grad_bias, self.per_row(lrs))
        values, finite, correct, norms = ce.tolist(), torch.isfinite(ce).tolist(), hits.tolist(), norms.tolist()
        for h in heads:
            h.lr = lrs[h.index]
            if finite[h.index]:
                count_step(h.tally, len(batch["index"]), n, values[h.index], correct[h.index], norms[h.index])
            else:  # its rows of the stack go on being computed, never read
                h.failed = diverged({"ce": ce[h.index]}, ce[h.index], epoch, h.lr)

    def clip_per_head(self, grad_weight: Tensor, grad_bias: Tensor) -> Tensor:
        """(H,) each head's global gradient norm sqrt(|dW_h|^2 + |db_h|^2) before clipping; with --grad-clip c > 0
        each head's dW_h and db_h are scaled in place, each on its own, by min(1, c / (norm + 1e-6))
        (heads.train.clip_gradients' rule)."""
        count = len(self.heads)
        weight, bias = grad_weight.view(count, -1), grad_bias.view(count, -1)
        norms = torch.stack([weight.norm(dim=1), bias.norm(dim=1)])  # (2, H)
        factor = torch.where(self.clip > 0, (self.clip / (norms + 1e-6)).clamp(max=1.0), torch.ones_like(norms))
        if bool((factor < 1).any()):
            weight.mul_(factor[0][:, None])
            bias.mul_(factor[1][:, None])
        return norms.square().sum(0).sqrt()

    def update(self, grad_weight: Tensor, grad_bias: Tensor, lr: Tensor) -> None:
        """SGD with momentum and each head's weight decay and learning rate, in place on W and b."""
        for param, grad, buf, decay, rate in ((self.weight, grad_weight, self.buffers[0], self.decay, lr),
                                              (self.bias, grad_bias, self.buffers[1], self.decay[:, 0], lr[:, 0])):
            grad.addcmul_(param, decay)  # d = g + wd w
            torch.add(grad, buf, alpha=self.momentum, out=buf)  # buf = momentum buf + d (one pass)
            param.addcmul_(buf, rate, value=-1)  # w -= lr buf

    @torch.no_grad()
    def validate(self, heads: list[Head], rows: list[dict[str, float]], table: Any, val_idx: Tensor,
                 val_label: Tensor, scaler: Any, epoch: int) -> list[tuple[Tensor | None, tuple[float, float]]]:
        """heads.train.validate for every live head from one product per validation batch."""
        if not len(val_idx):
            return [(None, (float(epoch), 0.0)) for _ in heads]  # no validation: keep the last epoch
        size = max(heads[0].opts.batch_size, 1024)
        batches = eval_batches(table, val_idx, size, scaler, set())
        logits = torch.cat([self.logits(b["original"]).cpu() for b in batches])
        out = []
        for h, row in zip(heads, rows):
            mine = logits[:, h.index].contiguous()
            row["val_loss"] = float(F.cross_entropy(mine, val_label))
            row["val_acc"] = float((mine.argmax(1) == val_label).float().mean())
            out.append((mine, (row["val_acc"], -row["val_loss"])))
        return out

    def momentum_buffers(self, h: Head) -> dict[str, Tensor]:
        """Head h's rows of the momentum buffers, by its parameter names (heads.train.momentum_of's form)."""
        rows = slice(h.index * self.classes, (h.index + 1) * self.classes)
        return {"probe.linear.weight": self.buffers[0][rows].cpu().clone(),
                "probe.linear.bias": self.buffers[1][rows].cpu().clone()}

    def set_momentum_buffers(self, h: Head, momentum: dict[str, Tensor]) -> None:
        rows = slice(h.index * self.classes, (h.index + 1) * self.classes)
        for buf, name in zip(self.buffers, ("probe.linear.weight", "probe.linear.bias")):
            if name in momentum:
                buf[rows] = momentum[name].to(buf.device)

    def close(self) -> None:
        """Give each head its own parameters again (copies of its rows of the stack)."""
        for m in self.layers:
            m.weight = torch.nn.Parameter(m.weight.detach().clone())
            m.bias = torch.nn.Parameter(m.bias.detach().clone())


def count_step(tally: EpochTally, rows: int, labelled: int, ce: float, correct: int, norm: float) -> None:
    """EpochTally.add for a linear head whose counts were taken for all heads at once: the total loss (its
    cross-entropy) over the batch's rows, the cross-entropy over the labelled rows, train accuracy on them,
    the step's gradient norm."""
    tally.seen += labelled
    tally.correct += correct
    tally.grad_norms += norm
    tally.steps += 1
    for k, n in (("loss", rows), ("ce", labelled)):
        tally.sums[k] = tally.sums.get(k, 0.0) + ce * n
        tally.rows_seen[k] = tally.rows_seen.get(k, 0) + n
    tally.components = ("ce",)


def fit_bank(methods: list[Method], table: Any, train_rows: np.ndarray, val_rows: np.ndarray, scaler: Any,
             opts: list[TrainOptions], progress: bool = False, on_first_step: Callable[[], None] | None = None,
             labelled_rows: np.ndarray | None = None, resumes: list[dict[str, Any]] | None = None
             ) -> list[TrainResult | Diverged]:
    """heads.train.fit for a bank of heads that differ only in lr / weight decay: one batch stream, one step
    of every head per batch; per head a TrainResult (or the Diverged error its separate run would raise).
    `resumes`: every head's state from an earlier rung at the same epoch (heads.rungs), continued."""
    o, device = opts[0], table.original.device
    stream = None
    if labelled_rows is not None and len(labelled_rows) < len(train_rows):
        stream = LabelledStream(torch.from_numpy(labelled_rows).to(device), o.batch_size, o.seed)
    val_idx = torch.from_numpy(val_rows).to(device)
    val_label = table.label[val_idx].cpu()
    train_idx = torch.from_numpy(train_rows).to(device)
    generator = torch.Generator().manual_seed(o.seed)
    for method, state in zip(methods, resumes or []):
        restore_method(method, state["method"])  # before a LinearStack stacks the weights
    bank = LinearStack(methods, opts) if stacks(methods, opts) else HeadByHead(methods, opts)
    per_epoch = math.ceil(len(train_rows) / o.batch_size)
    steps, step, method0, first = (o.epochs * per_epoch, o.warmup_epochs * per_epoch), 0, methods[0], 1
    if resumes:
        step, first = resume_bank(bank, resumes, generator, stream)
    last = min(o.stop_after or o.epochs, o.epochs)
    try:
        for epoch in range(first, last + 1):
            start = time.perf_counter()
            live = [h for h in bank.heads if h.failed is None]
            if not live:
                break
            for h in live:
                h.method.train()
                h.tally = EpochTally(h.method.component_rows)
            batches = train_batches(table, train_idx, o.batch_size, scaler, generator, set(method0.needs), stream,
                                    method0.uses_unlabelled)
            for batch in _batches_with_bar(batches, per_epoch, f"bank epoch {epoch}/{o.epochs}", progress):
                bank.step([h for h in live if h.failed is None], batch, step, steps, epoch)
                step += 1
                if step == 1 and on_first_step is not None:
                    on_first_step()
            seconds = time.perf_counter() - start
            record_epoch([h for h in live if h.failed is None], bank, epoch, seconds / len(live), table, val_idx,
                         val_label, scaler)
        states = [bank_state(bank, h, step, generator, stream, last) if last < o.epochs else None for h in bank.heads]
    finally:
        bank.close()
    return [h.failed if h.failed is not None else TrainResult(h.history, h.best.epoch, h.best.state, h.best.val,
                                                              None, state)
            for h, state in zip(bank.heads, states)]


def resume_bank(bank: HeadByHead | LinearStack, resumes: list[dict[str, Any]], generator: torch.Generator,
                stream: LabelledStream | None) -> tuple[int, int]:
    """Each head's momentum, history and best epoch from its rung state, the shared streams from the first;
    (the step counter, the first epoch to train)."""
    for h, state in zip(bank.heads, resumes):
        bank.set_momentum_buffers(h, state["momentum"])
        h.history, h.best = [dict(r) for r in state["history"]], restore_best(state["best"], h.method)
    return restore_streams(resumes[0], generator, stream), int(resumes[0]["epoch"]) + 1


def bank_state(bank: HeadByHead | LinearStack, h: Head, step: int, generator: torch.Generator,
               stream: LabelledStream | None, epoch: int) -> dict[str, Any]:
    """Head h's rung state in heads.train.fit's form (a separate run could continue it, and a bank)."""
    return {**stream_state(step, generator, stream), "epoch": epoch, "history": [dict(r) for r in h.history],
            "best": best_state(h.best, epoch), "method": method_state(h.method), "momentum": bank.momentum_buffers(h),
            "grad_scaler": None}


def record_epoch(heads: list[Head], bank: HeadByHead | LinearStack, epoch: int, seconds: float, table: Any,
                 val_idx: Tensor, val_label: Tensor, scaler: Any) -> None:
    """Each head's history row of the epoch (validation included) and its best epoch so far."""
    rows = [h.tally.row(epoch, h.lr, h.monitor.fraction() if h.monitor is not None else None) for h in heads]
    for h in heads:
        h.method.eval()
    for h, row, (val_logits, key) in zip(heads, rows, bank.validate(heads, rows, table, val_idx, val_label, scaler,
                                                                     epoch)):
        row["seconds"] = seconds
        h.history.append(row)
        h.best.offer(epoch, key, h.method, row, val_logits)


def bank_resumes(runs: list[Any]) -> list[dict[str, Any]] | None:
    """Every run's rung state (heads.rungs), when all have one from the same epoch; else None: the bank trains
    from scratch (a mixed bank cannot share one batch stream)."""
    states = [rungs.load_for(run.run_dir, run.options) for run in runs]
    if any(s is None for s in states) or len({int(s["epoch"]) for s in states}) != 1:
        return None
    return states


def train_bank(caches: Any, runs: list[Any], progress: bool, log: Callable[[str], None],
               record_failed: Callable[[Any, str, float], None]) -> list[tuple[Any, str]]:
    """Train a bank of planned runs in one pass and record each as its own run; [(run, message)].
    `record_failed(run, message, seconds)` records a head that diverged (heads.runs.write_failed_run's way)."""
    from .experiment import keep_rung_state, prepare_experiment, record_experiment

    first = prepare_experiment(caches, runs[0].options, log)  # the heads share rows, hence the standardisation
    preps = [first] + [prepare_experiment(caches, run.options, None, first.scaler) for run in runs[1:]]
    resumes = bank_resumes(runs)
    first_step: list[float] = []
    started = time.time()
    p0 = preps[0]
    results = fit_bank([p.method for p in preps], caches.table, p0.rows["train"], p0.rows["val"], p0.scaler,
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
