"""How the loop's heads take one step together (heads.training.train.fit_heads trains 1..H heads on one batch stream).

- `HeadByHead`, the general way (any method, any precision; a single run is a bank of one): each head's own
  forward and backward on the shared batch, one backward pass of the SUM of the heads' losses (each head's
  gradients are its own: they share no parameter), each head's gradients clipped on their own, torch's SGD
  with a parameter group per head (its lr and weight decay); fp16 on CUDA with loss scaling (one head).
- `LinearStack`, the fast path for linear probes of one shape, momentum and precision (fp32/bf16): the heads'
  (C, D) weights are rows of one (H*C, D) matrix, so a step is one product for every head's logits, one for
  every head's weight gradients, and a few element-wise passes over the stack for the cross-entropy and SGD
  (per-head weight decay and learning rate as columns), whatever H; validation is one product per batch. A
  head's numbers equal its separate run's to rounding: the wide product and the vectorised update order some
  sums differently. At CUB's shape after two epochs: fp32 weights within 1e-7 and the same history.csv; bf16
  (whose products round their results to bfloat16) weights within 3e-4 of values about 0.15, history within
  1e-4 (relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from heads.training.data import eval_batches
from heads.methods.linear import LinearProbe
from heads.methods.method import Batch, Method, masks
from heads.training.rungs import momentum_of, set_momentum
from heads.training.health import ReluMonitor
from heads.training.step import EpochTally, Head, TrainOptions, autocast, clip_gradients, diverged, learning_rate, validate, validation_row

Steps = tuple[int, int]  # (total steps, warm-up steps) of the schedule


class HeadByHead:
    """Each head's own forward and backward on the shared batch (any method, any precision): one backward
    pass of the SUM of the heads' losses and torch's SGD with a parameter group per head."""

    def __init__(self, methods: list[Method], opts: list[TrainOptions], device: torch.device):
        self.optimizer = torch.optim.SGD([{"params": list(m.parameters()), "lr": p.lr, "momentum": p.momentum,
                                           "weight_decay": p.weight_decay} for m, p in zip(methods, opts)],
                                         lr=opts[0].lr)
        self.heads = [Head(m, p, i, monitor=ReluMonitor(m)) for i, (m, p) in enumerate(zip(methods, opts))]
        self.grad_scaler = torch.amp.GradScaler(device.type) if opts[0].precision == "fp16" else None

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
            if self.grad_scaler is None:
                total.backward()
            else:  # fp16: the loss scaled so float16 gradients do not underflow; norms of the unscaled ones
                self.grad_scaler.scale(total).backward()
                self.grad_scaler.unscale_(self.optimizer)
            norms = {h.index: clip_gradients(h.method.parameters(), h.opts.grad_clip) for h, *_ in done}
            if self.grad_scaler is None:
                self.optimizer.step()
            else:
                self.grad_scaler.step(self.optimizer)
                self.grad_scaler.update()
        for h, loss, components, logits in done:
            h.method.after_step(batch)
            if logits is None:
                with torch.no_grad():
                    logits = h.method(batch)[batch["labelled"]]
            h.tally.add(batch, loss, components, logits.detach(), norms[h.index])

    def validate(self, heads: list[Head], rows: list[dict[str, float]], table: Any, val_idx: Tensor,
                 val_label: Tensor, scaler: Any, epoch: int) -> list[tuple[Tensor | None, np.ndarray]]:
        """heads.training.step.validate of each live head."""
        return [validate(h.method, table, val_idx, val_label, scaler, h.opts, row, epoch)
                for h, row in zip(heads, rows)]

    def momentum_buffers(self, h: Head) -> dict[str, Tensor]:
        """Head h's momentum buffers by parameter name (heads.training.rungs.momentum_of's form)."""
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
        (heads.training.step.clip_gradients' rule)."""
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
                 val_label: Tensor, scaler: Any, epoch: int) -> list[tuple[Tensor | None, np.ndarray]]:
        """heads.training.step.validate for every live head from one product per validation batch."""
        if not len(val_idx):
            return [(None, np.zeros(0, dtype=np.float32)) for _ in heads]  # no validation: keep the last epoch
        size = max(heads[0].opts.batch_size, 1024)
        batches = eval_batches(table, val_idx, size, scaler, set())
        logits = torch.cat([self.logits(b["original"]).cpu() for b in batches])
        out = []
        for h, row in zip(heads, rows):
            mine = logits[:, h.index].contiguous()
            out.append((mine, validation_row(mine, val_label, row)))
        return out

    def momentum_buffers(self, h: Head) -> dict[str, Tensor]:
        """Head h's rows of the momentum buffers, by its parameter names (heads.training.rungs.momentum_of's form)."""
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
    tally.count(labelled, correct, {"loss": (ce, rows), "ce": (ce, labelled)}, norm, ("ce",))
