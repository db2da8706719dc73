"""A method's declaration: everything outside its `Method` subclass needs to know about one `--aux` choice.

Each method's module declares its own (heads.methods.linear, heads.methods.pirl, heads.methods.dcl) and
heads.methods.registry lists them, one line each. From that list come the `--aux` choices and their help,
the same-network baselines, which options apply to which choice (heads.options), the views and spatial maps
a study extracts (study.spec), the cost model's "reads maps" (study.plan), the combinations a sweep leaves out
(heads.search.grid) and the report's glossary (study.report.answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from heads.methods.method import Method
from heads.option_table import MethodOptions, Option

OptionsLike = Union[MethodOptions, Mapping[str, Any]]
Builder = Callable[[OptionsLike, int, int, int], Method]  # (options, num_classes, feature_dim, num_train)


def reads_nothing(options: MethodOptions) -> frozenset[str]:
    """The cached arrays of a method that reads the pooled feature of the original image only: none beyond it."""
    return frozenset()


def always_valid(options: Mapping[str, Any]) -> str | None:
    """No combination of the method's options is refused."""
    return None


@dataclass(frozen=True)
class Declaration:
    """One `--aux` choice: its name, how to build it, what it says about itself and what it reads."""

    aux: str  # the --aux name
    build: Builder  # (options, num_classes, feature_dim, num_train) -> Method; a dict is completed with defaults
    help: str  # one line in --aux's help: "aux = help"
    glossary: str  # the report's sentence of what the method is (study.report.answer)
    baseline: str | None = None  # the aux of its same-network baseline (its network, cross-entropy only)
    options: tuple[str, ...] = ()  # names of heads.option_table's options it takes besides every method's
    own_options: tuple[Option, ...] = ()  # options it declares itself (their values: MethodOptions.own)
    reads: Callable[[MethodOptions], frozenset[str]] = reads_nothing  # cached arrays besides the pooled
    # original ("jigsaw", "rcm", "patches", "spatial"), from its typed options and the training cache's
    # (views, spatial_kinds): the one definition its `Method.needs` is set from
    reads_options: tuple[str, ...] = ()  # the options whose values change `reads` (choices; Caches.load, a study)
    maps: bool = False  # it can use spatial maps (a study extracts them; the cost model times it with them)
    without_maps: str = ""  # maps: what it trains when the training cache holds none (Caches.load's note)
    invalid: Callable[[Mapping[str, Any]], str | None] = always_valid  # why a setting cannot run, or None
    bank: bool = False  # its settings that differ only in lr or weight decay may share batches (heads.training.bank)

    def takes(self) -> tuple[str, ...]:
        """The names of every option it takes besides every method's: the table's, then its own."""
        return self.options + tuple(o.name for o in self.own_options)

    def typed(self, options: OptionsLike) -> MethodOptions:
        """Its typed options from a dict (missing ones at their defaults, its own options included)."""
        return MethodOptions.of(options, self.own_options)
