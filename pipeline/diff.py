"""A generic comparison of two nested dicts, used by both stages (cache resume, merge, sweep resume)."""

from __future__ import annotations

from typing import Any


def diff_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "",
              labels: tuple[str, str] = ("in the file", "asked for")) -> list[str]:
    """Names of the keys whose values differ (nested dicts compared key by key), each with both values."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_keys(va, vb, f"{prefix}{key}.", labels)
        elif va != vb:
            out.append(f"{prefix}{key} ({va!r} {labels[0]}, {vb!r} {labels[1]})")
    return out
