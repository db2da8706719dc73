"""`--aux linear`: the linear probe, Linear(D, C) on the standardised pooled feature, with cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from heads.methods.declaration import Declaration, OptionsLike
from heads.methods.method import Batch, Method, masks
from heads.methods.models import ProbeLayer


class LinearProbe(Method):
    """The linear probe: W x + b on the pooled feature; the L2 penalty is the optimiser's weight decay."""

    def __init__(self, num_classes: int, feature_dim: int):
        super().__init__()
        self.probe = ProbeLayer(feature_dim, num_classes)

    def forward(self, batch: Batch) -> Tensor:
        return self.probe(batch["original"])

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of W x + b on labelled rows (the linear probe's loss)."""
        labelled, _ = masks(batch)
        logits = self.probe(batch["original"][labelled])
        return {"ce": F.cross_entropy(logits, batch["label"][labelled]), "logits": logits}


def build_linear_probe(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return LinearProbe(num_classes, feature_dim)


LINEAR_AUX = Declaration(
    "linear", build_linear_probe, help="a linear probe",
    glossary="the linear probe, one linear layer (D to the classes) on the standardised frozen feature, with "
             "cross-entropy: the **reference** none and dcl-none are compared with",
    bank=True)
