"""The top of a study's report: the banner, the answer (a method x K matrix of test top-1 and the paired
difference against each method's named baseline, chance, n; a plain sentence per method with the size of every
difference; the selected runs' health; each method's gap to the strongest head; a standing caution), the power
of each comparison (its minimum detectable effect and the seeds the target effect needs; the seed-growth rule
and its decisions) and the glossary of its terms.

Every number is a `study.report.write.Results` value (the tables further down and the figure print the same ones).
"""

from __future__ import annotations

from typing import Any

from heads.cells import K, k_text
from heads.training.epochs import MATERIAL

from study.report.render import Block
from study.report.results import Effect, Results, k_title, pct, show

WEAK_BASELINE = 5.0  # points below the strongest head at which a baseline is called weak (issue 33's target)

MARK = "✱"  # after a difference whose 95% interval excludes 0

def method_words(aux: str) -> str:
    """What the method is, in the words of the glossary: its declaration's (heads.methods.registry)."""
    from heads.methods.registry import declaration

    return declaration(aux).glossary


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


def cell(r: Results, aux: str, k: K) -> list[str] | str:
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
        return f"**{show(aux)}** (Δ vs {show(base)})"
    return f"**{aux}** (reference)" if aux == "linear" else f"**{show(aux)}** (no baseline in this study)"


def answer_rows(r: Results, ks: list[K]) -> list[list[Any]]:
    """The matrix's rows at `ks`: chance, each method, the rows per class each K used, n."""
    def at(k: K, text: Any) -> Any:
        return text if k in r.ks else "–"

    rows: list[list[Any]] = [[f"chance (1 of {r.classes} classes)"] + [at(k, pct(1 / r.classes)) for k in ks]]
    rows += [[row_label(r, aux)] + [cell(r, aux, k) for k in ks] for aux in r.methods]
    rows.append(["rows per class: labelled + validation"]
                + [at(k, k in r.counts and f"{r.counts[k].labelled_text()} + {r.counts[k].val_text()}") for k in ks])
    rows.append(["n: seeds × test images"]
                + [at(k, k in r.ks and f"{max(len(e.seeds) for e in r.entries if e.k == k)} × {r.test_images}")
                   for k in ks])
    return rows


def answer_table(r: Results) -> list[list[Any]]:
    return [["method (Δ against)"] + [k_title(k, r.counts[k]) for k in r.ks]] + answer_rows(r, r.ks)


def k_list(ks: list[K]) -> str:
    """'K = 1', 'K = 5 or all', 'K = 1, 5 or all'."""
    texts = [k_text(k) for k in ks]
    if len(texts) == 1:
        return f"K = {texts[0]}"
    return f"K = {', '.join(texts[:-1])} or {texts[-1]}"


def effect_words(e: Effect) -> str:
    """The size of one difference and what its interval says, e.g. 'better by 5.63 points (Δ +5.63 [+1.25,
    +10.00])' or '+5.63 points, interval [+0.00, +11.25]: not shown to differ'; every difference states its size."""
    from heads.results.stats import pct as points

    iv = e.interval
    if e.shown:
        delta = e.delta()
        word = "better" if iv.mean > 0 else "worse"
        bounds = f"[{points(iv.low, sign=True)}, {points(iv.high, sign=True)}]"
        return f"{word} by {delta.lstrip('+-')} points (Δ {delta} {bounds})"
    if iv is not None and iv.computable:
        return (f"{e.delta()} points, interval [{points(iv.low, sign=True)}, {points(iv.high, sign=True)}]: not shown "
                "to differ")
    if iv is not None:
        return f"{e.delta()} points, no interval (t needs at least 3 seeds)"
    return e.note.replace(": ", " (", 1) + ")" if e.note.startswith("not an effect") else e.note


