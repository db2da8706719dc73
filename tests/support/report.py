"""Reading a report's tables in tests: a method's row, with or without its health marker (heads.training.health)."""

from __future__ import annotations


def method_row(text: str, aux: str) -> str:
    """The first table row of `text` for method `aux`: '| aux | ...' or '| aux (did not learn: ...) | ...' (the
    report names none 'none (MLP)')."""
    name = "none (MLP)" if aux == "none" else aux
    return next(line for line in text.splitlines()
                if line.startswith(f"| {name} |") or line.startswith(f"| {name} (did not learn"))
