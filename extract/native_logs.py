"""Keep native (C/C++) stderr lines of TensorFlow and libjpeg off the user's terminal.

TensorFlow prints start-up lines ("All log messages before absl::InitializeLog() ...", the oneDNN
notice, "Could not find cuda drivers", "failed call to cuInit") from C++ straight to file
descriptor 2, before Python's logging exists, so no Python setting removes them; libjpeg prints
"Premature end of JPEG data" and the like the same way when an image is damaged. While
`native_stderr_hidden()` is active, fd 2 points at a private temporary file and Python's own
`sys.stderr` (progress bars, messages) is re-pointed at the real terminal, so only native writes
are held back. They are shown after all if the block fails with an unexpected exception (a failed
TensorFlow import, a crash inside TensorFlow), and never otherwise.

`extract-features --verbose`, or the environment variable EXTRACT_FEATURES_VERBOSE=1, shows them
as they come (and lowers TF_CPP_MIN_LOG_LEVEL to 0 unless the user set it). Imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Iterator

VERBOSE_ENV = "EXTRACT_FEATURES_VERBOSE"


def _expected(error: BaseException | None) -> bool:
    """Errors that already say everything the user needs (our one-line errors, Ctrl-C, exit)."""
    if error is None:
        return True
    from pipeline.errors import PipelineError

    try:
        import click

        clean: tuple[type[BaseException], ...] = (PipelineError, SystemExit, KeyboardInterrupt, click.ClickException)
    except ImportError:  # pragma: no cover - click is a dependency
        clean = (PipelineError, SystemExit, KeyboardInterrupt)
    return isinstance(error, clean)


def _fd2_backs_sys_stderr() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # replaced by a capture object (pytest's capsys...)
        return False


@contextlib.contextmanager
def native_stderr_hidden(hide: bool = True) -> Iterator[None]:
    """Hold back native writes to fd 2 for the duration of the block (see the module docstring)."""
    if not hide:
        from . import USER_TF_LOG_LEVEL

        if USER_TF_LOG_LEVEL is None and "tensorflow" not in sys.modules:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        yield
        return
    sys.stderr.flush()
    real_fd = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    python_stderr = sys.stderr
    if _fd2_backs_sys_stderr():
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(real_fd), "wb", buffering=0),
                                      encoding=python_stderr.encoding, errors="backslashreplace",
                                      line_buffering=True, write_through=True)
    failure: BaseException | None = None
    try:
        yield
    except BaseException as e:
        failure = e
        raise
    finally:
        if failure is None:  # a click Context closing its resources may not pass the exception in
            failure = sys.exc_info()[1]
        if sys.stderr is not python_stderr:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(real_fd, 2)
        os.close(real_fd)
        if not _expected(failure):
            held.seek(0)
            text = held.read()
            if text:
                python_stderr.flush()
                with os.fdopen(os.dup(2), "wb") as out:
                    out.write(b"[native stderr held back until this failure]\n" + text)
        held.close()
