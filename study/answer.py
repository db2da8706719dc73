"""The top of a study's report: the banner, the answer (a method x K matrix of test top-1 and the paired
difference against each method's named baseline, chance, n; a plain sentence per method; a standing caution)
and the glossary of its terms.

Every number is a `study.report.Results` value (the tables further down and the figure print the same ones).
"""

from __future__ import annotations

from typing import Any

from .render import Block
from .results import Effect, Results, k_title, pct

MARK = "✱"  # after a difference whose 95% interval excludes 0

METHODS = {  # what each method is, in the words of the glossary
    "none": "the report's MLP head on the frozen feature (Linear D to D, ReLU, Linear to a 128-d L2-normalised "
            "embedding, a linear classifier on it), trained with cross-entropy on the labelled rows only: **PIRL's "
            "same-network baseline**",
    "linear": "the linear probe, one linear layer (D to the classes) on the standardised frozen feature, with "
              "cross-entropy: the **reference** none and dcl-none are compared with",
    "pirl": "none's network plus PIRL's memory-bank loss (InfoNCE between each image's embedding, its jigsaw "
            "view's and the bank) on every training image, labelled or not",
    "dcl": "DCL's adapter and classifier trained on the original and the region-confused (destructed) view, plus "
           "an adversarial original-vs-destructed loss and, with spatial maps, region alignment; the label-free "
           "losses see every training image",
    "dcl-none": "DCL's adapter and classifier with cross-entropy on the original view only: **DCL's same-network "
                "baseline**",
}


def method_words(aux: str) -> str:
    from heads.options import AUX_HELP

    if aux in METHODS:
        return METHODS[aux]
    parts = dict(p.split(" = ", 1) for p in AUX_HELP.rstrip(".").split("; ") if " = " in p)
    return parts.get(aux, "a method of heads.methods")


def banner_blocks(r: Results, backbone: str) -> list[Block]:
    """The warnings a reader must see before any number: untrained backbone weights, a synthetic dataset."""
    parts = []
    if r.untrained:
        said = "" if r.weights.startswith("random") else f" ({r.weights})"  # 'random (untrained)' says it twice
        parts.append(f"UNTRAINED BACKBONE: `{backbone}` has random weights{said}. Every number below measures "
                     "heads trained on random features; it says nothing about a pretrained model or about the methods "
                     "on real data.")
    if r.synthetic:
        parts.append(f"SYNTHETIC SAMPLE: `{r.spec.data_root}` was made by make-sample-dataset: its pictures are not "
                     "the dataset's images (Setup quotes its README).")
    return [Block("banner", " ".join(f"**{p}**" for p in parts))] if parts else []


def cell(r: Results, aux: str, k: str) -> list[str] | str:
    """One answer cell: test top-1 mean ± std (n when short of the study's seeds; 'did not learn'), then Δ against the
    method's named baseline with its interval, bold and marked where the interval excludes 0."""
    e = r.entry(aux, k)
    if e is None:
        return "–"
    mean, std = e.top1
    first = f"{pct(mean)} ± {pct(std)}" + (f" (n={len(e.seeds)})" if len(e.seeds) != r.seeds else "")
    if not e.learned:
        first += f" **did not learn** ({e.health})"
    effect = r.named(aux, k)
    if effect is None:
        return first
    return [first, delta_text(effect)]


def delta_text(effect: Effect) -> str:
    text = f"Δ {effect.text()}"
    return f"**{text} {MARK}**" if effect.shown else text


def row_label(r: Results, aux: str) -> str:
    base = r.baseline(aux)
    if base is not None:
        return f"**{aux}** (Δ vs {base})"
    return f"**{aux}** (reference)" if aux == "linear" else f"**{aux}** (no baseline in this study)"


