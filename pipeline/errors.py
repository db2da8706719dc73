"""One exception type for bad input; command-line entry points print it as one line and exit 2."""

from __future__ import annotations

import errno

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
    """Run a click command so that any usage error or PipelineError is one `error:` line and exit 2.

    Click's own errors are told by their interface, so this contract module never imports click: a
    ClickException has `format_message()`; click's Abort (Ctrl-C at a prompt) is named Abort.
    """
    try:
        rc = command.main(args=args, standalone_mode=False)
    except PipelineError as e:
        fail(e)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # one not met where its bytes were written: still one line
            fail(f"{e.filename or 'a file being written'}: out of disk space ({e.strerror}); free some space and "
                 "rerun the same command")
        raise
    except Exception as e:
        if hasattr(e, "format_message"):
            fail(e.format_message())
        if type(e).__name__ == "Abort":
            fail("aborted")
        raise
    raise SystemExit(rc if isinstance(rc, int) else 0)
