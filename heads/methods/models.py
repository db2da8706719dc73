"""The report's heads on cached backbone features: Normalize, JigsawHead, TorchVisionSSLPIRL.

D (feature_dim) and C (num_classes) come from the cache; the trunk is the frozen backbone that
wrote the cache, so these modules see one D-vector per image (or per shuffled view).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

EMBED_DIM = 128
CLASSIFIER_INPUTS = ("embedding", "hidden")
JIGSAW_HEADS = ("separate", "shared")
PIRL_FORMS = ("report", "paper")


class Normalize(nn.Module):
    """x / ||x||_p along dim 1 (the report's Normalize(power=2)); computed in float32."""

    def __init__(self, power: int = 2):
        super().__init__()
        self.power = power

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x.float(), p=self.power, dim=1)

    def extra_repr(self) -> str:
        return f"power={self.power}"


class JigsawHead(nn.Module):
    """g: the feature of the reassembled shuffled image -> 128-d unit vector (fc1 + ReLU, fc2, L2)."""

    def __init__(self, feature_dim: int, hidden: int = 256, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True))
        self.fc2 = nn.Linear(hidden, embed_dim)
        self.l2norm = Normalize(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.l2norm(self.fc2(self.fc1(x)))


class PatchHead(nn.Module):
    """g in PIRL's paper form (VISSL's siamese_concat_view + mlp): per-patch Linear(D, 128), the K patch
    embeddings concatenated in the order given (K x 128), Linear(K x 128, 128), L2 norm."""

    def __init__(self, feature_dim: int, num_patches: int = 9, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.num_patches = num_patches
        self.per_patch = nn.Linear(feature_dim, embed_dim)
        self.fc = nn.Linear(num_patches * embed_dim, embed_dim)
        self.l2norm = Normalize(2)

    def forward(self, x: Tensor, order: Tensor | None = None) -> Tensor:
        """x (B, K, D) -> (B, 128); slot p of the concatenation holds patch order[:, p] (None: x's own order)."""
        if order is not None:
            x = x.gather(1, order.long()[:, :, None].expand(-1, -1, x.shape[2]))
        z = self.per_patch(x)  # (B, K, 128)
        return self.l2norm(self.fc(z.reshape(len(z), -1)))


class TorchVisionSSLPIRL(nn.Module):
    """The report's model: f = head (D -> D -> 128, L2), g = head_jig, classifier on f (128 -> C).

    classifier_input="hidden" puts the classifier on the D-d ReLU layer before the projection instead
    (D -> C), as SimCLR recommends for downstream use; f and g are unchanged.

    jigsaw_head="separate" (the report's) feeds the cached jigsaw feature straight to head_jig, which
    shares no trainable parameter with f or the classifier: on a frozen backbone the jigsaw views can
    then never change the classifier (the memory bank is updated with f only). jigsaw_head="shared"
    passes the jigsaw feature through f's first layer, Linear(D, D) + ReLU, before head_jig: the
    trainable stand-in for the trunk that the paper's f and g share.

    pirl_form="paper" replaces head_jig by head_patch (`PatchHead`), g over the nine cached patch
    features of a view (in their stored, shuffled order); with jigsaw_head="shared" each patch feature
    first passes through f's first layer, as the paper's patches pass through the trunk f uses.
    """

    def __init__(self, feature_dim: int, num_classes: int, embed_dim: int = EMBED_DIM,
                 classifier_input: str = "embedding", jigsaw_head: str = "separate", pirl_form: str = "report",
                 num_patches: int = 9):
        super().__init__()
        if classifier_input not in CLASSIFIER_INPUTS:
            raise ValueError(f"--classifier-input: expected one of {CLASSIFIER_INPUTS}, found {classifier_input!r}")
        if jigsaw_head not in JIGSAW_HEADS:
            raise ValueError(f"--jigsaw-head: expected one of {JIGSAW_HEADS}, found {jigsaw_head!r}")
        if pirl_form not in PIRL_FORMS:
            raise ValueError(f"--pirl-form: expected one of {PIRL_FORMS}, found {pirl_form!r}")
        self.classifier_input, self.jigsaw_head, self.pirl_form = classifier_input, jigsaw_head, pirl_form
        self.head = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, embed_dim),
            Normalize(2),
        )
        if pirl_form == "report":
            self.head_jig = JigsawHead(feature_dim, embed_dim=embed_dim)
        else:
            self.head_patch = PatchHead(feature_dim, num_patches, embed_dim)
        width = embed_dim if classifier_input == "embedding" else feature_dim
        self.classification_head = nn.Linear(width, num_classes)

    def hidden_and_embedding(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(h, f(v_I)): the D-d hidden layer and the unit 128-d embedding of the original image's feature."""
        h = self.head[1](self.head[0](x))
        return h, self.head[3](self.head[2](h))

    def embed(self, x: Tensor) -> Tensor:
        """f(v_I): the unit 128-d embedding of the original image's feature."""
        return self.head(x)

    def embed_jigsaw(self, x: Tensor) -> Tensor:
        """g(v_It): the unit 128-d embedding of a jigsaw view's feature (through f's first layer when shared)."""
        if self.jigsaw_head == "shared":
            x = self.head[1](self.head[0](x))
        return self.head_jig(x)

    def embed_patches(self, x: Tensor, order: Tensor | None = None) -> Tensor:
        """g(v_It) in the paper's form: x (B, K, D) patch features (through f's first layer when shared)."""
        if self.jigsaw_head == "shared":
            x = self.head[1](self.head[0](x))
        return self.head_patch(x, order)

    def classify(self, h: Tensor, f: Tensor) -> Tensor:
        """Class logits (B, C) in float32, from f (classifier_input="embedding") or from h ("hidden")."""
        return self.classification_head(f if self.classifier_input == "embedding" else h).float()

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(*self.hidden_and_embedding(x))

    def extra_repr(self) -> str:
        return (f"classifier_input={self.classifier_input!r}, jigsaw_head={self.jigsaw_head!r}, "
                f"pirl_form={self.pirl_form!r}")


class ProbeLayer(nn.Module):
    """The linear probe's network: one Linear(D, C) on the standardised pooled feature."""

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).float()
