"""One optimisation step and the bookkeeping around it, shared by every head the loop trains (heads.training.train):
the loop's options, precision and autocast, the learning-rate schedule, gradient clipping, a head's step
accounting (EpochTally) and best epoch (Best), validation and prediction."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from pipeline import precision as rule
from pipeline.errors import PipelineError

from heads.training.data import FeatureTable, Scaler, eval_batches
from heads.training.epochs import DEFAULT_PATIENCE, kept_epoch, should_stop
from heads.training.health import ReluMonitor
from heads.methods.method import Method


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
    patience: int = DEFAULT_PATIENCE  # stop after this many epochs in a row worse than the lowest (heads.training.epochs; 0: never)


class Diverged(PipelineError):
    """A loss turned NaN or inf during training (the features were checked finite before)."""


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """torch's capabilities on `device`, through the one rule (pipeline.precision.resolve): 'auto' -> bf16 / fp16 /
    fp32; an explicit choice it cannot run stops with one line naming --precision. The commands and the study call
    it once, where the device is known, and pass the concrete value on (a run never sees 'auto')."""
    device = torch.device(device)
    return rule.resolve(precision, rule.machine(device.type,
                                                cuda_bf16=device.type == "cuda" and torch.cuda.is_bf16_supported()))


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


def batches_with_bar(it: Iterator, total: int, desc: str, show: bool) -> Iterator:
    """`it` with a progress bar of `total` steps when `show`."""
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
        losses = {k: (float(v.detach()), len(batch["index"]) if k == "loss" else
                      int(batch[self.rows_of.get(k, "labelled")].sum()))
                  for k, v in (("loss", loss), *components.items())}
        self.count(int(labelled.sum()), int((logits.argmax(1) == batch["label"][labelled]).sum()), losses, norm,
                   tuple(components))

    def count(self, labelled: int, correct: int, losses: dict[str, tuple[float, int]], norm: float,
              components: tuple[str, ...]) -> None:
        """One step's numbers: `correct` of `labelled` rows, each loss as (mean, rows it saw), the gradient norm."""
        self.seen += labelled
        self.correct += correct
        self.grad_norms += norm
        self.steps += 1
        for k, (value, n) in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + value * n
            self.rows_seen[k] = self.rows_seen.get(k, 0) + n
        self.components = components

    def means(self) -> dict[str, float]:
        return {k: v / max(self.rows_seen[k], 1) for k, v in self.sums.items()}

    def row(self, epoch: int, lr: float, dead_frac: float | None = None) -> dict[str, float]:
        """The epoch's history row before validation: lr, mean losses, train accuracy, rows per loss, mean
        gradient norm and (methods with ReLU units) the share of units dead all epoch (heads.training.health)."""
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
    """The epoch kept so far by the epoch rule (heads.training.epochs: the latest epoch whose validation loss is not worse
    than the lowest epoch's), or the last epoch without validation; `losses` holds every epoch's per-image
    validation losses (saved as the run's val_losses.npy)."""

    epoch: int = 0
    state: dict[str, Tensor] = field(default_factory=dict)
    val: dict[str, Any] = field(default_factory=dict)
    losses: list[np.ndarray] = field(default_factory=list)

    def offer(self, epoch: int, losses: np.ndarray, method: Method, row: dict[str, float],
              val_logits: Tensor | None) -> None:
        """Record epoch `epoch`'s per-image validation losses; keep its weights when the rule keeps it."""
        self.losses.append(losses)
        if kept_epoch(self.losses) == epoch:
            self.epoch = epoch
            self.state = {k: v.detach().clone() for k, v in method.state_dict().items()}
            self.val = {"loss": row.get("val_loss"), "logits": val_logits}

    def should_stop(self, patience: int) -> bool:
        """The epoch rule's stop (heads.training.epochs.should_stop)."""
        return should_stop(self.losses, patience)


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
             opts: TrainOptions, row: dict[str, float], epoch: int) -> tuple[Tensor | None, np.ndarray]:
    """Add val_loss and val_acc to the epoch's row; (validation logits, per-image validation losses)."""
    if not len(val_idx):
        return None, np.zeros(0, dtype=np.float32)  # no validation: the rule keeps the last epoch
    val_logits = predict(method, table, val_idx, opts.batch_size, scaler, opts.precision)
    return val_logits, validation_row(val_logits, val_label, row)


def validation_row(val_logits: Tensor, val_label: Tensor, row: dict[str, float]) -> np.ndarray:
    """val_loss (mean cross-entropy) and val_acc of the epoch into `row`; the per-image losses (float32)."""
    losses = F.cross_entropy(val_logits.float(), val_label, reduction="none")
    row["val_loss"] = float(losses.double().mean())
    row["val_acc"] = float((val_logits.argmax(1) == val_label).float().mean())
    return losses.numpy().astype(np.float32)


@dataclass
class Head:
    """One head of the bank: its method, options, step accounting and the epoch kept so far."""

    method: Method
    opts: TrainOptions
    index: int  # its place in the bank (and its rows in a LinearStack)
    best: Best = field(default_factory=Best)
    history: list[dict[str, float]] = field(default_factory=list)
    failed: Diverged | None = None
    stopped_early: int | None = None  # the epoch after which the epoch rule stopped it (heads.training.epochs)
    tally: EpochTally | None = None
    lr: float = 0.0
    monitor: ReluMonitor | None = None  # HeadByHead: its dead ReLU units per epoch (heads.training.health)

    def new_tally(self) -> EpochTally:
        """A fresh step accounting for the head's next epoch."""
        return EpochTally(self.method.component_rows)


def diverged(components: dict[str, torch.Tensor], loss: torch.Tensor, epoch: int, lr: float) -> Diverged:
    """The error a separate run raises (a head whose loss turned NaN or inf)."""
    bad = [k for k, v in components.items() if not torch.isfinite(v)]
    values = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in components.items())
    return Diverged(f"training diverged at epoch {epoch}: the {' and '.join(bad) or 'total'} loss turned "
                    f"{float(loss.detach())} ({values}) at learning rate {lr:.3g}; lower --lr")