def answer_rows(r: Results, ks: list[str]) -> list[list[Any]]:
    """The matrix's rows at `ks`: chance, each method, the rows per class each K used, n."""
    def at(k: str, text: Any) -> Any:
        return text if k in r.ks else "–"

    rows: list[list[Any]] = [[f"chance (1 of {r.classes} classes)"] + [at(k, f"{100 / r.classes:.2f}") for k in ks]]
    rows += [[row_label(r, aux)] + [cell(r, aux, k) for k in ks] for aux in r.methods]
    rows.append(["rows per class: labelled + validation"]
                + [at(k, k in r.counts and f"{r.counts[k].labelled_text()} + {r.counts[k].val_text()}") for k in ks])
    rows.append(["n: seeds × test images"]
                + [at(k, k in r.ks and f"{max(len(e.seeds) for e in r.entries if e.k == k)} × {r.test_images}")
                   for k in ks])
    return rows


def answer_table(r: Results) -> list[list[Any]]:
    return [["method (Δ against)"] + [k_title(k, r.counts[k]) for k in r.ks]] + answer_rows(r, r.ks)


def k_list(ks: list[str]) -> str:
    """'K = 1', 'K = 5 or all', 'K = 1, 5 or all'."""
    if len(ks) == 1:
        return f"K = {ks[0]}"
    return f"K = {', '.join(ks[:-1])} or {ks[-1]}"


def sentence(r: Results, aux: str) -> str:
    """What the answer says about one method, in plain words."""
    base = r.baseline(aux)
    ks = [k for k in r.ks if r.entry(aux, k) is not None]
    if base is None:
        levels = ", ".join(f"{pct(r.entry(aux, k).top1[0])}% at K = {k}" for k in ks)
        return f"**{aux}** ({'the reference' if aux == 'linear' else 'no baseline here'}): {levels} (chance " \
               f"{100 / r.classes:.2f}%)."
    effects = {k: r.named(aux, k) for k in ks if r.named(aux, k) is not None}
    parts = []
    for k, e in effects.items():
        if e.shown:
            iv = e.interval
            word = "better" if iv.mean > 0 else "worse"
            parts.append(f"{word} by {100 * abs(iv.mean):.2f} points at K = {k} (Δ {100 * iv.mean:+.2f} [{100 * iv.low:+.2f}, "
                         f"{100 * iv.high:+.2f}])")
    groups = {"no difference shown": [k for k, e in effects.items() if e.interval is not None and e.interval.computable
                                      and not e.shown],
              "no interval (t needs at least 3 seeds)": [k for k, e in effects.items() if e.interval is not None
                                                         and not e.interval.computable]}
    for note in dict.fromkeys(e.note for e in effects.values() if e.note):  # "not an effect: dcl did not learn"
        groups[note.replace(": ", " (", 1) + ")" if note.startswith("not an effect") else note] = \
            [k for k, e in effects.items() if e.note == note]
    for words, at in groups.items():
        if at:
            parts.append(f"{words} at {'any K' if len(at) == len(ks) > 1 else k_list(at)}")
    missing = [k for k in ks if k not in effects]
    if missing:
        parts.append(f"no {base} run to compare with at {k_list(missing)}")
    return f"**{aux}** vs its baseline {base}: " + "; ".join(parts) + "."


def caution(r: Results) -> str:
    """The standing caution: few seeds, an untrained backbone, a synthetic dataset, runs that did not learn."""
    parts = caution_parts(r)
    return ("**Caution.** " + " ".join(parts)) if parts else ""


def caution_parts(r: Results) -> list[str]:
    parts = []
    if r.seeds < 3:
        t = " and a t interval cannot be computed" if r.spec.interval == "t" else ""
        parts.append(f"**{r.seeds} seed{'s' if r.seeds != 1 else ''}** (fewer than 3): the seed-to-seed spread is "
                     f"barely measured{t}; read a {MARK} as a lead to rerun with more seeds, not as a finding.")
    if r.untrained:
        parts.append("**Untrained backbone**: the features are random, so these numbers test the pipeline, not PIRL "
                     "or DCL.")
    if r.synthetic:
        parts.append("**Synthetic data**: the pictures are not the dataset's.")
    sick = [f"{e.aux} at K = {e.k}" for e in r.entries if not e.learned]
    if sick:
        parts.append(f"**Did not learn**: {', '.join(sick)} (heads.health): its numbers measure a failed training, "
                     "and no difference with it is read as an effect.")
    return parts


