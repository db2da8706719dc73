"""PIRL (Misra & van der Maaten, CVPR 2020) on cached features: memory bank and the NCE/InfoNCE loss.

Notation: f(v_I) is the image embedding, g(v_It) the jigsaw-view embedding, m_I the memory-bank entry
of image I, s(a, b) = a . b (unit vectors), tau the temperature. Negatives are other images' bank
entries: every other entry (K = N - 1, the anchor excluded) or K entries sampled without
replacement per step (shared by the batch; an anchor that was drawn is dropped from its own row).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heads.methods.declaration import Declaration, OptionsLike
from heads.methods.method import Batch, Method, masks
from heads.methods.models import EMBED_DIM, TorchVisionSSLPIRL
from heads.option_table import MethodOptions

TEMPERATURE = 0.07
LAMBDA = 0.5  # weight of the jigsaw term
BANK_MOMENTUM = 0.5  # m <- normalize(0.5 m + 0.5 f)


class MemoryBank(nn.Module):
    """N x 128 unit vectors, one per training row, initialised at random (seeded by torch's RNG)."""

    def __init__(self, num_rows: int, dim: int, momentum: float = BANK_MOMENTUM):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("memory", F.normalize(torch.randn(num_rows, dim), dim=1))

    def __len__(self) -> int:
        return self.memory.shape[0]

    @torch.no_grad()
    def update(self, index: Tensor, embedding: Tensor) -> None:
        """m_I <- normalize(momentum * m_I + (1 - momentum) * f(v_I)) for the rows in `index`."""
        old = self.memory.index_select(0, index)
        new = F.normalize(self.momentum * old + (1 - self.momentum) * embedding.detach().float(), dim=1)
        self.memory.index_copy_(0, index, new)


def sample_negatives(rows: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """K distinct entries of `rows` (the bank rows that may serve as negatives), drawn uniformly."""
    return rows[torch.randperm(len(rows), generator=generator)[:k].to(rows.device)]


def scores(query: Tensor, memory: Tensor, index: Tensor, negatives: Tensor | None,
           temperature: float, active: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """s(q, m)/tau: positives (B,), negatives (B, K') and the (B, K') mask of valid negatives.

    With negatives=None the negatives are all N bank rows (only the `active` ones when given) with
    the anchor's own column masked out; otherwise the given rows, minus the anchor where drawn.
    """
    q = query.float()
    pos = (q * memory.index_select(0, index)).sum(1) / temperature
    cols = memory if negatives is None else memory.index_select(0, negatives)
    neg = q @ cols.t() / temperature
    ids = torch.arange(memory.shape[0], device=q.device) if negatives is None else negatives
    valid = ids[None, :] != index[:, None]
    if negatives is None and active is not None:
        valid = valid & active[None, :]
    return pos, neg, valid


def _mean_over_contrasted(per_row: Tensor, valid: Tensor) -> Tensor:
    """Mean over the anchors that have at least one valid negative (an anchor whose only drawn negative
    was itself has nothing to be contrasted with, and enters neither the sum nor the count)."""
    has = valid.any(1)
    return torch.where(has, per_row, torch.zeros_like(per_row)).sum() / has.sum().clamp(min=1)


def infonce_loss(pos: Tensor, neg: Tensor, valid: Tensor) -> Tensor:
    """InfoNCE: mean over the batch of -log( e^{s+} / (e^{s+} + sum_{valid j} e^{s_j}) )."""
    logits = torch.cat([pos[:, None], neg.masked_fill(~valid, float("-inf"))], dim=1)
    per_row = F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device), reduction="none")
    return _mean_over_contrasted(per_row, valid)


def nce_loss(pos: Tensor, neg: Tensor, valid: Tensor, log_z: float, num_rows: int) -> Tensor:
    """Binary NCE (PIRL eq. 3-4, NPID form): -log h(s+) - sum_{valid j} log(1 - h(s_j)), batch mean.

    h(s) = P / (P + K/N) with P = e^s / Z (Z estimated once, on the first batch), K the number of
    negatives per anchor and 1/N the uniform noise probability over the N bank rows.
    """
    k = valid.sum(1, keepdim=True).float().clamp(min=1)  # rows without a valid negative are left out below
    log_noise = torch.log(k / num_rows)  # log(K * Pn), (B, 1)
    lp_pos, lp_neg = pos - log_z, neg - log_z
    log_h_pos = lp_pos - torch.logaddexp(lp_pos, log_noise[:, 0])
    log_1mh_neg = torch.where(valid, log_noise - torch.logaddexp(lp_neg, log_noise), torch.zeros_like(lp_neg))
    return _mean_over_contrasted(-(log_h_pos + log_1mh_neg.sum(1)), valid)


class PIRLLoss(nn.Module):
    """L = lambda L(m_I, g(v_It)) + (1 - lambda) L(m_I, f(v_I)) (PIRL eq. 5) against a memory bank."""

    def __init__(self, num_rows: int, dim: int, kind: str = "infonce", negatives: int | None = None,
                 temperature: float = TEMPERATURE, lam: float = LAMBDA, momentum: float = BANK_MOMENTUM,
                 seed: int = 0, active_rows: Tensor | None = None):
        super().__init__()
        if kind not in ("infonce", "nce"):
            raise ValueError(f"PIRL loss: expected infonce or nce, found {kind!r}")
        active = torch.ones(num_rows, dtype=torch.bool)
        if active_rows is not None:  # rows that are trained on; validation rows never enter the loss
            active = torch.zeros(num_rows, dtype=torch.bool)
            active[active_rows] = True
        if negatives is not None and not 1 <= negatives < int(active.sum()):
            raise ValueError(f"--negatives: expected 1 <= K < {int(active.sum())} training rows, found {negatives}")
        self.kind, self.negatives, self.temperature, self.lam = kind, negatives, temperature, lam
        self.bank = MemoryBank(num_rows, dim, momentum)
        self.register_buffer("active", active)
        self.register_buffer("log_z", torch.tensor(float("nan")))  # NCE's log Z, set on the first batch
        self.generator = torch.Generator().manual_seed(seed)

    def term(self, query: Tensor, index: Tensor, negatives: Tensor | None) -> Tensor:
        """L(m_I, q) for one query embedding q (B, 128); scores in float32 even under bf16 autocast."""
        with torch.autocast(query.device.type, enabled=False):
            pos, neg, valid = scores(query, self.bank.memory, index, negatives, self.temperature, self.active)
        if self.kind == "infonce":
            return infonce_loss(pos, neg, valid)
        if torch.isnan(self.log_z):  # Z = mean(e^{s}) * N over the first batch's scores (NPID, VISSL)
            with torch.no_grad():
                mask = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)
                all_s = torch.cat([pos[:, None], neg], 1)[mask]
                n = int(self.active.sum())
                self.log_z.fill_(float(torch.logsumexp(all_s, 0) - math.log(all_s.numel()) + math.log(n)))
        return nce_loss(pos, neg, valid, float(self.log_z), int(self.active.sum()))

    def forward(self, f: Tensor, g: Tensor, index: Tensor) -> Tensor:
        negatives = None
        if self.negatives is not None:
            negatives = sample_negatives(self.active.nonzero()[:, 0], self.negatives, self.generator)
        return self.lam * self.term(g, index, negatives) + (1 - self.lam) * self.term(f, index, negatives)

    def update(self, index: Tensor, f: Tensor) -> None:
        """Bank update with the image embedding (not the jigsaw one), after the optimiser step."""
        self.bank.update(index, f)


