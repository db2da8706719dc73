"""The one standardisation rule: a channel's standard deviation floored at a share of a typical channel's, read
by the features' standardisation (heads.training.data.Scaler) and DCL's fixed transform of its maps."""

from __future__ import annotations

import numpy as np

STD_FLOOR = 0.1  # a channel's std is at least this share of the median varying channel's (floored_std)


def floored_std(std: np.ndarray) -> np.ndarray:
    """Per-channel standard deviations, each at least STD_FLOOR x the median of the channels that vary
    (1 when none does).

    A post-ReLU backbone has channels that (almost) never fire on the training rows' original images but
    do fire on their shuffled views: with a tiny floor (1e-6) a random ResNet-50's views standardised to
    values of +-2,300 on the demo and pooled DCL's losses grew to 1e5. Scale-invariant, unlike an absolute
    floor: it bounds such a channel at the scale of a typical one (the demo's views: |z| <= 10)."""
    std = np.asarray(std, dtype=np.float64)
    varying = std[std > 0]
    floor = STD_FLOOR * float(np.median(varying)) if varying.size else 1.0
    return np.maximum(std, floor)
