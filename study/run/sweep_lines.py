"""The sweep's live progress line and ETA, in process: the plan's work followed run by run, in parts.

study.run.stages.stage_sweep prints a line per run and, after every epoch, an ETA that learns. Each run's work is
followed in parts (RunWork: its epochs, its own work after them): the epochs the epoch rule lets each (method, K)
cell train, successive halving's rungs, and cross-validation's final runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from study.plan.load import threads_for_load
from study.plan.make import Plan, finished_epochs
from study.run.progress import Progress

ETA_FILE = "eta.csv"  # each live ETA beside the time that truly remained (study.run.progress.EtaLog)


@dataclass(frozen=True)
class RunWork:
    """One run as the plan sees it, in the parts the live ETA follows: its epochs and its own work after them."""

    kind: str  # its method: the ETA learns a bias per method
    cell: tuple[str, Any]  # its (method, K): runs of one cell stop at like epochs
    epochs: float  # the epochs the plan expects it to train (the ceiling x the epoch rule's share so far)
    epoch_s: float  # the plan's seconds of one of its epochs (validation included; a bank's share)
    own_s: float  # the plan's seconds of its run directory's own work (artifacts, figures)
    ceiling: int = 0  # its --epochs
    patience: int = 0  # its epoch rule's patience (0: every epoch)
    ends: float = 1.0  # the times it ends (under halving, once per rung it is expected to train in): own_s over them
    fixed: bool = False  # it trains exactly its epochs (a cv final run at its selected epochs: no epoch rule)
    full: float = 1.0  # under halving, its chance of the full budget's rung (study.plan.make.RunPlan.full) ...
    full_from: int = 0  # ... and the epochs it has trained when it enters that rung
    rungs: tuple[int, ...] = ()  # under halving, the epochs at which the rungs below the full budget's end


STALL = 2.0  # an epoch this many times slower than the like epochs before it makes the sweep look at the load now


class SweepLines:
    """The sweep's progress in process: a line per run trained, and after every epoch an ETA that learns (redrawn on
    a terminal, recorded in eta.csv; study.run.progress.Progress). The ETA is the plan's work left x how the work
    went against its plan (per method, and the recent pace). The work left is counted in epochs: a run still to
    train is expected to train as many of its epochs as the runs of its cell that ended did (the epoch rule
    stops runs at epochs no plan foresees; for a cell not seen yet, the cells seen with the plan's whole epochs
    counted as one cell more, the range reaching from the earliest epoch the rule can stop a run to the plan's),
    and the run under way has done some of them. Under halving, a run of the last rung that the epoch rule stopped leaves
    its epochs unspent: they are counted as done. Runs finished before this process (a study resumed or grown) are
    done from the start, wherever the sweep's order reaches them. The first epoch and the first run's end pay the
    process's one-off set-up (the calibration's first_run_s, of which first_end_s at the run's end: lazy imports,
    the first figure): it is work left until paid, and those units are left out of what the ETA learns. Each unit tells its sort (a run's first epoch, an epoch alone or in a bank, a run's end), so that the
    ETA's pace compares like with like (LearningEta). Under selection = "cv" the final runs, which train after
    selection, are work left from the start (one per (method, K, seed), at the plan's cost), and the line closes
    after them."""

    def __init__(self, plan: Plan, runs: list[Any], stream: Any = None, halving: bool = False):
        self.work: dict[Any, RunWork] = {**run_work(plan, runs), **final_work(plan)}
        self.planned = {(r.label, r.seed): r for r in plan.runs}
        # successive halving trains runs in rungs, its epochs planned as the budget's expected count per run: its
        # work left is the plan's less the planned work done (per method), counted in epochs, not runs
        self.halving, self.spent = halving, {}
        self.finished = False
        self.todo = set(self.work)  # the runs not ended yet (cv's final runs by (method, K, seed) till they start)
        self.group: list[Any] = []  # the runs training now (a bank trains several), and their epochs so far
        self.epoch = 0
        self.group_ended = False  # a run of the group has been reported ended
        self.trained: dict[Any, list[float]] = {}  # per cell: epochs trained / epochs planned, of its runs ended
        total = sum(w.epochs for w in self.work.values()) if halving else len(self.work)
        self.progress = Progress("sweep", total, None, stream, eta_file=plan.spec.out / ETA_FILE)
        self.planned_by_kind: dict[str, float] = {}
        for w in self.work.values():
            self.planned_by_kind[w.kind] = self.planned_by_kind.get(w.kind, 0.0) + w.own_s + w.epochs * w.epoch_s
        self.ended = self.reused = self.epochs_done = 0
        cal = plan.calibration
        # the process's one-off set-up (study.plan.costs.Calibration): the first fit's, paid in the first epoch, and
        # the first files' and figure's, at the first run's end; each is work left until it is paid
        self.once_end = cal.first_end_s if cal is not None else 0.0
        self.once_epoch = max(cal.first_run_s - self.once_end, 0.0) if cal is not None else 0.0
        self.first_epoch = self.first_end = True  # the first epoch and run end carry the process's one-off set-up
        self.threads = threads_for_load()
        self.threads.adjust()
        self.full = FullRungs(self.work.values())  # (under halving)
        self.full_done: set[Path] = set()
        self.epochs_reused = 0  # under halving, the epochs trained before this process (a study resumed)
        if halving:
            self.done_before(runs)
        else:
            self.finished_before(plan, runs)

    def shares(self, bound: str = "") -> Callable[[RunWork], float]:
        """The share of its planned epochs a run is expected to train: the mean of the runs of its cell (method, K)
        that ended (here, or before this process: finished_before). For a cell not seen yet, the mean of the cells seen and of the plan's 1 counted as one cell
        more: cells stop at unlike epochs (fewer labels sooner), so the cells seen do not speak for it alone, nor
        does the plan's ceiling once cells stop early. Its `bound` "high": the plan's 1; "low": the earliest the
        epoch rule can stop a run (epoch patience + 1; the smallest share of the cells seen without the rule)."""
        from heads.training.epochs import earliest_stop

        means = {cell: sum(v) / len(v) for cell, v in self.trained.items()}
        if bound == "low":
            seen = min(means.values(), default=1.0)

            def low(w: RunWork) -> float:
                stop = earliest_stop(w.patience)
                return seen if stop is None or not w.epochs else min(seen, stop / w.epochs)

            return lambda w: means.get(w.cell, low(w))
        unseen = 1.0 if bound == "high" else (sum(means.values()) + 1.0) / (len(means) + 1)
        return lambda w: means.get(w.cell, unseen)

    @staticmethod
    def epochs_left(w: RunWork, share: float, done: int) -> float:
        """Epochs a run is expected to train still, `done` trained: its expected epochs (`share` of the plan's) less
        those; once it has outlived them, half its patience (the rule stops it within patience epochs of its best)."""
        expected = w.epochs * (1.0 if w.fixed else share)
        if done < expected or not w.ceiling or w.fixed:
            return expected - done
        return min(w.patience, w.ceiling - done) / 2

    def left(self, bound: str = "") -> dict[str, float]:
        """The plan's seconds of the work left, per method, at the epochs the runs ended so far suggest (`bound`
        "low" or "high": at the fewest or the most they allow, the ETA range's ends); under halving the plan's
        less the planned work done. The process's one-off set-up not paid yet is work left of no method ("")."""
        left = self.runs_left(bound)
        if self.once_epoch + self.once_end > 0 and not self.finished:
            left[""] = self.once_epoch + self.once_end
        return left

    def runs_left(self, bound: str = "") -> dict[str, float]:
        """left()'s runs: the plan's seconds of their work left, per method."""
        if self.halving:
            running: dict[Any, list[int]] = {}
            for run in self.group:
                if full_budget(run) and run.run_dir in self.work and run.run_dir not in self.full_done:
                    running.setdefault(self.work[run.run_dir].cell, []).append(self.epoch)
            unspent = self.full.unspent(running, bound)
            return {kind: max(planned - self.spent.get(kind, 0.0) - unspent.get(kind, 0.0), 0.0)
                    for kind, planned in self.planned_by_kind.items()}
        left: dict[str, float] = {}
        now, share = {run.run_dir for run in self.group}, self.shares(bound)
        for run_dir in self.todo:
            w = self.work[run_dir]
            epochs = self.epochs_left(w, share(w), self.epoch if run_dir in now else 0)
            left[w.kind] = left.get(w.kind, 0.0) + w.own_s + max(epochs, 0.0) * w.epoch_s
        return left

    def bounds(self) -> tuple[dict[str, float], dict[str, float]]:
        return self.left("low"), self.left("high")

    def on_epoch(self, group: list[Any]) -> None:
        """An epoch of the runs training together has ended."""
        self.threads.adjust()  # torch's threads: the cores other work leaves free (a load that starts mid-run)
        if [run.run_dir for run in group] != [run.run_dir for run in self.group]:
            self.group, self.epoch, self.group_ended = group, 0, False
        self.epoch += 1
        parts = [w for w in map(self.work_of, group) if w is not None]
        for w in parts:
            self.spent[w.kind] = self.spent.get(w.kind, 0.0) + w.epoch_s
        self.epochs_done += 1
        once, self.once_epoch = self.once_epoch, 0.0
        due = self.progress.due()  # the work left is counted only when an ETA is recorded (at most once a second)
        sort = f"{'first epoch' if self.epoch == 1 else 'epoch'} x{len(group)}"  # the run's set-up is in its first
        self.progress.tick(self.count, self.left() if due else None, sum(w.epoch_s for w in parts) + once,
                           parts[0].kind if parts else "", group[0].run_dir.name, one_off=self.first_epoch,
                           left_range=self.bounds() if due else None, sort=sort)
        if not self.first_epoch and self.stalled():  # another process may have just taken a core: look now
            self.threads.adjust(look=True)
        self.first_epoch = False

    def stalled(self) -> bool:
        """The epoch just done took over STALL x its plan's ratio as the median of the last epochs of its sort (its
        method, a first epoch or not, alone or in a bank): the threads wait on a core another process took (a 2-thread
        sweep's epochs went at 4x until its threads were set for the load; benchmarks/RESULTS.md)."""
        units = self.progress.learner.units
        if not units:
            return False
        last = units[-1]
        like = [u[2] / u[1] for u in units[-64:-1] if (u[0], u[3]) == (last[0], last[3])][-8:]
        return len(like) >= 3 and last[2] / last[1] > STALL * sorted(like)[len(like) // 2]

    @property
    def count(self) -> int:
        """What the line counts: runs ended, or under halving epochs trained (here or, resumed, before)."""
        return self.epochs_done + self.epochs_reused if self.halving else self.ended

    def on_run(self, k: int, of: int, run: Any, message: str, trained: bool) -> None:
        """A run has ended (under halving: a rung of it; `k` of `of` counts the rung's runs)."""
        w = self.work_of(run) or RunWork("", ("", None), 0.0, 0.0, 0.0)
        if not self.halving:
            self.todo.discard(run.run_dir)
            self.ended += 1
        if trained:
            in_group = any(r.run_dir == run.run_dir for r in self.group)
            if not self.halving and in_group and w.epochs > 0 and not w.fixed:
                self.trained.setdefault(w.cell, []).append(self.epoch / w.epochs)
            self.spent[w.kind] = self.spent.get(w.kind, 0.0) + w.own_s / w.ends + self.full_ended(run, w)
            # a bank's runs all end at once, their own work done before the first is reported: one unit
            own = w.own_s / w.ends if not in_group else 0.0 if self.group_ended else sum(
                self.work[r.run_dir].own_s / self.work[r.run_dir].ends for r in self.group if r.run_dir in self.work)
            self.group_ended = self.group_ended or in_group
            once, first, self.once_end, self.first_end = self.once_end, self.first_end, 0.0, False
            self.progress.update(self.count, f"{run.run_dir.name}: {message}", self.left(), own + once,
                                 w.kind, one_off=first, left_range=self.bounds(), sort="run end")
        else:
            self.reused += 1
        if k == of and not self.halving and not self.todo:  # cv: the final runs come after selection
            self.finish()

    def work_of(self, run: Any) -> RunWork | None:
        """A run's work; a cv final run, when first heard of, takes its (method, K, seed)'s place in the work left
        at its selected epochs (its spec's stop_after), each at the plan's seconds of one epoch."""
        if run.run_dir in self.work:
            return self.work[run.run_dir]
        planned = self.planned.get((run.label, run.seed))
        key = ("final", planned.aux, planned.k, run.seed) if planned is not None else None
        if key not in self.work:
            return None
        w = self.work.pop(key)
        epochs = getattr(getattr(run, "spec", None), "stop_after", None) or w.ceiling
        self.work[run.run_dir] = w = replace(w, epochs=float(epochs), fixed=True)
        self.todo.discard(key)
        self.todo.add(run.run_dir)
        return w

    def full_ended(self, run: Any, w: RunWork) -> float:
        """Under halving, a run of the full budget's rung (the last) has ended: FullRungs hears how far it went. The
        plan's seconds of the epochs the epoch rule left it unspent: halving's plan counts them, no rung trains them."""
        if not self.halving or not full_budget(run) or run.run_dir in self.full_done:
            return 0.0
        self.full_done.add(run.run_dir)
        stopped = (finished_epochs(run.run_dir) or (0, None))[1]
        self.full.ended(w, stopped)
        return max(w.ceiling - stopped, 0) * w.epoch_s if stopped else 0.0

    def done_before(self, runs: list[Any]) -> None:
        """Under halving, a resumed study: what its runs finished before this process trained is done work from the
        start (their epochs and an end per rung they trained in, and for a run that ended in the full budget's rung,
        the epochs the rule left it unspent), not when a rung reaches them (a survivor finished before is heard of
        only at the last rung)."""
        for run in runs:
            w = self.work.get(run.run_dir)
            finished = finished_epochs(run.run_dir) if w is not None else None
            if finished is None:
                continue
            trained, stopped = finished
            self.epochs_reused += trained
            self.spent[w.kind] = self.spent.get(w.kind, 0.0) + trained * w.epoch_s + w.own_s / w.ends
            # a survivor ended once in each rung it trained past (its run directory written at each)
            self.spent[w.kind] += sum(trained > e for e in w.rungs) * w.own_s / w.ends
            if (stopped or trained >= w.ceiling) and trained > w.full_from:  # it ended in the full budget's rung
                self.full_done.add(run.run_dir)
                self.full.ended(w, stopped)
                self.spent[w.kind] += max(w.ceiling - stopped, 0) * w.epoch_s if stopped else 0.0

    def finished_before(self, plan: Plan, runs: list[Any]) -> None:
        """Not halving: the runs finished before this process are not work left, though the sweep reaches them in
        its order among runs still to train (a study grown by a K or a method, a run removed to train it again); each
        tells its cell's epochs, as a run ended here does. Under selection = "cv", so is a final run finished
        before (study.plan.make.cv_final_finished)."""
        from study.plan.make import cv_final_finished

        for run in runs:
            w = self.work.get(run.run_dir)
            finished = finished_epochs(run.run_dir) if w is not None else None
            if finished is None:
                continue
            self.todo.discard(run.run_dir)
            if w.epochs > 0 and not w.fixed and finished[0]:
                self.trained.setdefault(w.cell, []).append(finished[0] / w.epochs)
        if plan.spec.selection == "cv":
            for r in plan.runs:
                if cv_final_finished(plan.spec, r):
                    self.todo.discard(("final", r.aux, r.k, r.seed))

    def finish(self) -> None:
        """The training has ended (the last run; under halving, when selection starts): the closing line."""
        if not self.finished:
            self.finished = True
            self.progress.close(f"({self.epochs_done} epochs in rungs, {self.reused} rung runs finished earlier and reused)"
                                if self.halving else
                                f"({int(self.progress.total)} runs, {self.reused} of them finished earlier and reused)")


def full_budget(run: Any) -> bool:
    """Does the planned run train to its whole --epochs (no rung's stop_after): successive halving's last rung."""
    return getattr(getattr(run, "spec", None), "stop_after", None) is None


class FullRungs:
    """Successive halving's runs at the full budget, per (method, K) cell: how many are still to end, and the share of
    their rung's epochs (from those they entered it with to the ceiling) that the epoch rule left unspent in those that
    ended. Halving's plan counts each at the ceiling; the rule stops some sooner, and runs of one cell stop at like
    epochs, so a run of the cell still to end is expected to leave the cell's share unspent. A cell none of whose runs
    has ended: the mean of the cells seen with 0 (the plan's ceiling) counted as one cell more; its range from the
    earliest epoch the rule can stop a run (the most unspent) to none unspent."""

    def __init__(self, work: Iterable[RunWork]):
        self.expected: dict[Any, float] = {}  # per cell, the full-budget runs expected still to end
        self.like: dict[Any, RunWork] = {}  # a run of the cell (its ceiling, patience, epoch's seconds)
        self.seen: dict[Any, list[float]] = {}  # per cell, the unspent share of each full-budget run that ended
        for w in work:
            if w.full > 0 and w.ceiling:
                self.expected[w.cell] = self.expected.get(w.cell, 0.0) + w.full
                self.like.setdefault(w.cell, w)

    def ended(self, w: RunWork, stopped: int | None) -> None:
        """A full-budget run of `w`'s cell ended, after `stopped` epochs when the rule stopped it (None: all)."""
        self.expected[w.cell] = max(self.expected.get(w.cell, 0.0) - 1.0, 0.0)
        span = w.ceiling - w.full_from
        if span > 0:
            self.seen.setdefault(w.cell, []).append(max(w.ceiling - stopped, 0) / span if stopped else 0.0)

    def unspent(self, running: dict[Any, list[int]], bound: str = "") -> dict[str, float]:
        """The plan's seconds, per method, of the full-budget epochs the rule is expected to leave unspent in the runs
        still to end (`running`: per cell, the epochs each of its runs training now has done in this rung; `bound`
        "low": the most unspent the runs ended allow, "high": the least)."""
        from heads.training.epochs import earliest_stop

        means = {cell: sum(v) / len(v) for cell, v in self.seen.items()}
        out: dict[str, float] = {}
        for cell, count in self.expected.items():
            w = self.like[cell]
            span = w.ceiling - w.full_from
            if span <= 0:
                continue
            if cell in means:
                share = means[cell]
            elif bound == "high":
                share = 0.0
            elif bound == "low":
                stop = earliest_stop(w.patience)
                share = 0.0 if stop is None else max(w.ceiling - max(stop, w.full_from + 1), 0) / span
            else:
                share = sum(means.values()) / (len(means) + 1)
            now = running.get(cell, [])
            epochs = max(count - len(now), 0.0) * share * span
            for done in now:  # a run under way: what it is expected to train still, as SweepLines counts a run's
                trains = SweepLines.epochs_left(replace(w, epochs=span, ceiling=span, fixed=False), 1 - share, done)
                epochs += max(span - done - trains, 0.0)
            out[w.kind] = out.get(w.kind, 0.0) + epochs * w.epoch_s
        return out


def run_work(plan: Plan, runs: list[Any]) -> dict[Path, RunWork]:
    """Each run's parts by run directory (estimates_by_run's seconds: its epochs x its epoch's seconds + its own
    work), from the plan's runs and calibration; all 0 without a calibration."""
    from study.plan.estimates import plan_shares

    seconds = estimates_by_run(plan, runs)
    by_key = {(r.label, r.seed): r for r in plan.runs}
    shares = plan_shares(plan)
    return {run.run_dir: planned_work(plan, by_key.get((run.label, run.seed)), seconds[run.run_dir], shares)
            for run in runs}


def final_work(plan: Plan) -> dict[tuple, RunWork]:
    """selection = "cv": the final run each (method, K, seed) trains after selection (all its K rows, the selected
    epochs), at the plan's cost (its settings' final_s: study.plan.estimates.add_cv_costs), keyed ("final", method,
    K, seed) until selection names its run; {} otherwise."""
    from study.plan.estimates import plan_shares

    if plan.spec.selection != "cv":
        return {}
    groups: dict[tuple, list[Any]] = {}
    for r in plan.runs:
        groups.setdefault(("final", r.aux, r.k, r.seed), []).append(r)
    shares = plan_shares(plan)
    return {key: planned_work(plan, group[0], sum(r.final_s for r in group), shares) for key, group in groups.items()}


def planned_work(plan: Plan, planned: Any, seconds: float, shares: dict[str, float]) -> RunWork:
    """A run of the plan's (setting, seed) `planned` estimated at `seconds`, in parts: its own work (the
    calibration's, once per time it ends) and its epochs (the plan's, x the share the epoch rule left them)."""
    from study.plan.costs import method_key

    cal = plan.calibration
    kind = getattr(planned, "aux", "")
    cost = cal.methods.get(method_key(kind, plan.reads_maps(kind), getattr(planned, "options", None))) if cal else None
    ends = getattr(planned, "ends", 1.0)
    own = cost.overhead_s * cal.slowdown * ends if cost is not None and cal is not None else 0.0
    epochs = ((getattr(planned, "epochs", None) or plan.spec.epochs) * shares.get(kind, 1.0)) if planned else 0.0
    train = max(seconds - own, 0.0)
    return RunWork(kind, (kind, getattr(planned, "k", None)), epochs, train / epochs if epochs > 0 else 0.0,
                   min(own, seconds), plan.spec.epochs, getattr(plan.spec, "patience", 0), ends,
                   full=getattr(planned, "full", 1.0), full_from=getattr(planned, "full_from", 0),
                   rungs=getattr(planned, "rungs", ()))


def estimates_by_run(plan: Plan, runs: list[Any]) -> dict[Path, float]:
    """Each run's estimated seconds by run directory: the plan's for its (setting, seed), or under selection =
    "cv" that (setting, seed)'s fold runs' share of it (its final_s, its share of the final run, left out)."""
    by_key = {(r.label, r.seed): r for r in plan.runs}
    count: dict[tuple[str, int], int] = {}
    for run in runs:
        count[run.label, run.seed] = count.get((run.label, run.seed), 0) + 1

    def seconds(run: Any) -> float:
        planned = by_key.get((run.label, run.seed))
        if planned is None:
            return 0.0
        return (planned.seconds - getattr(planned, "final_s", 0.0)) / count[run.label, run.seed]

    return {run.run_dir: seconds(run) for run in runs}
