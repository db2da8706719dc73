"""K and the cell: labelled rows per class as one typed value (`K`: an int, or None for all), its one parse
(`parse_k`) and its one rendering (`k_text`), and `Cell(method, K)`, what a selection compares settings within."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

K = Optional[int]
"""Labelled training rows per class: a positive integer, or None for every training row ("all")."""

K_NAME = "labels_per_class"
"""K's option name: its key in config.json's "options" and its column in runs.csv, selection.json and summary.csv."""


def parse_k(value: Any) -> K:
    """K from its text or number: 'all' -> None, a positive integer -> itself; ValueError otherwise. The one parse
    of K: the command line, a study spec, runs.csv and selection.json all come through here."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "all":
        return None
    if not text.lstrip("-").isdigit():
        raise ValueError(f"expected a positive integer or 'all', found {text!r}")
    if int(text) < 1:
        raise ValueError(f"expected a positive integer or 'all', found {text} (a class needs at least one "
                         "labelled row for cross-entropy to see it)")
    return int(text)


def k_text(k: K) -> str:
    """'all' or the number: K as files and tables write it."""
    return "all" if k is None else str(k)


def k_order(k: K) -> tuple[int, int]:
    """Sort key: numbers in increasing order, 'all' after every number."""
    return (1, 0) if k is None else (0, k)


@dataclass(frozen=True)
class Cell:
    """What a selection compares settings within: one method at one K."""

    method: str
    k: K

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> "Cell":
        """The cell of a runs.csv row, a selection.json or summary.csv entry ("aux", "labels_per_class")."""
        return cls(str(row["aux"]), parse_k(row.get(K_NAME, "all")))

    def row(self) -> dict[str, str]:
        """The cell as a file's row holds it: {"aux": the method, "labels_per_class": K's text}."""
        return {"aux": self.method, K_NAME: self.k_text}

    @property
    def k_text(self) -> str:
        return k_text(self.k)

    @property
    def flag_text(self) -> str:
        """'--labels-per-class 5': K as the command line names it."""
        return f"--labels-per-class {self.k_text}"

    def order(self, methods: list[str] | tuple[str, ...] = ()) -> tuple:
        """Sort key: K in increasing order ('all' last), then the methods' given order."""
        where = list(methods).index(self.method) if self.method in methods else len(methods)
        return (k_order(self.k), where, self.method)


@dataclass(frozen=True)
class Fold:
    """--selection cv: a run on fold `fold` of `folds` of the labelled rows (None: the final run on all of them)."""

    folds: int
    fold: Optional[int]

    @property
    def fold_text(self) -> str:
        return "final" if self.fold is None else str(self.fold)
