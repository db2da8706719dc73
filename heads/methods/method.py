"""The interface every `--aux` method implements: `Method`, the `Batch` it sees and its row `masks`.

    forward(batch) -> (B, C) test-time class logits, from batch["original"]
    losses(batch)  -> {"ce": ..., other components}: unweighted scalars for one training step; it may
                      also return "logits" of the step's labelled rows, used for train accuracy (else
                      the loop calls forward under no_grad)
    loss_weights   -> {component: weight}; a missing key weighs 1; the step minimises sum(w * loss)
    after_step(batch) -> None: called after the optimiser step (PIRL updates its memory bank here)
    needs          -> cached views required, among {"jigsaw", "rcm", "patches", "spatial"}: what its declaration's
                      `reads` says for its options (heads.methods.declaration)
    uses_unlabelled -> True when a self-supervised loss should see unlabelled rows (--labels-per-class)
    component_rows -> {component: "labelled" or "ssl"}: the rows each loss sees, for history.csv

Training batches hold "index" (rows of the training cache), "label", "original" (B, D) and, for each
shuffled kind the method needs, the view drawn for this epoch: kind (B, D) and f"{kind}_perm" (B, G*G);
and two row masks, "labelled" (the cross-entropy may read these labels) and "ssl" (rows for the
self-supervised losses; unlabelled rows carry label -1). See heads.training.data.train_batches.

This module is a leaf (it imports only torch): the methods (heads.methods.pirl, heads.methods.linear, heads.methods.dcl)
subclass `Method`, each declares its `--aux` names (heads.methods.declaration), and heads.methods.registry lists
the declarations.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

Batch = Dict[str, Tensor]
"""One batch: "index", "label", "original", the views a method needs, and the "labelled"/"ssl" masks."""


def masks(batch: Batch) -> tuple[Tensor, Tensor]:
    """(labelled, ssl) row masks of a batch: which rows the cross-entropy and the self-supervised losses see
    (both all True when the batch carries none, e.g. a hand-made batch in a test)."""
    everyone = torch.ones(len(batch["index"] if "index" in batch else batch["label"]), dtype=torch.bool,
                          device=batch["label"].device)
    return batch.get("labelled", everyone), batch.get("ssl", everyone)


class Method(nn.Module):
    """Base class of every `--aux` method: cross-entropy only, no auxiliary views, nothing after a step."""

    needs: set[str] = set()
    uses_unlabelled = False  # True: its self-supervised losses see unlabelled rows (--labels-per-class)
    component_rows = {"ce": "labelled"}  # which rows (mask) each loss sees, for history.csv

    def __init__(self) -> None:
        super().__init__()
        self.loss_weights: dict[str, float] = {}

    def forward(self, batch: Batch) -> Tensor:  # type: ignore[override]
        """(B, C) test-time class logits of the batch's original images."""
        raise NotImplementedError

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """Unweighted scalar losses of one training step (and optionally "logits" of its labelled rows)."""
        raise NotImplementedError

    def after_step(self, batch: Batch) -> None:
        """Nothing to do after the optimiser step by default."""