def answer_blocks(r: Results) -> list[Block]:
    """The answer: the matrix, a sentence per method, the standing caution."""
    from heads.stats import INTERVAL_NAMES

    if not r.entries:
        return [Block("h2", "Answer"), Block("p", "No method has a selected setting yet: nothing to report.")]
    caption = (f"Test top-1 % (mean ± std over seeds) of each method at its selected setting; **Δ**: its paired "
               f"difference in points against the named baseline (same seeds), with the 95% interval "
               f"({INTERVAL_NAMES[r.spec.interval]}); **{MARK}**: the interval excludes 0. Terms: Glossary.")
    blocks = [Block("h2", "Answer"), Block("p", caption), Block("table", answer_table(r)),
              Block("list", [sentence(r, aux) for aux in r.methods])]
    note = caution(r)
    return blocks + ([Block("caution", note)] if note else [])


def glossary_blocks(r: Results, others: list[tuple[str, Results]] = ()) -> list[Block]:
    """The methods and baselines, the answer's symbols and the selection of settings and epochs (`others`: more
    datasets' results, by label, whose validation sizes are stated too)."""
    from heads.stats import MIN_T_SEEDS

    methods = list(dict.fromkeys(r.methods + [a for _, o in others for a in o.methods]))
    items = [f"**{aux}**: {method_words(aux)}." for aux in methods]
    items += [
        "**Δ vs X**: test top-1 of the method minus that of X, run with the same seeds (same validation split, "
        "labelled rows and initialisation), in percentage points. X is the method's same-network baseline (pirl: "
        "none, dcl: dcl-none), else the linear probe.",
        f"**95% interval**, **{MARK}**: " + ("the hierarchical bootstrap resamples seeds, then test images; "
                                             if r.spec.interval == "bootstrap" else
                                             f"Student's t over the seeds (none below {MIN_T_SEEDS} seeds); ")
        + f"an interval that contains 0 shows no difference; {MARK} marks one that excludes 0.",
        "**chance**: the top-1 of a uniform guess, 1 over the number of classes (the answer's first row). "
        "**did not learn**: "
        "heads.health found the run's training and validation accuracy within chance, a loss that grew or most ReLU "
        "units dead.",
        "**K**: labelled training images per class; **all** is every training image not held out for validation "
        "(the count in brackets is what the runs used, per class).",
        selection_words(r) if not others else "; ".join(f"{label}: {selection_words(o)}" for label, o in others),
    ]
    return [Block("h2", "Glossary"), Block("list", items)]


def selection_words(r: Results) -> str:
    """The selection disclosure: settings and epochs are chosen on how many validation images."""
    if r.spec.selection == "cv":
        return ("**Selected setting and epoch count**: by cross-validation within the K labelled rows of each class "
                "(heads.cv): no validation image beyond the K labels.")
    per_class = " / ".join(sorted({r.counts[k].val_text() for k in r.ks}))
    total = sorted({round(r.counts[k].val_mean * r.classes) for k in r.ks})
    step = f"{100 / total[0]:.1f}" if total and total[0] else "?"
    return (f"**Selected setting and epoch**: for each method and K, the setting with the best mean validation top-1 "
            f"over seeds; within each run, the epoch with the best validation top-1. Validation: "
            f"{', '.join(map(str, total))} images ({per_class} per class), so validation top-1 moves in steps of "
            f"{step} points and the choice of epoch and setting is coarse.")