def pirl_reads(options: MethodOptions) -> frozenset[str]:
    """The shuffled view PIRL's g reads: the nine patches (--pirl-form paper) or the whole jigsaw image."""
    return frozenset({"patches"} if options.pirl_form == "paper" else {"jigsaw"})


def parse_negatives(value: str) -> int | None:
    """'all' -> None (every other bank entry); a positive integer K -> K sampled per step."""
    if value == "all":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"--negatives: expected 'all' or a positive integer, found {value!r}")
    return int(value)


class MLPBaseline(Method):
    """`--aux none`, PIRL's same-network baseline: the report's network trained with cross-entropy only
    (head_jig stays unused)."""

    def __init__(self, num_classes: int, feature_dim: int, options: MethodOptions | None = None):
        super().__init__()
        o = options or MethodOptions.of({})
        self.model = TorchVisionSSLPIRL(feature_dim, num_classes, classifier_input=o.classifier_input)

    def forward(self, batch: Batch) -> Tensor:
        return self.model(batch["original"])

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of the classifier on f(v_I) (or on the hidden layer), labelled rows only."""
        labelled, _ = masks(batch)
        logits = self.model(batch["original"][labelled])
        return {"ce": F.cross_entropy(logits, batch["label"][labelled]), "logits": logits}


class PIRL(Method):
    """`--aux pirl`: total = CE + aux_weight * [lambda L(m_I, g(v_It)) + (1 - lambda) L(m_I, f(v_I))].

    --pirl-form report: g on the cached feature of the whole re-assembled jigsaw image (the report's);
    paper: g over the nine cached patch features of a view (PIRL's and VISSL's), `PatchHead`.
    """

    needs = {"jigsaw"}
    uses_unlabelled = True
    component_rows = {"ce": "labelled", "pirl": "ssl"}

    def __init__(self, num_classes: int, feature_dim: int, num_train: int, options: MethodOptions | None = None):
        super().__init__()
        o = options or MethodOptions.of({})
        self.paper = o.pirl_form == "paper"
        self.needs = set(pirl_reads(o))
        cached = (o.views or {}).get("kinds")
        (kind,) = self.needs
        if cached is not None and kind not in cached:
            raise ValueError(f"--aux pirl --pirl-form {o.pirl_form} needs the {kind} views, which the training cache "
                             f"lacks (it holds {', '.join(cached)}); re-extract with extract-features --views "
                             f"{','.join([*cached, kind])}")
        patches = int((o.views or {}).get("patch_grid", 3)) ** 2
        self.model = TorchVisionSSLPIRL(feature_dim, num_classes, classifier_input=o.classifier_input,
                                        jigsaw_head=o.jigsaw_head, pirl_form=o.pirl_form, num_patches=patches)
        active = None if o.train_rows is None else torch.as_tensor(o.train_rows, dtype=torch.long)
        self.pirl = PIRLLoss(num_train, EMBED_DIM, kind=o.pirl_loss, negatives=parse_negatives(str(o.negatives)),
                             temperature=o.temperature, seed=o.seed, active_rows=active)
        self.loss_weights = {"ce": 1.0, "pirl": float(o.aux_weight)}
        self._last: tuple[Tensor, Tensor] | None = None

    def forward(self, batch: Batch) -> Tensor:
        return self.model(batch["original"])

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """CE on the labelled rows; the PIRL loss (and the bank update) on every row of the ssl part."""
        labelled, ssl = masks(batch)
        h, f = self.model.hidden_and_embedding(batch["original"])
        if self.paper:  # the nine patch features in their stored (shuffled) order: the concatenation's order
            g = self.model.embed_patches(batch["patches"][ssl])
        else:
            g = self.model.embed_jigsaw(batch["jigsaw"][ssl])
        logits = self.model.classify(h[labelled], f[labelled])
        index = batch["index"][ssl]
        self._last = (index, f[ssl].detach())
        return {
            "ce": F.cross_entropy(logits, batch["label"][labelled]),
            "pirl": self.pirl(f[ssl], g, index),
            "logits": logits,
        }

    def after_step(self, batch: Batch) -> None:
        """m_I <- normalize(0.5 m_I + 0.5 f(v_I)) with this step's image embeddings."""
        assert self._last is not None, "after_step without losses"
        self.pirl.update(*self._last)
        self._last = None


def build_mlp_baseline(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return MLPBaseline(num_classes, feature_dim, MethodOptions.of(options))


def build_pirl(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return PIRL(num_classes, feature_dim, num_train, MethodOptions.of(options))


NONE_AUX = Declaration(
    "none", build_mlp_baseline, help="the report's MLP with cross-entropy only (PIRL's same-network baseline)",
    glossary="the report's MLP head on the frozen feature (Linear D to D, ReLU, Linear to a 128-d L2-normalised "
             "embedding, a linear classifier on it), trained with cross-entropy on the labelled rows only: **PIRL's "
             "same-network baseline**",
    options=("classifier_input",), bank=True)
PIRL_AUX = Declaration(
    "pirl", build_pirl, help="PIRL jigsaw memory-bank loss",
    glossary="none's network plus PIRL's memory-bank loss (InfoNCE between each image's embedding, its jigsaw "
             "view's and the bank) on every training image, labelled or not",
    baseline="none",
    options=("classifier_input", "jigsaw_head", "pirl_form", "aux_weight", "negatives", "pirl_loss", "temperature"),
    reads=pirl_reads, reads_options=("pirl_form",))
