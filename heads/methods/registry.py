"""The `--aux` registry: each name's builder `(options, num_classes, feature_dim, num_train) -> Method`.

The interface every method implements is `heads.methods.method.Method` (with `Batch` and `masks`); the options
a builder reads are one `heads.options.MethodOptions` (a dict is accepted and completed with the
defaults of heads/options.py); num_train is the training cache's row count. A new method is one
`Method` subclass and one entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Union

from heads.methods.dcl import DCL, DCLBaseline
from heads.methods.linear import LinearProbe
from heads.methods.method import Method
from heads.options import MethodOptions
from heads.methods.pirl import PIRL, MLPBaseline

OptionsLike = Union[MethodOptions, Mapping[str, Any]]
Builder = Callable[[OptionsLike, int, int, int], Method]


def dcl_uses_spatial(options: OptionsLike) -> bool:
    """Region alignment runs when the training cache holds spatial maps of the original and RCM views."""
    return {"original", "rcm"} <= set(MethodOptions.of(options).spatial_kinds)


def build_mlp_baseline(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return MLPBaseline(num_classes, feature_dim, MethodOptions.of(options))


def build_linear_probe(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return LinearProbe(num_classes, feature_dim)


def build_pirl(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    return PIRL(num_classes, feature_dim, num_train, MethodOptions.of(options))


def dcl_options(options: OptionsLike) -> MethodOptions:
    """The typed options of a DCL build; a run's saved record (config.json's builder_options, which lists every
    option a run was built with, and "aux") without dcl_network predates --dcl-network: its network was "maps"."""
    o = MethodOptions.of(options)
    if not isinstance(options, MethodOptions) and "aux" in options and "dcl_network" not in options:
        o = dataclasses.replace(o, dcl_network="maps")
    return o


def build_dcl(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    o = dcl_options(options)
    return DCL(num_classes, feature_dim, o, spatial=dcl_uses_spatial(o), grid=o.rcm_grid)


def build_dcl_baseline(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    o = dcl_options(options)
    return DCLBaseline(num_classes, feature_dim, o, spatial=dcl_uses_spatial(o))


METHODS: dict[str, Builder] = {
    "none": build_mlp_baseline,
    "linear": build_linear_probe,
    "pirl": build_pirl,
    "dcl": build_dcl,
    "dcl-none": build_dcl_baseline,
}
