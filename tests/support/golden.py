"""The numbers a study's files state, gathered for a before/after comparison (issue 35: a restructuring leaves a
fixed study's runs.csv, summary and report numbers unchanged).

`study_numbers(study_dir)` reads sweep/runs.csv (every column but the wall time), sweep/summary.csv and every
number of report.md from its Answer to its Setup (the results, power, per-class and protocol sections; the
setup's software versions and times are left out). `compare(found, golden)` lists the differences: text must be
equal; a number within `tolerance` of the golden one (accuracies move in steps of one test image, and float
arithmetic differs between CPUs, so the default allows 1e-6, and a test may pass a wider one).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
TIMED = ("seconds",)  # runs.csv's wall time: it differs on every run


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def report_numbers(report: Path) -> list[list[str]]:
    """Each line's numbers, from '## Answer' up to '## Setup' (lines without numbers left out)."""
    text = report.read_text()
    start, end = text.index("\n## Answer"), text.index("\n## Setup")
    return [NUMBER.findall(line) for line in text[start:end].splitlines() if NUMBER.search(line)]


def study_numbers(study_dir: Path) -> dict[str, Any]:
    sweep = study_dir / "sweep"
    runs = sorted(({k: v for k, v in r.items() if k not in TIMED} for r in rows(sweep / "runs.csv")),
                  key=lambda r: r["run_dir"])
    return {"runs.csv": runs, "summary.csv": rows(sweep / "summary.csv"),
            "report.md": report_numbers(study_dir / "report.md")}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def compare(found: Any, golden: Any, tolerance: float = 1e-6, where: str = "") -> list[str]:
    """The places where `found` differs from `golden` (empty: the same numbers)."""
    if isinstance(golden, dict):
        if not isinstance(found, dict) or set(found) != set(golden):
            return [f"{where or 'the top'}: keys {sorted(found) if isinstance(found, dict) else found} != {sorted(golden)}"]
        return [d for k in golden for d in compare(found[k], golden[k], tolerance, f"{where}.{k}" if where else k)]
    if isinstance(golden, list):
        if not isinstance(found, list) or len(found) != len(golden):
            return [f"{where}: {len(found) if isinstance(found, list) else found} items != {len(golden)}"]
        return [d for i, (a, b) in enumerate(zip(found, golden)) for d in compare(a, b, tolerance, f"{where}[{i}]")]
    a, b = _number(str(found)), _number(str(golden))
    if a is not None and b is not None:
        return [] if abs(a - b) <= tolerance else [f"{where}: {found} != {golden}"]
    return [] if found == golden else [f"{where}: {found!r} != {golden!r}"]


def write_golden(study_dir: Path, out: Path) -> None:
    out.write_text(json.dumps(study_numbers(study_dir), indent=1) + "\n")
