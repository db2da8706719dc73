"""`study SPEC [--plan] [--out DIR]`: from the dataset to a report in one resumable command.

--plan prints the stages, the inputs to extract, the runs per method and K, disk against free space,
the sweep's peak memory and each stage's time from a calibration of a few seconds, and does no work.
Without it the study runs every stage that is not finished yet; rerunning the same command after a kill
continues where it stopped, and a grown spec (more seeds, another K, method or setting) reuses every
finished run. With [heads] max_seeds the study grows its seeds toward [heads] target_effect from the spec's
seeds (study.run.stages.stage_grow).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.errors import PipelineError, run_cli


def _echo(message: str) -> None:
    click.echo(message, err=True)


def plan_only(spec_path: str, out: str | None) -> None:
    """--plan: each dataset's plan (one for [dataset], one per [[datasets]] entry) and, for several, the total."""
    from study.plan.estimates import stage_seconds
    from study.plan.make import calibrate, make_plan
    from study.plan.text import describe
    from study.plan.units import fmt_seconds
    from study.spec import load_specs

    specs = load_specs(spec_path, out)
    total = 0.0
    for i, spec in enumerate(specs):
        if len(specs) > 1:
            click.echo(f"{'' if i == 0 else chr(10)}== dataset {i + 1} of {len(specs)}: {spec.label} ({spec.dataset}) ==")
        plan = make_plan(spec)
        saved = spec.out / "calibration.json"
        try:
            calibrate(plan, backbone=True, saved=saved)
        except OSError:  # an output directory we cannot write: calibrate without saving
            calibrate(plan, backbone=True)
        click.echo(describe(plan))
        total += sum(v or 0.0 for v in stage_seconds(plan).values())
    if len(specs) > 1:
        click.echo(f"\nall {len(specs)} datasets: total ETA {fmt_seconds(total)}; then one report with a column per "
                   f"dataset ({specs[0].out.parent / 'report.md'})")


def run_study(spec_path: str, out: str | None, skip_disk_check: bool = False) -> Path:
    """Each dataset's study in turn (stages not finished yet); with several, the report across them. Returns
    the last report.md written."""
    from study.spec import load_specs

    specs = load_specs(spec_path, out)
    reports = [run_one(spec, skip_disk_check) for spec in specs]
    if len(specs) == 1:
        return reports[0]
    from study.report.compare import write_compare_report

    md, page = write_compare_report(specs)
    click.echo(f"report across datasets: {md} and {page}")
    return md


def planned_stages(plan) -> dict[str, float | None]:
    """The plan's seconds per stage, extraction summed over both splits (as study.json counts the stage)."""
    from study.plan.estimates import stage_seconds

    times = stage_seconds(plan)
    extract = [times.get(f"extract {s}") for s in ("train", "test")]
    return {"dataset": times.get("dataset"), "extract": sum(extract) if all(t is not None for t in extract) else None,
            "sweep": times.get("sweep"), "report": times.get("report")}


def run_one(spec, skip_disk_check: bool = False) -> Path:
    """Every stage of one dataset's study not finished yet, under its directory's lock; returns report.md."""
    from pipeline.files import lock_output, remove_stale_temporaries_under

    from study.plan.estimates import disk_shortfalls
    from study.plan.make import calibrate, make_plan
    from study.plan.text import describe
    from study.run.stages import STATE, check_identity, resume_growth, stage_dataset, stage_extract, stage_grow, stage_sweep, write_state

    try:
        lock = lock_output(spec.out / STATE, what="study")
    except PipelineError as e:
        raise PipelineError(f"--out {spec.out}: {str(e).replace(str(spec.out / STATE) + ': ', '')}") from None
    with lock:
        for stale in remove_stale_temporaries_under(spec.out):  # what a kill left: nothing else writes here now
            _echo(f"removed {stale} (a temporary file an interrupted run left)")
        plan = make_plan(spec)
        for split, state in plan.caches.items():
            state.refuse_mismatch(split)
        check_identity(plan)
        calibrate(plan, backbone=False, saved=spec.out / "calibration.json", quick=True)  # --plan's, when saved
        _echo(describe(plan))
        short = disk_shortfalls(plan)
        if short and not skip_disk_check:
            raise PipelineError(f"not enough disk space: {short[0]}")
        write_state(plan, planned=planned_stages(plan))
        from study.run.timing import StageMeter, interrupted_stage
        from study.plan.units import fmt_seconds

        killed = interrupted_stage(spec.out)  # the time of a run killed during a stage counts too
        if killed is not None:
            write_state(plan, killed[0], killed[1], load=killed[2])
            _echo(f"time: {killed[0]} {fmt_seconds(killed[1])} of an interrupted run counted (its last record)")
        plan, grown = resume_growth(plan, _echo)  # a rerun of a grown study: the seeds it grew to

        for stage, run in (("dataset", stage_dataset), ("extract", stage_extract), ("sweep", stage_sweep)):
            meter = StageMeter(record=spec.out, stage=stage)
            run(plan, _echo)
            seconds, load = meter.stop()
            write_state(plan, stage, seconds, load=load)

        def sweep_again(grown) -> None:  # the sweep stage on grown seeds: every finished run reused
            meter = StageMeter(record=grown.spec.out, stage="sweep")
            stage_sweep(grown, _echo)
            seconds, load = meter.stop()
            write_state(grown, "sweep", seconds, load=load)

        if not grown:
            plan = stage_grow(plan, _echo, sweep_again)
        return _report(plan)


def _report(plan) -> Path:
    from heads.training import artifacts

    from study.report.write import write_report
    from study.run.stages import STATE, write_state

    from study.run.timing import StageMeter, state_time_text

    meter = StageMeter(record=plan.spec.out, stage="report")
    state = artifacts.read_json(plan.spec.out / STATE)
    md, page = write_report(plan, state.get("stage_seconds", {}), state.get("stage_planned", {}),
                            state.get("stage_planned_by", {}))
    seconds, load = meter.stop()
    write_state(plan, "report", seconds, load=load)
    click.echo(f"report: {md} and {page} (self-contained, opens offline)")
    # the same per-stage record as study.json and the report (study.run.timing), the report's own time added
    click.echo(f"time per stage: {state_time_text(artifacts.read_json(plan.spec.out / STATE))}")
    return md


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("spec", metavar="SPEC")
@click.option("--plan", "plan", is_flag=True, help="Print the plan (stages, runs, disk, memory, ETA per stage) and stop.")
@click.option("--out", default=None, help="Study directory.  [default: the spec's `out`, else runs/studies/<name>]")
@click.option("--skip-disk-check", is_flag=True, hidden=True, help="Start even when the plan finds the disk short (tests).")
def main(spec: str, plan: bool, out: str | None, skip_disk_check: bool) -> None:
    """Run the study SPEC (a TOML file): dataset -> extraction -> sweep -> report, resumable."""
    try:
        if plan:
            plan_only(spec, out)
        else:
            run_study(spec, out, skip_disk_check)
    except OSError as e:  # a write that failed outside the stages' own handling: one line, naming what it wrote
        from pipeline.files import disk_full, is_disk_full

        if is_disk_full(e):
            from study.spec import load_spec

            raise disk_full(e.filename or load_spec(spec, out).out, what="writing the study's files") from None
        raise PipelineError(f"{e.filename or spec}: {e.strerror or e}") from None


def cli() -> None:
    """Console entry point: usage errors and PipelineErrors are one `error:` line, exit code 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
