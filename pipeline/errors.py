"""One exception type for bad input; command-line entry points print it as one line and exit 2."""

from __future__ import annotations

import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2


class PipelineError(Exception):
    """Bad input the user can fix: a missing or malformed file, a wrong option, a mismatched cache."""


def fail(message: object) -> NoReturn:
    """Print `error: <message>` on stderr and exit with code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def run_cli(command, args: list[str] | None = None) -> None:
    """Run a click command so that any usage error or PipelineError is one `error:` line and exit 2."""
    import click

    try:
        rc = command.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted")
    except click.ClickException as e:
        fail(e.format_message())
    except PipelineError as e:
        fail(e)
    raise SystemExit(rc if isinstance(rc, int) else 0)