def sentence(r: Results, aux: str) -> str:
    """What the answer says about one method, in plain words: the size of its difference at each K, what the
    interval says, and the smallest difference its seeds detect."""
    base = r.baseline(aux)
    ks = [k for k in r.ks if r.entry(aux, k) is not None]
    if base is None:
        levels = ", ".join(f"{pct(r.entry(aux, k).top1[0])}% at K = {k_text(k)}" for k in ks)
        return f"**{show(aux)}** ({'the reference' if aux == 'linear' else 'no baseline here'}): {levels} (chance " \
               f"{pct(1 / r.classes)}%)."
    effects = {k: r.named(aux, k) for k in ks if r.named(aux, k) is not None}
    parts = [f"at K = {k_text(k)}: {effect_words(e)}{mde_words(e)}" for k, e in effects.items()]
    missing = [k for k in ks if k not in effects]
    if missing:
        parts.append(f"no {show(base)} run to compare with at {k_list(missing)}")
    return f"**{show(aux)}** vs its baseline {show(base)}: " + "; ".join(parts) + "."


def mde_words(e: Effect) -> str:
    """'; its seeds detect 4.21 points or more' (80% power), or nothing without a spread."""
    from heads.results.stats import pct as points

    p = e.power
    if p is None or not p.computable:
        return ""
    if p.s_d == 0:
        return f" (its {p.n} seeds agreed exactly: no spread measured)"
    return f" (its {p.n} seeds detect {points(p.mde)} points or more)"


def points_word(x: float) -> str:
    """'1 point', '0.5 points' (a target effect as the spec gives it, in points)."""
    return f"{x:g} point{'' if x == 1 else 's'}"


def gap_blocks(r: Results) -> list[Block]:
    """Each method's gap to the strongest head at each K (the best mean test top-1 among the methods that
    learned, as printed), and any baseline more than WEAK_BASELINE points below it named as a weak baseline."""
    from heads.results.stats import pct_diff

    if len(r.methods) < 2:
        return []
    from heads.options import BASELINE_OF

    baselines = {BASELINE_OF[a] for a in r.methods if a in BASELINE_OF}  # same-network baselines (none, dcl-none)
    items, weak = [], []
    for k in r.ks:
        best = r.best(k)
        if best is None:
            continue
        gaps = [f"{show(e.aux)} {pct_diff(e.top1[0], best.top1[0])}" for e in r.entries if e.k == k and e is not best]
        items.append(f"K = {k_text(k)}: strongest {show(best.aux)} {pct(best.top1[0])}%"
                     + (f"; {', '.join(gaps)}" if gaps else ""))
        for e in (e for e in r.entries if e.k == k and e.aux in baselines and e is not best):
            gap = -float(pct_diff(e.top1[0], best.top1[0]))
            if gap > WEAK_BASELINE:
                users = [show(a) for a in r.methods if r.baseline(a) == e.aux]
                weak.append(f"**{show(e.aux)} is {gap:.2f} points below {show(best.aux)} at K = {k_text(k)}: a weak "
                            f"baseline** for {', '.join(users)}")
    lead = ("**Gap to the strongest head**: each method's mean test top-1 minus the best one's at each K, in points"
            + (f"; a same-network baseline more than {WEAK_BASELINE:g} points below the strongest head is a weak "
               "baseline: a gain over it says little about what this backbone's best head gets." if weak else "."))
    return [Block("p", lead), Block("list", items + weak)]


def health_text(r: Results) -> str:
    """'**Health**: ok, 30 of 30 selected runs (heads.training.health ...)': stated even when every run is fine."""
    from heads.results.summary import health_line

    line = health_line(r.run_health)
    return (f"**Health**: {line.split(': ', 1)[1]} (heads.training.health checked each run's training and validation curves: "
            "it learned, its losses stayed finite and did not grow, its ReLU units lived)." + under_trained_text(r))


