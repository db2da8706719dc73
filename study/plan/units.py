"""Numbers as a study prints them: bytes, seconds, counts of bytes per kind."""

from __future__ import annotations


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def describe_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {fmt_bytes(v)}" for k, v in kinds.items() if v)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "not estimated"
    s = float(s)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
