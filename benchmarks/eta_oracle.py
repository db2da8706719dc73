"""`study SPEC` whose live ETA is told how far the epoch rule lets each run train: an oracle for benchmarks.

    python -m benchmarks.eta_oracle REFERENCE_OUT SPEC --out OUT

REFERENCE_OUT is a finished study of the same spec (same seeds, so its runs stop at the same epochs, as a rerun's
do on one machine). Before the sweep, its runs' metrics.json tell the live ETA (study.run.sweep_lines.SweepLines)
each run's epochs (grid: the share of its planned epochs each run trains, per run) or each cell's share of the full
budget's epochs that the rule left unspent (halving), in place of what the runs ended so far suggest. Everything
else (the pace it learns, the load) is the study's own. The live ETA's error left is then the pace's; the
difference from the study run plainly is what the stops nobody can know before a run of the cell ends cost
(benchmarks/bench_plan_load.py --oracle). Not for users: it reads the answer before it happens.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from study.plan.make import finished_epochs
from study.run import sweep_lines
from study.run.sweep_lines import SweepLines


def install(reference: Path) -> None:
    """Patch SweepLines so that each new one reads its runs' true epochs from `reference` (a finished study dir)."""
    init = SweepLines.__init__

    def told(self: SweepLines, plan: Any, runs: list[Any], stream: Any = None, halving: bool = False) -> None:
        init(self, plan, runs, stream, halving)
        by_id: dict[int, float] = {}
        unspent: dict[Any, list[float]] = {}
        for run_dir, w in self.work.items():
            if not isinstance(run_dir, Path):
                continue
            finished = finished_epochs(reference / run_dir.relative_to(plan.spec.out))
            if finished is None or not w.epochs:
                continue
            trained, stopped = finished
            by_id[id(w)] = trained / w.epochs
            span = w.ceiling - w.full_from
            if halving and span > 0 and trained > w.full_from:  # it trained in the full budget's rung
                unspent.setdefault(w.cell, []).append(max(w.ceiling - stopped, 0) / span if stopped else 0.0)
        if halving:  # each cell's unspent share known from the start, and kept (what ends adds nothing)
            self.full.seen = unspent
            self.full.ended = lambda w, stopped: self.full.expected.__setitem__(
                w.cell, max(self.full.expected.get(w.cell, 0.0) - 1.0, 0.0))
        else:  # each run's own share of its planned epochs
            self.shares = lambda bound="": (lambda w: by_id.get(id(w), 1.0))

    sweep_lines.SweepLines.__init__ = told


if __name__ == "__main__":
    reference = Path(sys.argv[1]).resolve()
    if not (reference / "study.json").is_file():  # else every run would silently be told the plan's epochs
        print(f"error: {reference}: not a finished study's directory (no study.json)", file=sys.stderr)
        sys.exit(2)
    install(reference)
    from study.cli import main

    main(sys.argv[2:])