def under_trained_text(r: Results) -> str:
    """Why some selected runs are under-trained, and what to do (empty when none is)."""
    cells: dict[str, list[str]] = {}
    for e in r.entries:
        n = sum(h == "under-trained" for h in e.run_health)
        if n:
            cells.setdefault(show(e.aux), []).append(f"K = {k_text(e.k)} in {n} of {len(e.run_health)} seeds")
    if not cells:
        return ""
    where = "; ".join(f"{m} at {', '.join(ks)}" for m, ks in cells.items())
    return (f" **Under-trained**: {where}. Each kept the last of its {r.spec.epochs} epochs while its validation "
            f"loss still fell by {100 * MATERIAL:g}% or more over the last quarter (heads.training.epochs), so its numbers are "
            "those of this budget, not of a converged run; a larger [heads] epochs trains it further (the rule stops "
            "the runs that have converged).")


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
    sick = [f"{e.aux} at K = {k_text(e.k)}" for e in r.entries if not e.learned]
    if sick:
        parts.append(f"**Did not learn**: {', '.join(sick)} (heads.training.health): its numbers measure a failed training, "
                     "and no difference with it is read as an effect.")
    return parts


def answer_blocks(r: Results) -> list[Block]:
    """The answer: the matrix, a sentence per method, the standing caution."""
    from heads.results.stats import INTERVAL_NAMES

    if not r.entries:
        return [Block("h2", "Answer"), Block("p", "No method has a selected setting yet: nothing to report.")]
    caption = (f"Test top-1 % (mean ± std over seeds) of each method at its selected setting; **Δ**: its paired "
               f"difference in points against the named baseline (same seeds: the difference of the two printed "
               f"means), with the 95% interval ({INTERVAL_NAMES[r.spec.interval]}); **{MARK}**: the interval excludes "
               "0. Terms: [Glossary](#glossary).")
    blocks = [Block("h2", "Answer"), Block("p", caption), Block("table", answer_table(r)),
              Block("list", [sentence(r, aux) for aux in r.methods]), Block("p", health_text(r))]
    blocks += gap_blocks(r)
    note = caution(r)
    return blocks + ([Block("caution", note)] if note else [])


def glossary_blocks(r: Results, others: list[tuple[str, Results]] = ()) -> list[Block]:
    """The methods and baselines, the answer's symbols and the selection of settings and epochs (`others`: more
    datasets' results, by label, whose validation sizes are stated too)."""
    from heads.results.stats import MIN_T_SEEDS

    methods = list(dict.fromkeys(r.methods + [a for _, o in others for a in o.methods]))
    items = [f"**{show(aux)}**: {method_words(aux)}." for aux in methods]
    items += [
        "**Δ vs X**: test top-1 of the method minus that of X, run with the same seeds (same validation split, "
        "labelled rows and initialisation), in percentage points. X is the method's same-network baseline (pirl: "
        "none (MLP), dcl: dcl-none), else the linear probe. Every percentage is rounded half away from zero to 2 "
        "decimals, and Δ is the difference of the two printed means.",
        "**MDE** (minimum detectable effect): the smallest difference the study's seeds detect with 80% power in a "
        "two-sided test at 5%, from the seed-to-seed spread of the paired difference (Power).",
        f"**95% interval**, **{MARK}**: " + ("the hierarchical bootstrap resamples seeds, then test images; "
                                             if r.spec.interval == "bootstrap" else
                                             f"Student's t over the seeds (none below {MIN_T_SEEDS} seeds); ")
        + f"an interval that contains 0 shows no difference; {MARK} marks one that excludes 0.",
        "**chance**: the top-1 of a uniform guess, 1 over the number of classes (the answer's first row). "
        "**did not learn**: "
        "heads.training.health found the run's training and validation accuracy within chance, a loss that grew or most ReLU "
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
                "(heads.search.cv): no validation image beyond the K labels.")
    per_class = " / ".join(sorted({r.counts[k].val_text() for k in r.ks}))
    total = sorted({round(r.counts[k].val_mean * r.classes) for k in r.ks})
    from heads.results.stats import pct as points

    step = points(1 / total[0], 1) if total and total[0] else "?"
    return (f"**Selected setting and epoch**: for each method and K, the setting with the lowest mean validation loss "
            f"over seeds; within each run, the epoch the epoch rule keeps (heads.training.epochs: the latest epoch whose "
            f"validation loss is not worse than the lowest one's). Validation: {', '.join(map(str, total))} images "
            f"({per_class} per class), so validation top-1 moves in steps of {step} points: the loss, which every "
            "image moves, decides instead (Protocol).")


