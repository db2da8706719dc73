"""A run's settings as one typed value, parsed once at the edge: `RunSpec` (method, seed, K, the method's typed
options, the rows rule, a fold or rung), with K and its cell from heads.cells.

Every command builds its runs' specs where it reads its input (train-heads and sweep-heads from their options,
a study from its TOML, a worker from its plan file, a halving rung or a cross-validation fold from the spec it
continues) and nothing downstream parses a setting again. Text is rendered from the typed value (`k_text`,
`RunSpec.record`: config.json's "options", the same keys and values as before this module existed) and read
back only where a file is read (`RunSpec.from_record`, `parse_k` on runs.csv and selection.json).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from heads.cells import K_NAME, Cell, Fold, K, k_text, parse_k  # noqa: F401  (a run's K and cell, re-exported)
from heads.methods.registry import declaration
from heads.options import AUX_CHOICES, MethodOptions, applicable


@dataclass(frozen=True)
class RunSpec:
    """One run: its method, seed and typed options (K is `options.labels_per_class`, an int or None), whether the
    features are standardised, which command planned it, and where a search put it (a cross-validation fold, a
    halving rung's epoch to stop after)."""

    method: str
    seed: int
    options: MethodOptions  # every experiment option, typed
    standardize: bool = True
    command: str = "train-heads"
    fold: Optional[Fold] = None
    stop_after: Optional[int] = None  # a halving rung: the full run's schedule, cut after this epoch

    @property
    def k(self) -> K:
        return self.options.labels_per_class

    @property
    def cell(self) -> Cell:
        return Cell(self.method, self.k)

    def with_options(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, options=self.options.with_values(**changes))

    def record(self) -> dict[str, Any]:
        """config.json's "options": the command, aux, seed, standardisation and the options that apply to the
        method (K as text), then a fold's and a rung's keys."""
        out: dict[str, Any] = {"command": self.command, "aux": self.method, "seed": self.seed,
                               "standardize": self.standardize}
        for o in applicable(self.method):
            out[o.name] = o.render(self.options.value(o.name))
        if self.fold is not None:
            out.update(selection="cv", cv_folds=self.fold.folds,
                       cv_fold="final" if self.fold.fold is None else self.fold.fold)
        if self.stop_after is not None:
            out["stop_after_epoch"] = self.stop_after
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "RunSpec":
        """A spec back from what `record` wrote (a worker's plan file, a saved run's config.json)."""
        fold = None
        if record.get("selection") == "cv":
            fold = Fold(int(record["cv_folds"]), None if record["cv_fold"] == "final" else int(record["cv_fold"]))
        own = declaration(str(record["aux"])).own_options if str(record["aux"]) in AUX_CHOICES else ()
        return cls(str(record["aux"]), int(record["seed"]), MethodOptions.of(record, own),
                   bool(record.get("standardize", True)), str(record.get("command") or "train-heads"), fold,
                   record.get("stop_after_epoch"))
