"""Training methods for `--aux`: each is an nn.Module the loop drives through one small interface.

    forward(batch) -> (B, C) test-time class logits, from batch["original"]
    losses(batch)  -> {"ce": ..., other components}: unweighted scalars for one training step; it may
                      also return "logits" of the step's labelled rows, used for train accuracy (else
                      the loop calls forward under no_grad)
    loss_weights   -> {component: weight}; a missing key weighs 1; the step minimises sum(w * loss)
    after_step(batch) -> None: called after the optimiser step (PIRL updates its memory bank here)
    needs          -> cached views required, among {"jigsaw", "rcm", "spatial"}
    uses_unlabelled -> True when a self-supervised loss should see unlabelled rows (--labels-per-class)
    component_rows -> {component: "labelled" or "ssl"}: the rows each loss sees, for history.csv

Training batches hold "index" (rows of the training cache), "label", "original" (B, D) and, for each
shuffled kind the method needs, the view drawn for this epoch: kind (B, D) and f"{kind}_perm" (B, G*G);
and two row masks, "labelled" (the cross-entropy may read these labels) and "ssl" (rows for the
self-supervised losses; unlabelled rows carry label -1). See heads.data.train_batches.
A new method is one builder `(options, num_classes, feature_dim, num_train) -> Method` in METHODS;
`options` holds every train-heads option, the training cache's "views" settings (grids, V, k) and
"spatial_kinds", plus "train_rows", the cache rows trained on (validation rows excluded; absent when
evaluate-heads rebuilds a saved model); num_train is the training cache's row count.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import EMBED_DIM, LinearProbe, TorchVisionSSLPIRL
from .pirl import PIRLLoss


def masks(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(labelled, ssl) row masks of a batch: which rows the cross-entropy and the self-supervised losses see
    (both all True when the batch carries none, e.g. a hand-made batch in a test)."""
    everyone = torch.ones(len(batch["index"] if "index" in batch else batch["label"]), dtype=torch.bool,
                          device=batch["label"].device)
    return batch.get("labelled", everyone), batch.get("ssl", everyone)


class Method(nn.Module):
    """Base class: cross-entropy only, no auxiliary views."""

    needs: set[str] = set()
    uses_unlabelled = False  # True: its self-supervised losses see unlabelled rows (--labels-per-class)
    component_rows = {"ce": "labelled"}  # which rows (mask) each loss sees, for history.csv

    def __init__(self) -> None:
        super().__init__()
        self.loss_weights: dict[str, float] = {}

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def after_step(self, batch: dict[str, Tensor]) -> None:
        """Nothing to do after the optimiser step by default."""


class Baseline(Method):
    """`--aux none`: the report's network trained with cross-entropy only (head_jig stays unused)."""

    def __init__(self, num_classes: int, feature_dim: int, classifier_input: str = "embedding"):
        super().__init__()
        self.model = TorchVisionSSLPIRL(feature_dim, num_classes, classifier_input=classifier_input)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(batch["original"])

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy of the classifier on f(v_I) (or on the hidden layer), labelled rows only."""
        labelled, _ = masks(batch)
        logits = self.model(batch["original"][labelled])
        return {"ce": F.cross_entropy(logits, batch["label"][labelled]), "logits": logits}


class Linear(Method):
    """`--aux linear`: the linear probe, Linear(D, C) on the standardised pooled feature, cross-entropy."""

    def __init__(self, num_classes: int, feature_dim: int):
        super().__init__()
        self.probe = LinearProbe(feature_dim, num_classes)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.probe(batch["original"])

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Cross-entropy of W x + b on labelled rows; the L2 penalty is the optimiser's weight decay."""
        labelled, _ = masks(batch)
        logits = self.probe(batch["original"][labelled])
        return {"ce": F.cross_entropy(logits, batch["label"][labelled]), "logits": logits}