def power_cell(e: Effect | None) -> list[str] | str:
    """['MDE 4.21 (s_d 1.50, n = 2)', '1 point: 9 seeds'] (a line each), or why there is no number."""
    if e is None or e.power is None:
        return "–"
    p = e.power
    if not p.computable:
        return f"{p.n} seed: no spread, no MDE"
    from heads.results.stats import MAX_SEEDS_SEARCHED, pct as points

    needed = f"{p.needed} seeds" if p.needed is not None else f"more than {MAX_SEEDS_SEARCHED:,} seeds"
    sick = " (a side did not learn)" if e.interval is None and e.note.startswith("not an effect") else ""
    if p.s_d == 0:
        return [f"MDE 0.00 (s_d 0.00, n = {p.n})", f"the seeds agreed exactly: no spread measured{sick}"]
    return [f"MDE {points(p.mde)} (s_d {points(p.s_d)}, n = {p.n})", f"{points_word(100 * p.target)}: {needed}{sick}"]


def growth_text(r: Results) -> str:
    """The seed-growth rule and what it decided (study.json "growth"), or that the seeds were not grown."""
    from heads.training import artifacts
    from heads.results.stats import MAX_SEEDS_SEARCHED

    from study.plan.growth import GROWTH, GROWTH_RULE
    from study.run.stages import STATE

    spec = r.spec
    if spec.max_seeds is None:
        return ("**Seeds were not grown** ([heads] max_seeds is not set): the study ran the spec's seeds. With "
                f"max_seeds, `study` grows them toward target_effect by this rule: {GROWTH_RULE}.")
    path = spec.out / STATE
    growth = artifacts.read_json(path).get(GROWTH) if path.is_file() else None
    if not growth:
        return f"**Seed growth** (max_seeds {spec.max_seeds}): not decided yet. Rule: {GROWTH_RULE}."
    said = []
    for step in growth["steps"]:
        big = step.get("largest")
        spread = (f"largest s_d {pct(big['s_d'])} points ({show(big['method'])} vs {show(big['baseline'])} at "
                  f"K = {big['k']}), {step['needed'] or f'more than {MAX_SEEDS_SEARCHED:,}'} seeds needed"
                  if big else step["why"])
        said.append(f"at {len(step['seeds'])} seeds: {spread}: {step['why']}")
    return (f"**Seed growth** (target_effect {points_word(spec.target_effect)}, max_seeds {spec.max_seeds}; pilot: seeds "
            f"{', '.join(map(str, growth['pilot']))}; now {len(growth['seeds'])} seeds). Rule: {GROWTH_RULE}. "
            f"Decisions: {'; '.join(said)}.")


def power_table(r: Results) -> list[list[Any]] | None:
    """A row per comparison (a method against its named baseline), a column per K: power_cell; None without one."""
    named = [aux for aux in r.methods if r.baseline(aux) is not None]
    if not named:
        return None
    rows: list[list[Any]] = [["method vs named baseline"] + [k_title(k, r.counts[k]) for k in r.ks]]
    return rows + [[f"{show(aux)} vs {show(r.baseline(aux))}"] + [power_cell(r.named(aux, k)) for k in r.ks]
                   for aux in named]


def power_blocks(r: Results) -> list[Block]:
    """Power: each comparison's MDE and the seeds the target effect needs, at each K; the seed-growth rule."""
    from heads.results.stats import POWER_RULE

    rows = power_table(r)
    if rows is None:
        return []
    lead = (f"The effect these seeds can detect. For each comparison, the **minimum detectable effect** (MDE, points) "
            f"and the seeds that would detect the target effect of {points_word(r.spec.target_effect)} "
            f"([heads] target_effect): {POWER_RULE}. An interval that contains 0 with a large MDE says the study "
            "could not have seen a small effect, not that there is none.")
    return [Block("h2", "Power"), Block("p", lead), Block("table", rows), Block("p", growth_text(r))]
