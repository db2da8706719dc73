"""The progress line a stage-1 process prints for its caller (`extract-features --progress-lines`, read by `study`):
one source for its text, so the writer and the reader cannot drift."""

from __future__ import annotations

import re

PREFIX = "progress rows"
EVERY_S = 1.0  # at most one line this often (and one at the end)
_LINE = re.compile(rf"^{PREFIX} (\d+)/(\d+)$")


def progress_line(done: int, total: int) -> str:
    """'progress rows 128/5994': rows computed of the rows this process has to compute."""
    return f"{PREFIX} {done}/{total}"


def parse_progress_line(line: str) -> tuple[int, int] | None:
    """(done, total) of a progress line; None for any other line."""
    match = _LINE.match(line.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None
