"""A toy `--aux` method, "toy", defined outside heads/: a linear layer on the pooled feature scaled by its own
option --toy-scale. tests/heads/test_toy_method.py adds it to the registry by one line and trains it through
every command, which shows that nothing else lists the methods.

`registry_with_toy` is that line: heads/methods/registry.py's own source with `TOY` added to DECLARATIONS (and
its import), executed as heads.methods.registry before anything else of heads is imported.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import click
import torch.nn.functional as F
from torch import Tensor, nn

from heads.methods.declaration import Declaration, OptionsLike
from heads.methods.method import Batch, Method, masks
from heads.option_table import Option

TOY_SCALE = Option("toy_scale", click.FloatRange(0, min_open=True), 1.0,
                   "Toy: scale of the pooled feature before its linear layer.")


class Toy(Method):
    """Linear(D, C) on scale x the pooled feature of the original image, with cross-entropy."""

    def __init__(self, num_classes: int, feature_dim: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.layer = nn.Linear(feature_dim, num_classes)

    def forward(self, batch: Batch) -> Tensor:
        return self.layer(self.scale * batch["original"])

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        labelled, _ = masks(batch)
        logits = self.layer(self.scale * batch["original"][labelled])
        return {"ce": F.cross_entropy(logits, batch["label"][labelled]), "logits": logits}


def build_toy(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return Toy(num_classes, feature_dim, TOY.typed(options).own["toy_scale"])


TOY = Declaration("toy", build_toy, help="a toy linear layer on the scaled pooled feature",
                  glossary="a toy linear layer on the pooled feature times --toy-scale", own_options=(TOY_SCALE,))


def registry_with_toy() -> types.ModuleType:
    """heads.methods.registry from its source plus one entry, `TOY,` (and its import): installed in sys.modules,
    so it must run before any module that reads the registry is imported."""
    assert not any(m.startswith(("heads.methods.registry", "heads.options")) for m in sys.modules), \
        "the registry was read already"
    import heads.methods

    path = Path(heads.methods.__file__).with_name("registry.py")
    source = path.read_text()
    edited, entries = re.subn(r"(\nDECLARATIONS: [^\n]*= \((?:\n    \w+,)+)\n\)", r"\1\n    TOY,\n)", source)
    assert entries == 1, "DECLARATIONS is no longer one entry per line"
    edited = edited.replace("\n\nDECLARATIONS: ", "\nfrom tests.support.toy_method import TOY\n\nDECLARATIONS: ", 1)
    module = types.ModuleType("heads.methods.registry")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    exec(compile(edited, str(path), "exec"), module.__dict__)
    heads.methods.registry = module  # type: ignore[attr-defined]
    return module
