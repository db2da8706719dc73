"""The rows of one run: validation, training, and which training rows keep their labels, for its seed and K, or
for a cross-validation fold (the labelled rows dealt to folds, one held out)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from pipeline.errors import PipelineError
from pipeline.reader import FeatureCache

from heads.spec import RunSpec, k_text
from heads.training.data import labelled_subset, split_counts, stratified_split

FOLD_EPOCH_RULE = "cross-validation fold: the held-out fold's top-1 after every epoch (history.csv); no epoch chosen"
FINAL_EPOCH_RULE = "cross-validation final run: no validation rows; the epoch count chosen by cross-validation"


def describe_validation(spec: RunSpec) -> str:
    o = spec.options
    if o.val_per_class:
        return f"--val-per-class {o.val_per_class}"
    return f"--val-fraction {o.val_fraction} of each class"


def split_rows(cache: FeatureCache, spec: RunSpec) -> dict[str, Any]:
    """Validation rows, training rows and which training rows keep their labels, for one seed.

    A cache holding the rows of its dataset's official validation split (`pipeline.datasets`: aircraft,
    flowers102 or folder trainval) is split by it; otherwise `--val-fraction` / `--val-per-class` draw it."""
    seed, o = spec.seed, spec.options
    official = cache.official_validation_rows()  # e.g. FGVC-Aircraft's val rows inside a trainval cache
    if official is not None:
        train_rows, val_rows = official
        validation = f"the dataset's official {cache.config['source']['official_validation']} split"
    else:
        train_rows, val_rows = stratified_split(cache.label, o.val_fraction, seed, o.val_per_class)
        validation = describe_validation(spec)
    if not len(train_rows):
        raise PipelineError(f"{cache.path}: no training row is left ({len(cache)} rows, {len(val_rows)} of them held "
                            "out for validation)")
    labelled, short = labelled_subset(cache.label, train_rows, spec.k, seed)
    counts = {name: split_counts(cache.label, rows, cache.num_classes)
              for name, rows in (("train", train_rows), ("val", val_rows), ("labelled", labelled))}
    return {"train": train_rows, "val": val_rows, "labelled": labelled, "k": spec.k, "validation": validation,
            "short": {cache.class_names[c]: n for c, n in short.items()}, "counts": counts}


def assign_folds(label: np.ndarray, labelled: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (0..F-1) of each labelled row, in the order of `labelled`: each class's rows in a seeded order are
    dealt to the folds, the deal continuing from one class to the next (fold sizes differ by at most one)."""
    fold = np.empty(len(labelled), dtype=np.int64)
    dealt = 0
    for c in np.unique(label[labelled]):
        where = np.flatnonzero(label[labelled] == c)
        order = np.random.default_rng([int(seed), 13, int(c)]).permutation(len(where))
        fold[where[order]] = (dealt + np.arange(len(where))) % folds
        dealt += len(where)
    return fold


def cv_rows(cache: FeatureCache, spec: RunSpec) -> dict[str, Any]:
    """split_rows' rows for a fold run (held-out fold as validation) or a final run (no validation); the carved
    validation rows are dropped. The "cv" entry records the fold, the held-out and the left-out rows."""
    rows = split_rows(cache, spec)
    folds, fold = spec.fold.folds, spec.fold.fold
    labelled = rows["labelled"]
    assigned = assign_folds(cache.label, labelled, folds, spec.seed)
    held = labelled[assigned == fold - 1] if fold is not None else np.zeros(0, dtype=np.int64)
    cv = {"folds": folds, "fold": spec.fold.fold_text if fold is None else fold,
          "held_out_image_ids": cache.image_id[held].tolist(),
          "validation_rows_left_out": len(rows["val"]), "labels_used_per_class": k_text(spec.k)}
    what = (f"cross-validation fold {fold}/{folds} of the labelled rows" if fold is not None else
            "none (cross-validation final run: the epoch count was chosen on the folds)")
    out = {**rows, "train": np.setdiff1d(rows["train"], held), "labelled": np.setdiff1d(labelled, held),
           "val": held, "validation": what, "cv": cv}
    out["counts"] = {name: split_counts(cache.label, out[name], cache.num_classes) for name in ("train", "val", "labelled")}
    return out


def run_rows(cache: FeatureCache, spec: RunSpec) -> dict[str, Any]:
    """A run's rows: its fold's (cv_rows) or its seed's split (split_rows)."""
    return cv_rows(cache, spec) if spec.fold is not None else split_rows(cache, spec)


def note_short_classes(rows: dict[str, Any], log: Callable[[str], None] | None, spec: RunSpec) -> None:
    """Say which classes have fewer than K training rows (they keep all of them), when a class has no training
    row at all, and when classes hold out fewer validation rows than --val-per-class asked."""
    if log is None:
        return
    counts, asked = rows["counts"], spec.options.val_per_class
    if counts["train"]["classes_without_any"]:
        log(f"note: {counts['train']['classes_without_any']} classes have no training row in this cache: they cannot "
            "be learned (their test images count as errors)")
    if asked and counts["val"]["min_per_class"] < asked:
        log(f"note: --val-per-class {asked}: some classes have too few training images and hold out "
            f"{counts['val']['min_per_class']} (each keeps at least one for training); config.json records the counts")
    if rows["short"]:
        short = rows["short"]
        log(f"note: --labels-per-class {rows['k']}: {len(short)} classes have fewer training rows and "
            f"keep all of them ({', '.join(f'{n}: {c}' for n, c in list(short.items())[:3])}"
            f"{', ...' if len(short) > 3 else ''})")
