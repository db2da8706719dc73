"""The training loop: SGD + momentum, warm-up then cosine, one validation pass per epoch, best epoch kept.

The loop sees only the training cache (train and validation rows); the test split is evaluated once,
by the caller, with the weights of the epoch that scored best on validation.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from pipeline.errors import PipelineError

from .data import FeatureTable, LabelledStream, Scaler, eval_batches, train_batches
from .health import ReluMonitor
from .method import Method


@dataclass
class TrainOptions:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup_epochs: int = 2
    grad_clip: float = 1.0  # clip each parameter tensor's gradient norm at this value (0: off; clip_gradients)
    seed: int = 0
    precision: str = "fp32"  # "fp32", "bf16" or (CUDA) "fp16" (autocast of the matrix products)
    stop_after: int | None = None  # successive halving: train epochs 1..stop_after of this schedule only


class Diverged(PipelineError):
    """A loss turned NaN or inf during training (the features were checked finite before)."""


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    best_epoch: int  # 1-based; the last epoch when there is no validation split
    best_state: dict[str, Tensor]
    best_val: dict[str, Any] = field(default_factory=dict)  # {"loss", "logits"} of the best epoch
    inputs: dict[str, Any] | None = None  # a fixed input transform fitted on training rows (DCL's --dcl-pca)
    rung_state: dict[str, Any] | None = None  # stopped before its schedule's end: the state to continue from (heads.rungs)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on a CPU with native bfloat16 matrix units (AMX/AVX-512 BF16) or a CUDA device that
    supports it, else fp32; fp16 is for CUDA only (with loss scaling)."""
    device = torch.device(device)
    if precision == "fp16" and device.type != "cuda":
        raise PipelineError("--precision fp16: float16 autocast is for CUDA devices; use bf16 or fp32 on the CPU")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
        except (AttributeError, RuntimeError):
            return "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast of the matrix products for 'bf16' (CPU or CUDA) and 'fp16' (CUDA); nothing for 'fp32'."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def learning_rate(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay from base_lr to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def predict(method: Method, table: FeatureTable, rows: Tensor, batch_size: int, scaler: Scaler,
            precision: str = "fp32") -> Tensor:
    """(len(rows), C) float32 logits on the CPU, eval mode."""
    method.eval()
    device = table.original.device
    out = []
    for batch in eval_batches(table, rows, max(batch_size, 1024), scaler, set(method.needs)):
        with autocast(device, precision):
            out.append(method(batch).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def _batches_with_bar(it: Iterator, total: int, desc: str, show: bool) -> Iterator:
    if not show:
        return it
    return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)


@dataclass
class EpochTally:
    """Step accounting over one epoch: each loss summed over the rows it saw, and train accuracy."""

    rows_of: dict[str, str]  # component -> the batch mask its rows come from
    sums: dict[str, float] = field(default_factory=dict)
    rows_seen: dict[str, int] = field(default_factory=dict)
    correct: int = 0
    seen: int = 0
    components: tuple[str, ...] = ()  # the last step's loss components
    grad_norms: float = 0.0  # sum over steps of the global gradient norm before clipping
    steps: int = 0

    def add(self, batch: dict[str, Tensor], loss: Tensor, components: dict[str, Tensor], logits: Tensor,
            norm: float) -> None:
        """Count one step: labelled rows for accuracy; each component averaged over the rows it saw, the
        total over the batch's rows; the step's gradient norm."""
        labelled = batch["labelled"]
        self.seen += int(labelled.sum())
        self.correct += int((logits.argmax(1) == batch["label"][labelled]).sum())
        self.grad_norms += norm
        self.steps += 1
        for k, v in (("loss", loss), *components.items()):
            n = len(batch["index"]) if k == "loss" else int(batch[self.rows_of.get(k, "labelled")].sum())
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach()) * n
            self.rows_seen[k] = self.rows_seen.get(k, 0) + n
        self.components = tuple(components)

    def means(self) -> dict[str, float]:
        return {k: v / max(self.rows_seen[k], 1) for k, v in self.sums.items()}

    def row(self, epoch: int, lr: float, dead_frac: float | None = None) -> dict[str, float]:
        """The epoch's history row before validation: lr, mean losses, train accuracy, rows per loss, mean
        gradient norm and (methods with ReLU units) the share of units dead all epoch (heads.health)."""
        row: dict[str, float] = {"epoch": epoch, "lr": lr}
        row.update(self.means())
        row["train_acc"] = self.correct / max(self.seen, 1)
        row.update({f"rows_{k}": self.rows_seen[k] for k in self.components})
        row["grad_norm"] = self.grad_norms / max(self.steps, 1)
        if dead_frac is not None:
            row["dead_frac"] = dead_frac
        return row


