"""Seed growth toward a target effect: the rule, and the decision a study takes on its sweep's files (how many seeds
the largest seed-to-seed spread needs), read by the run (study.run.stages.stage_grow), the plan and the report."""

from __future__ import annotations

from typing import Any

from study.plan.make import SWEEP, Plan

GROWTH = "growth"  # study.json's record of the decisions
GROWTH_STEPS = 2  # the pilot's decision, and one more on the grown seeds
GROWTH_RULE = ("the spec's seeds are a pilot. After its sweep, the study takes the largest seed-to-seed spread s_d "
               "(the standard deviation over seeds of the paired difference in test top-1) among the comparisons of "
               "each method with its named baseline at the spec's K values whose both sides learned, and the fewest "
               "seeds n whose minimum detectable effect at that s_d is at most target_effect (80% power, two-sided 5%; "
               "heads.results.stats.seeds_needed). When n is more than the seeds it has, it adds seeds (the smallest unused "
               "numbers) up to n, or up to max_seeds when n is beyond it, reruns the sweep (every finished run "
               "reused) and decides once more on the grown seeds. The decision reads the spread only, never the "
               "observed difference, so growth cannot chase an effect; a pilot of one seed has no spread and first "
               "grows to two")


def next_seeds(seeds: list[int], count: int) -> list[int]:
    """`count` seeds not in `seeds`: the smallest unused non-negative integers, increasing."""
    out, s = [], 0
    while len(out) < count:
        if s not in seeds:
            out.append(s)
        s += 1
    return out


def growth_decision(plan: Plan) -> dict[str, Any]:
    """The decision on the sweep's files at the plan's seeds: the largest spread, the seeds the target needs and
    the seeds to grow to (`grow_to`: the current count when no growth is needed or possible)."""
    from heads.results.stats import seeds_needed
    from heads.results.summary import named_powers

    spec = plan.spec
    n = len(spec.seeds)
    step: dict[str, Any] = {"seeds": list(spec.seeds), "target_effect": spec.target_effect, "max_seeds": spec.max_seeds}
    if n < 2:
        return {**step, "largest": None, "needed": None, "grow_to": min(2, spec.max_seeds or 1),
                "why": "one seed: no spread to judge from"}
    powers = named_powers(spec.out / SWEEP, spec.target_effect, spec.labels_per_class)
    if not powers:
        return {**step, "largest": None, "needed": None, "grow_to": n,
                "why": "no comparison whose both sides learned: no spread to judge from"}
    aux, base, cond, power = max(powers, key=lambda p: p[3].s_d)
    needed = seeds_needed(power.s_d, spec.target_effect / 100)
    cap = spec.max_seeds if spec.max_seeds is not None else max(n, needed or n)
    goal = n if needed is not None and needed <= n else min(needed or cap, cap)
    why = ("the seeds detect the target" if needed is not None and needed <= n else
           "grown toward the target" if goal > n and goal == needed else
           "the target is out of reach within max_seeds" + ("" if goal > n else ": at the cap"))
    return {**step, "largest": {"method": aux, "baseline": base, "k": cond.k_text, "s_d": power.s_d, "n": power.n},
            "needed": needed, "grow_to": max(goal, n), "why": why}
