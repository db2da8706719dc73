"""The `--aux` registry: the one list of the methods' declarations (heads.methods.declaration), one line each.

The interface every method implements is `heads.methods.method.Method` (with `Batch` and `masks`); what the rest of
the project needs to know about it is its `Declaration`, in its own module: its builder
`(options, num_classes, feature_dim, num_train) -> Method` (options: one `heads.option_table.MethodOptions`, or a
dict completed with the defaults; num_train is the training cache's row count), its help, baseline, options and
the cached arrays it reads. A new method is its module and one line here; everything else is derived from
DECLARATIONS (heads.options: the --aux choices, their help, the baselines and which options apply to which).
"""

from __future__ import annotations

from heads.methods.dcl import DCL_AUX, DCL_NONE_AUX
from heads.methods.declaration import Builder, Declaration
from heads.methods.linear import LINEAR_AUX
from heads.methods.pirl import NONE_AUX, PIRL_AUX

DECLARATIONS: tuple[Declaration, ...] = (
    NONE_AUX,
    LINEAR_AUX,
    PIRL_AUX,
    DCL_AUX,
    DCL_NONE_AUX,
)

METHODS: dict[str, Builder] = {d.aux: d.build for d in DECLARATIONS}
DECLARED: dict[str, Declaration] = {d.aux: d for d in DECLARATIONS}
assert len(DECLARED) == len(DECLARATIONS), "two declarations register one --aux name"


def declaration(aux: str) -> Declaration:
    """The declaration of the `aux` method (KeyError names the choices)."""
    try:
        return DECLARED[aux]
    except KeyError:
        raise KeyError(f"--aux {aux!r}: expected one of {', '.join(DECLARED)}") from None
