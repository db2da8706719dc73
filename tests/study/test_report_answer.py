"""A study's report answers the question at the top, and every file beside it agrees with it: the answer block's
numbers read back from predictions.csv, summary.md's intervals equal the report's, the commands in commands.sh,
per_class.csv's counts, the rows each K used as the runs' config.json records them, the HTML for screen and print,
and a t interval over two seeds said to be impossible rather than printed."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from study.cli import run_study
from tests.study.conftest import write_matching_caches, write_spec

ALL = ("none", "linear", "pirl", "dcl", "dcl-none")
KS = ("1", "5", "all")
NAMED = {"none": "linear", "pirl": "none", "dcl": "dcl-none", "dcl-none": "linear"}  # the answer's Δ against
CELL = re.compile(r"^(?P<mean>\d+\.\d\d) ± (?P<std>\d+\.\d\d)(?P<sick> \*\*did not learn\*\* \([^)]*\))?"
                  r"(?:; (?P<bold>\*\*)?Δ (?:(?P<d>[+-]\d+\.\d\d) \[(?P<lo>[+-]\d+\.\d\d), (?P<hi>[+-]\d+\.\d\d)\]"
                  r"(?P<mark> ✱)?|(?P<note>not an effect: [^*]+))(?:\*\*)?)?$")


@pytest.fixture(scope="module")
def study(tmp_path_factory, study_root) -> Path:
    """Every method at K = 1, 5 (more than the 4 training rows a class keeps: clamped) and all, two seeds."""
    tmp = tmp_path_factory.mktemp("report")
    spec = write_spec(tmp / "s.toml", study_root, tmp / "f", tmp / "out", methods=ALL, ks=(1, 5, "all"),
                      seeds=(0, 1), grid="aux-weight = [0.1, 1]\n")
    write_matching_caches(spec)
    run_study(str(spec), None)
    return tmp / "out"


def answer_table(report: str) -> tuple[list[str], dict[str, list[str]], int]:
    """(header cells, first cell -> the row's other cells, the line the table starts on) of report.md's first table."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    header, _rule, *body = rows
    return header, {r[0]: r[1:] for r in body}, start + 1


def shown(aux: str) -> str:
    return "none (MLP)" if aux == "none" else aux


def method_key(aux: str) -> str:
    return f"**{aux}** (reference)" if aux == "linear" else f"**{shown(aux)}** (Δ vs {shown(NAMED[aux])})"


def correctness(sweep: Path, entry: dict) -> np.ndarray:
    """(seeds in increasing order, images) of a selected entry, by hand from its runs' predictions.csv."""
    rows = []
    for _seed, rel in sorted(zip(entry["seeds"], entry["runs"])):
        with open(sweep / rel / "predictions.csv", newline="") as f:
            rows.append([float(r["pred"] == r["label"]) for r in csv.DictReader(f)])
    return np.array(rows)


def selected(sweep: Path) -> dict[tuple[str, str], dict]:
    return {(e["aux"], str(e["labels_per_class"])): e
            for e in json.loads((sweep / "selection.json").read_text())["selected"]}


def test_the_first_table_names_every_method_at_every_k_against_its_named_baseline(study):
    report = (study / "report.md").read_text()
    header, rows, line = answer_table(report)
    assert line <= 45 and report.index("## Answer") < report.index("| method (Δ against)")
    assert header == ["method (Δ against)", "K = 1", "K = 5", "K = all (4)"]  # 5 rows a class, 1 to validation
    assert rows["chance (1 of 3 classes)"] == ["33.33"] * 3
    assert rows["n: seeds × test images"] == ["2 × 15"] * 3
    assert rows["rows per class: labelled + validation"] == ["1 + 1", "4 + 1", "4 + 1"]  # K = 5 clamped to 4
    for aux in ALL:
        cells = rows[method_key(aux)]
        assert len(cells) == 3 and all(CELL.match(c) for c in cells), cells
        for c in cells:
            m = CELL.match(c)
            assert (m["d"] is not None or m["note"] is not None) == (aux != "linear")
    sentences = report.split("| n: seeds × test images |")[1].split("\n\n")[1].splitlines()
    assert [s.split("**")[1] for s in sentences] == [shown(a) for a in ALL]  # a sentence per method, in order
    assert "**Caution.** **2 seeds** (fewer than 3)" in report and "**Untrained backbone**" in report
    assert "**SYNTHETIC SAMPLE" in report.split("## Answer")[0] and "made by make-sample-dataset" in report


def test_the_answer_blocks_numbers_read_back_from_predictions(study):
    """Each cell's mean ± std over seeds and its paired interval against the named baseline, recomputed here from
    the selected runs' predictions.csv (the hierarchical bootstrap of heads.results.stats, 10,000 resamples, seed 0); Δ is
    the difference of the two printed means (every printed value rounded half away from zero); ✱ and bold exactly
    where the interval excludes 0; 'not an effect' exactly where a side did not learn."""
    from decimal import ROUND_HALF_UP, Decimal

    from heads.results.stats import hierarchical_bootstrap

    def printed(x: float, sign: bool = False) -> str:  # by hand: half away from zero on the value in points
        v = Decimal(repr(round(100 * float(x), 9))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return f"{v:+.2f}" if sign else f"{v:.2f}"

    _header, rows, _line = answer_table((study / "report.md").read_text())
    chosen = selected(study / "sweep")
    checked = 0
    for aux in ALL:
        for k, text in zip(KS, rows[method_key(aux)]):
            m = CELL.match(text)
            correct = correctness(study / "sweep", chosen[aux, k])
            top1 = correct.mean(1)
            assert (m["mean"], m["std"]) == (printed(top1.mean()), printed(top1.std(ddof=1)))
            if aux == "linear":
                continue
            base = chosen[NAMED[aux], k]
            sick = [e["aux"] for e in (chosen[aux, k], base) if any(h not in ("ok", "under-trained") for h in e.get("health") or [])]
            assert bool(m["sick"]) == (aux in sick)
            if sick:
                assert m["note"] == f"not an effect: {' and '.join(sick)} did not learn"
                continue
            base_correct = correctness(study / "sweep", base)
            iv = hierarchical_bootstrap(correct - base_correct, resamples=10_000, seed=0)
            the_base = next(CELL.match(c) for kk, c in zip(KS, rows[method_key(NAMED[aux])]) if kk == k)
            assert the_base["mean"] == printed(base_correct.mean(1).mean())
            assert m["d"] == f"{float(m['mean']) - float(the_base['mean']):+.2f}"  # Δ: the printed means' difference
            assert abs(float(m["d"]) - 100 * iv.mean) <= 0.01 + 1e-9  # ... within a rounding step of the paired mean
            assert (m["lo"], m["hi"]) == (printed(iv.low, True), printed(iv.high, True))
            assert bool(m["mark"]) == bool(m["bold"]) == (iv.low > 0 or iv.high < 0)
            checked += 1
    assert checked >= 6  # most differences were compared, not skipped


def report_intervals(report: str) -> dict[tuple[str, str, str], str]:
    """(method, K, against) -> '+1.25 [-2.00, +4.50]' from report.md's tables per K."""
    out = {}
    for section in report.split("\n### K = ")[1:]:
        k = section.split(" ", 1)[0]
        for line in section.split("\n## ")[0].splitlines():
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if not line.startswith("| ") or cells[0] == "method" or len(cells) != 5:
                continue
            aux = cells[0].split(" ")[0]
            if cells[3].startswith("vs "):
                base, text = cells[3][3:].split(": ", 1)
                out[aux, k, base.split(" ")[0]] = text
            if cells[4] != "–":
                out[aux, k, "linear"] = cells[4]
    return out


def summary_intervals(markdown: str) -> dict[tuple[str, str, str], str]:
    """The same from summary.md's differences table (its Δ and interval columns, or why there is none)."""
    out = {}
    for line in markdown.split("## Paired differences")[1].splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) != 8 or not re.match(r"^[+-]\d|^–", cells[3]):
            continue
        aux, k, against, diff, interval, source, _mde, _seeds = cells
        text = f"{diff} {interval}" if interval.startswith("[") else source
        out[aux, k, against.split(" ")[0]] = text
    return out


def test_summary_md_and_report_md_agree_on_every_interval_they_both_print(study):
    report = report_intervals((study / "report.md").read_text())
    summary = summary_intervals((study / "sweep" / "summary.md").read_text())
    assert set(report) == set(summary) and len(report) == 3 * (2 + 4)  # per K: 2 same-network, 4 vs linear
    assert report == summary
    saved = list(csv.DictReader(open(study / "sweep" / "summary.csv")))
    assert {r["interval"] for r in saved} == {"bootstrap"}  # the spec's interval (its default)


def test_the_report_holds_at_most_ten_command_lines_and_commands_sh_holds_them_all(study):
    report = (study / "report.md").read_text()
    blocks = re.findall(r"```\n(.*?)\n```", report, re.S)
    assert blocks and sum(len(b.splitlines()) for b in blocks) <= 10
    assert "[commands.sh](commands.sh)" in report
    script = study / "commands.sh"
    assert script.stat().st_mode & 0o111 and subprocess.run(["sh", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert not re.search(r"(^|\s)/", text, re.M)  # relocatable: no absolute path, the directory found from $0
    head = text.split("\n\n")[0] + "\npwd\n"  # its cd, from another directory: where the study ran (this one)
    probe = study / "probe.sh"
    probe.write_text(head)
    ran = subprocess.run(["sh", str(probe)], cwd="/", capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.strip() == os.getcwd(), ran.stderr
    probe.unlink()
    for entry in selected(study / "sweep").values():
        runs = [os.path.relpath(study / "sweep" / r) for _seed, r in sorted(zip(entry["seeds"], entry["runs"]))]
        assert "evaluate-heads " + " ".join(runs) in text
        k = str(entry["labels_per_class"])
        flag = f"--labels-per-class {k}" if k != "all" else ""  # all: the default, not spelled out
        again = [line for line in text.splitlines() if line.startswith("train-heads ") and f"--aux {entry['aux']} " in line
                 and (flag in line if flag else "--labels-per-class" not in line)]
        assert sorted(int(line.split("--seed ")[1].split(" ")[0]) for line in again) == sorted(entry["seeds"])


def test_per_class_csv_counts_every_class_with_its_test_images(study):
    rows = list(csv.DictReader(open(study / "per_class.csv")))
    chosen = selected(study / "sweep")
    assert len(rows) == 3 * len(chosen)  # 3 classes for every method and K
    pirl_all = [r for r in rows if r["method"] == "pirl" and r["labels_per_class"] == "all"]
    assert sum(int(r["test_images"]) for r in pirl_all) == 15 and {r["baseline"] for r in pirl_all} == {"none"}
    mine, theirs = correctness(study / "sweep", chosen["pirl", "all"]), correctness(study / "sweep", chosen["none", "all"])
    with open(next((study / "sweep").glob("runs/pirl*all*seed=0")) / "predictions.csv", newline="") as f:
        label = np.array([int(r["label"]) for r in csv.DictReader(f)])
    for r in pirl_all:
        c = label == int(r["class_index"])
        assert float(r["difference"]) == pytest.approx(mine[:, c].mean() - theirs[:, c].mean(), abs=1e-6)
    report = (study / "report.md").read_text()
    section = report.split("## Per-class changes")[1].split("\n## ")[0]
    assert "(5 img)" in section and "[per_class.csv](per_class.csv)" in section and "anecdotes" in section


def test_the_protocol_counts_the_rows_each_k_used_from_the_runs(study):
    protocol = (study / "report.md").read_text().split("## Protocol")[1].split("\n## ")[0]
    assert "| 1 | 1 | 1 | 2 | 6 | – |" in protocol
    assert "the images labelled at K = 1 are among those at K = 5" in protocol  # the study's own K values
    short = next(line for line in protocol.splitlines() if line.startswith("| 5 |"))
    assert short.startswith("| 5 | 4 | 1 | 5 | 15 |") and "Sample species 1 (4)" in short  # clamped, named
    glossary = (study / "report.md").read_text().split("## Glossary")[1].split("\n## ")[0]
    assert "Validation: 3 images (1 per class), so validation top-1 moves in steps of 33.3 points" in glossary


def test_the_html_is_one_offline_file_for_screens_and_print(study):
    page = (study / "report.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.count("<thead>") == page.count("<table>") >= 5 and "thead{display:table-header-group}" in page
    assert not re.search(r'<img[^>]+src="(?!data:image/png;base64,)', page)  # every picture embedded
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from anywhere
    for link in ("sweep/runs.csv", "sweep/summary.csv", "commands.sh", "per_class.csv"):
        assert f'href="{link}"' in page and (study / link).is_file()
    runs = len(selected(study / "sweep"))
    assert page.count('<div class="pair">') == runs and page.count("<figure>") == runs + 1  # + label efficiency
    for href in re.findall(r'href="([^"]+\.png)"', page):
        assert (study / href).is_file(), href


def test_a_t_interval_over_two_seeds_is_said_to_be_impossible_everywhere(study, tmp_path):
    """The same study with interval = "t": no bounds anywhere, the answer and summary.md say why."""
    out = tmp_path / "t"
    shutil.copytree(study, out)
    spec = tmp_path / "t.toml"
    spec.write_text((study.parent / "s.toml").read_text().replace(str(study), str(out))
                    .replace("val_per_class = 1", 'val_per_class = 1\ninterval = "t"'))
    run_study(str(spec), None)
    report = (out / "report.md").read_text()
    _header, rows, _line = answer_table(report)
    assert any("(interval cannot be computed: t over 2 seeds)" in c for aux in NAMED for c in rows[method_key(aux)])
    assert "✱" not in report.split("## Glossary")[0].split("| n: seeds")[0].split("| chance")[1]
    assert "a t interval cannot be computed" in report
    summary = (out / "sweep" / "summary.md").read_text()
    assert "t over 2 seeds: cannot be computed (needs at least 3 seeds)" in summary
    assert {r["interval"] for r in csv.DictReader(open(out / "sweep" / "summary.csv"))} == {"t"}
    assert report_intervals(report).keys() == summary_intervals(summary).keys()


def test_setup_says_what_each_stage_took_beside_what_the_plan_said(study):
    """study.json's stage_planned (the plan's seconds) is printed beside the seconds the stage took."""
    from study.report.facts import fmt_time

    state = json.loads((study / "study.json").read_text())
    line = next(s for s in (study / "report.md").read_text().splitlines() if s.startswith("- Time per stage"))
    took, planned = state["stage_seconds"], state["stage_planned"]
    assert planned.get("sweep"), planned
    assert state["stage_planned_by"]["sweep"] == "quick"  # no `study --plan` ran before this study
    assert f"sweep {fmt_time(took['sweep'])} (planned {fmt_time(planned['sweep'])} by the quick calibration)" in line


def test_every_heading_has_an_anchor_and_the_page_a_table_of_contents(study):
    page = (study / "report.html").read_text()
    headings = re.findall(r"<h([123])( id=\"[^\"]+\")?>", page)
    assert headings and all(ident for _level, ident in headings)  # every heading has an id
    ids = re.findall(r'<h[123] id="([^"]+)">', page)
    assert len(ids) == len(set(ids)) and "glossary" in ids and "power" in ids
    toc = re.search(r'<nav class="toc">(.*?)</nav>', page).group(1)
    assert set(re.findall(r'href="#([^"]+)"', toc)) == set(re.findall(r'<h2 id="([^"]+)">', page))
    assert page.index('<nav class="toc">') < page.index('<h2 id="answer">')
    assert 'Terms: <a href="#glossary">Glossary</a>' in page
    assert "Terms: [Glossary](#glossary)" in (study / "report.md").read_text()


def test_health_power_sizes_and_gaps_are_stated_even_when_nothing_is_wrong(study):
    """Health is said when every run learned; every comparison states its size and its MDE; each method's gap to the
    strongest head at each K; none is 'none (MLP)', never a bare word an empty cell could be read as."""
    report = (study / "report.md").read_text()
    answer = report.split("## Answer")[1].split("\n## ")[0]
    runs = sum(len(e["runs"]) for e in selected(study / "sweep").values())
    sick = sum(h != "ok" for e in selected(study / "sweep").values() for h in e.get("health") or [])
    assert (f"**Health**: ok, {runs} of {runs} selected runs" in answer if not sick
            else f"**Health**: {runs - sick} of {runs} selected runs ok" in answer)
    for line in (x for x in answer.splitlines() if x.startswith("- **") and " vs its baseline " in x):
        for part in line.split(": ", 1)[1].split("; "):  # each K: the size, in points, whatever the interval says
            assert re.search(r"at K = \w+: (better|worse) by \d+\.\d\d points|at K = \w+: [+-]\d+\.\d\d points|"
                             r"not an effect|no \S+ run", part), part
    assert "**Gap to the strongest head**" in answer and "- K = all: strongest " in answer
    power = report.split("## Power")[1].split("\n## ")[0]
    assert "| none (MLP) vs linear |" in power and "| pirl vs none (MLP) |" in power and "MDE " in power
    assert "Seeds were not grown" in power and "never the observed difference" in power
    summary = (study / "sweep" / "summary.md").read_text()
    assert "MDE (points, 80% power) | seeds for 1 point |" in summary and "Health: " in summary
    gains = report.split("## Per-class changes")[1].split("\n## ")[0]
    assert "| none |" not in gains and "| none (MLP) vs linear |" in gains


def test_under_trained_runs_are_named_with_the_reason_and_the_remedy():
    """The health line names each method and K whose selected runs are under-trained, says why and what to do."""
    from types import SimpleNamespace

    from study.report.answer import under_trained_text

    entries = [SimpleNamespace(aux="none", k=None, run_health=["under-trained", "ok"]),
               SimpleNamespace(aux="dcl", k=5, run_health=["ok", "ok"])]
    text = under_trained_text(SimpleNamespace(entries=entries, spec=SimpleNamespace(epochs=40)))
    assert "none (MLP) at K = all in 1 of 2 seeds." in text and "dcl" not in text
    assert "last of its 40 epochs" in text and "3% or more" in text and "[heads] epochs" in text
    healthy = SimpleNamespace(entries=entries[1:], spec=SimpleNamespace(epochs=40))
    assert under_trained_text(healthy) == ""