class PIRL(Method):
    """`--aux pirl`: total = CE + aux_weight * [lambda L(m_I, g(v_It)) + (1 - lambda) L(m_I, f(v_I))]."""

    needs = {"jigsaw"}
    uses_unlabelled = True
    component_rows = {"ce": "labelled", "pirl": "ssl"}

    def __init__(self, num_classes: int, feature_dim: int, num_train: int, aux_weight: float = 1.0,
                 loss: str = "infonce", negatives: int | None = None, temperature: float = 0.07, seed: int = 0,
                 train_rows: Any = None, classifier_input: str = "embedding", jigsaw_head: str = "separate"):
        super().__init__()
        self.model = TorchVisionSSLPIRL(feature_dim, num_classes, classifier_input=classifier_input,
                                        jigsaw_head=jigsaw_head)
        active = None if train_rows is None else torch.as_tensor(train_rows, dtype=torch.long)
        self.pirl = PIRLLoss(num_train, EMBED_DIM, kind=loss, negatives=negatives, temperature=temperature,
                             seed=seed, active_rows=active)
        self.loss_weights = {"ce": 1.0, "pirl": float(aux_weight)}
        self._last: tuple[Tensor, Tensor] | None = None

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(batch["original"])

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """CE on the labelled rows; the PIRL loss (and the bank update) on every row of the ssl part."""
        labelled, ssl = masks(batch)
        h, f = self.model.hidden_and_embedding(batch["original"])
        g = self.model.embed_jigsaw(batch["jigsaw"][ssl])
        logits = self.model.classify(h[labelled], f[labelled])
        index = batch["index"][ssl]
        self._last = (index, f[ssl].detach())
        return {
            "ce": F.cross_entropy(logits, batch["label"][labelled]),
            "pirl": self.pirl(f[ssl], g, index),
            "logits": logits,
        }

    def after_step(self, batch: dict[str, Tensor]) -> None:
        """m_I <- normalize(0.5 m_I + 0.5 f(v_I)) with this step's image embeddings."""
        assert self._last is not None, "after_step without losses"
        self.pirl.update(*self._last)
        self._last = None


def parse_negatives(value: str) -> int | None:
    """'all' -> None (every other bank entry); a positive integer K -> K sampled per step."""
    if value == "all":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--negatives: expected 'all' or a positive integer, found {value!r}")
    return int(value)


def build_baseline(options: dict[str, Any], num_classes: int, feature_dim: int, num_train: int) -> Method:
    return Baseline(num_classes, feature_dim, classifier_input=options.get("classifier_input", "embedding"))


def build_linear(options: dict[str, Any], num_classes: int, feature_dim: int, num_train: int) -> Method:
    return Linear(num_classes, feature_dim)


def build_pirl(options: dict[str, Any], num_classes: int, feature_dim: int, num_train: int) -> Method:
    return PIRL(num_classes, feature_dim, num_train, aux_weight=options.get("aux_weight", 1.0),
                loss=options.get("pirl_loss", "infonce"), negatives=parse_negatives(str(options.get("negatives", "all"))),
                temperature=options.get("temperature", 0.07), seed=options.get("seed", 0),
                train_rows=options.get("train_rows"),
                classifier_input=options.get("classifier_input", "embedding"),
                jigsaw_head=options.get("jigsaw_head", "separate"))


def dcl_uses_spatial(options: dict[str, Any]) -> bool:
    """Region alignment runs when the training cache holds spatial maps of the original and RCM views."""
    return {"original", "rcm"} <= set(options.get("spatial_kinds") or [])


def build_dcl_method(options: dict[str, Any], num_classes: int, feature_dim: int, num_train: int) -> Method:
    from .dcl import build_dcl

    return build_dcl(num_classes, feature_dim, spatial=dcl_uses_spatial(options), grid=int(options["views"]["rcm_grid"]),
                     adv=options.get("dcl_adv", "binary"), adv_weight=options.get("dcl_adv_weight", 1.0),
                     align_weight=options.get("dcl_align_weight", 1.0), hidden=options.get("dcl_hidden", 512),
                     test_logits=options.get("dcl_test_logits", "original"))


def build_dcl_baseline(options: dict[str, Any], num_classes: int, feature_dim: int, num_train: int) -> Method:
    from .dcl import DCLNetwork

    return DCLNetwork(num_classes, feature_dim, spatial=dcl_uses_spatial(options), hidden=options.get("dcl_hidden", 512))


Builder = Callable[[dict[str, Any], int, int, int], Method]
METHODS: dict[str, Builder] = {
    "none": build_baseline,
    "linear": build_linear,
    "pirl": build_pirl,
    "dcl": build_dcl_method,
    "dcl-none": build_dcl_baseline,
}