@dataclass
class Best:
    """The epoch kept so far: highest (val top-1, -val loss), or the last epoch without validation."""

    epoch: int = 0
    key: tuple[float, float] = (-1.0, 0.0)
    state: dict[str, Tensor] = field(default_factory=dict)
    val: dict[str, Any] = field(default_factory=dict)

    def offer(self, epoch: int, key: tuple[float, float], method: Method, row: dict[str, float],
              val_logits: Tensor | None) -> None:
        if key > self.key:
            self.epoch, self.key = epoch, key
            self.state = {k: v.detach().clone() for k, v in method.state_dict().items()}
            self.val = {"loss": row.get("val_loss"), "logits": val_logits}


def momentum_of(method: Method, optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """SGD's momentum buffers of `method`'s parameters, by parameter name (those with a buffer yet)."""
    out = {}
    for name, p in method.named_parameters():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            out[name] = buf.detach().cpu().clone()
    return out


def set_momentum(method: Method, optimizer: torch.optim.Optimizer, momentum: dict[str, Tensor]) -> None:
    """Put saved momentum buffers (momentum_of's) back into `optimizer` for `method`'s parameters."""
    params = dict(method.named_parameters())
    for name, buf in momentum.items():
        optimizer.state[params[name]]["momentum_buffer"] = buf.to(params[name].device).clone()


def stream_state(step: int, generator: torch.Generator, stream: LabelledStream | None) -> dict[str, Any]:
    """What the batches after `step` depend on: the step counter, the epoch stream's generator, the labelled
    stream's generator and position, torch's global generator (methods may draw from it)."""
    state: dict[str, Any] = {"step": step, "generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if stream is not None:
        state["stream"] = {"generator": stream.generator.get_state(), "order": stream.order.cpu(), "pos": stream.pos}
    return state


def restore_streams(state: dict[str, Any], generator: torch.Generator, stream: LabelledStream | None) -> int:
    """stream_state's numbers put back; the step counter."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if stream is not None:
        stream.generator.set_state(state["stream"]["generator"])
        stream.order, stream.pos = state["stream"]["order"].to(stream.rows.device), state["stream"]["pos"]
    return int(state["step"])


def method_generators(method: Method) -> dict[str, torch.Generator]:
    """Generators a method holds itself (e.g. PIRL's for sampled negatives), by module path and attribute."""
    return {f"{path}.{name}" if path else name: value for path, module in method.named_modules()
            for name, value in vars(module).items() if isinstance(value, torch.Generator)}


def method_state(method: Method) -> dict[str, Any]:
    """A method's weights and buffers (CPU copies) and its own generators' states."""
    return {"weights": {k: v.detach().cpu().clone() for k, v in method.state_dict().items()},
            "generators": {k: g.get_state() for k, g in method_generators(method).items()}}


def restore_method(method: Method, saved: dict[str, Any]) -> None:
    """method_state's numbers put back into a freshly built method."""
    method.load_state_dict(saved["weights"])
    generators = method_generators(method)
    for name, state in saved["generators"].items():
        generators[name].set_state(state)


def best_state(best: "Best", epoch: int) -> dict[str, Any]:
    """The best epoch so far; its weights only when it is not `epoch` (the current weights are saved anyway)."""
    return {"epoch": best.epoch, "key": best.key, "state": best.state if best.epoch != epoch else None, "val": best.val}


def restore_best(saved: dict[str, Any], method: Method) -> "Best":
    """best_state's Best, its weights copied from `method` (already restored) when they were the current ones."""
    state = saved["state"]
    if state is None:
        state = {k: v.detach().clone() for k, v in method.state_dict().items()}
    return Best(saved["epoch"], tuple(saved["key"]), state, saved["val"])


def train_step(method: Method, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], lr: float,
               device: torch.device, precision: str, epoch: int, grad_scaler: Any = None, grad_clip: float = 0.0
               ) -> tuple[Tensor, dict[str, Tensor], Tensor | None, float]:
    """One optimiser step on sum(w * loss) at learning rate `lr`; (loss, components, logits or None, the global
    gradient norm before clipping). `grad_scaler` (fp16 on CUDA) scales the loss so float16 gradients do not
    underflow (the norm is of the unscaled gradients); `grad_clip` > 0 clips each parameter's gradient norm before
    the update (clip_gradients)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, precision):
        components = method.losses(batch)
    logits = components.pop("logits", None)
    loss = sum(method.loss_weights.get(k, 1.0) * v for k, v in components.items())
    if not torch.isfinite(loss):
        bad = [k for k, v in components.items() if not torch.isfinite(v)]
        values = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in components.items())
        raise Diverged(f"training diverged at epoch {epoch}: the {' and '.join(bad) or 'total'} loss turned "
                       f"{float(loss.detach())} ({values}) at learning rate {lr:.3g}; lower --lr")
    optimizer.zero_grad(set_to_none=True)
    if grad_scaler is None:
        loss.backward()
    else:
        grad_scaler.scale(loss).backward()
        grad_scaler.unscale_(optimizer)
    norm = clip_gradients(method.parameters(), grad_clip)
    if grad_scaler is None:
        optimizer.step()
    else:
        grad_scaler.step(optimizer)
        grad_scaler.update()
    method.after_step(batch)
    return loss, components, logits, norm


def clip_gradients(parameters: Any, grad_clip: float) -> float:
    """The global gradient norm of `parameters` before clipping; with grad_clip > 0 each parameter tensor's
    gradient is first scaled to a norm of at most grad_clip, on its own (factor min(1, grad_clip / (norm +
    1e-6)), torch.nn.utils.clip_grad_norm_'s rule applied per tensor). Per tensor, not over all of them: a
    global factor would let one head's gradients rescale another's that shares no parameter with it (PIRL's
    separate jigsaw head would change the classifier's steps)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch.stack(torch._foreach_norm(grads)).float()  # one call for every tensor
    if grad_clip > 0:
        factors = (grad_clip / (norms + 1e-6)).clamp(max=1.0)
        if bool((factors < 1.0).any()):
            torch._foreach_mul_(grads, list(factors.to(grads[0].dtype).unbind()))
    return float(norms.square().sum().sqrt())


def validate(method: Method, table: FeatureTable, val_idx: Tensor, val_label: Tensor, scaler: Scaler,
             opts: TrainOptions, row: dict[str, float], epoch: int) -> tuple[Tensor | None, tuple[float, float]]:
    """Add val_loss and val_acc to the epoch's row; (validation logits, the epoch's selection key)."""
    if not len(val_idx):
        return None, (float(epoch), 0.0)  # no validation: keep the last epoch
    val_logits = predict(method, table, val_idx, opts.batch_size, scaler, opts.precision)
    row["val_loss"] = float(F.cross_entropy(val_logits, val_label))
    row["val_acc"] = float((val_logits.argmax(1) == val_label).float().mean())
    return val_logits, (row["val_acc"], -row["val_loss"])


@dataclass
class Loop:
    """What every epoch of one fit shares: the method, its data, optimiser, schedule and step counter."""

    method: Method
    table: FeatureTable
    train_idx: Tensor
    scaler: Scaler
    opts: TrainOptions
    stream: LabelledStream | None
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    progress: bool
    on_first_step: Callable[[], None] | None
    step: int = 0
    grad_scaler: Any = None  # torch.amp.GradScaler for fp16 on CUDA
    monitor: ReluMonitor | None = None  # dead ReLU units per epoch (heads.health)

    def learning_rate(self) -> float:
        o, n = self.opts, self.steps_per_epoch
        return learning_rate(self.step, o.epochs * n, o.warmup_epochs * n, o.lr)

    def epoch(self, epoch: int) -> tuple[EpochTally, float]:
        """Train one epoch; (its tally, the last step's learning rate); the monitor counts its ReLU units."""
        method, opts, device = self.method, self.opts, self.table.original.device
        method.train()
        tally = EpochTally(method.component_rows)
        batches = train_batches(self.table, self.train_idx, opts.batch_size, self.scaler, self.generator,
                                set(method.needs), self.stream, method.uses_unlabelled)
        bar = _batches_with_bar(batches, self.steps_per_epoch, f"epoch {epoch}/{opts.epochs}", self.progress)
        for batch in bar:
            lr = self.learning_rate()
            loss, components, logits, norm = train_step(method, self.optimizer, batch, lr, device, opts.precision,
                                                        epoch, self.grad_scaler, opts.grad_clip)
            self.step += 1
            if self.step == 1 and self.on_first_step is not None:
                self.on_first_step()
            if logits is None:
                with torch.no_grad():
                    logits = method(batch)[batch["labelled"]]
            tally.add(batch, loss, components, logits, norm)
            if self.progress:
                bar.set_postfix({k: f"{v:.3f}" for k, v in tally.means().items()}, refresh=False)
        return tally, lr


def fit(method: Method, table: FeatureTable, train_rows: np.ndarray, val_rows: np.ndarray, scaler: Scaler,
        opts: TrainOptions, progress: bool = True, on_first_step: Callable[[], None] | None = None,
        labelled_rows: np.ndarray | None = None, resume: dict[str, Any] | None = None) -> TrainResult:
    """Train `method` on `train_rows` of `table`, select the epoch with the best validation top-1.

    `labelled_rows` (a subset of train_rows, --labels-per-class) are the only rows whose labels the
    cross-entropy sees; the self-supervised losses see every training row (`train_batches`). `resume`: an
    earlier rung's state of this run (heads.rungs), continued from its last epoch; a run stopped before its
    schedule's end returns its own in `rung_state`.
    """
    device = table.original.device
    prepare = getattr(method, "prepare_inputs", None)  # a fixed input transform fitted on training rows only
    inputs = prepare(table, train_rows, opts.seed) if prepare is not None else None
    if inputs is not None:  # e.g. maps projected once by the fixed PCA, for the loop and validation
        table = method.reduced_table(table)
    stream = None
    if labelled_rows is not None and len(labelled_rows) < len(train_rows):
        stream = LabelledStream(torch.from_numpy(labelled_rows).to(device), opts.batch_size, opts.seed)
    val_idx = torch.from_numpy(val_rows).to(device)
    val_label = table.label[val_idx].cpu()
    loop = Loop(method, table, torch.from_numpy(train_rows).to(device), scaler, opts, stream,
                torch.Generator().manual_seed(opts.seed),
                torch.optim.SGD(method.parameters(), lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay),
                math.ceil(len(train_rows) / opts.batch_size), progress, on_first_step)
    if opts.precision == "fp16":
        loop.grad_scaler = torch.amp.GradScaler(device.type)
    history: list[dict[str, float]] = []
    best, first = Best(), 1
    if resume is not None:
        first, history, best = resume_loop(loop, resume)
    last = min(opts.stop_after or opts.epochs, opts.epochs)  # the schedule stays the full run's
    epochs = tqdm(range(first, last + 1), desc="epochs", disable=not progress, dynamic_ncols=True)
    loop.monitor = ReluMonitor(method)
    for epoch in epochs:
        start = time.perf_counter()
        tally, lr = loop.epoch(epoch)
        row = tally.row(epoch, lr, loop.monitor.fraction())
        val_logits, key = validate(method, table, val_idx, val_label, scaler, opts, row, epoch)
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        best.offer(epoch, key, method, row, val_logits)
        if progress:
            epochs.set_postfix({k: f"{row[k]:.3f}" for k in row if k not in ("epoch", "lr", "seconds")},
                               refresh=False)
    epochs.close()
    loop.monitor.close()
    state = rung_state(loop, last, history, best) if last < opts.epochs else None  # a halving rung's
    return TrainResult(history, best.epoch, best.state, best.val, inputs, state)


def rung_state(loop: Loop, epoch: int, history: list[dict[str, float]], best: Best) -> dict[str, Any]:
    """What the next rung continues from after `epoch` (heads.rungs): weights, momentum, streams, records."""
    return {**stream_state(loop.step, loop.generator, loop.stream), "epoch": epoch, "history": history,
            "best": best_state(best, epoch), "method": method_state(loop.method), "momentum": momentum_of(loop.method, loop.optimizer),
            "grad_scaler": loop.grad_scaler.state_dict() if loop.grad_scaler is not None else None}


def resume_loop(loop: Loop, state: dict[str, Any]) -> tuple[int, list[dict[str, float]], Best]:
    """Put a rung state back into a fresh loop (weights, momentum, streams); (first epoch to train, the
    history so far, the best epoch so far)."""
    restore_method(loop.method, state["method"])
    set_momentum(loop.method, loop.optimizer, state["momentum"])
    if loop.grad_scaler is not None and state.get("grad_scaler"):
        loop.grad_scaler.load_state_dict(state["grad_scaler"])
    loop.step = restore_streams(state, loop.generator, loop.stream)
    return int(state["epoch"]) + 1, [dict(r) for r in state["history"]], restore_best(state["best"], loop.method)
