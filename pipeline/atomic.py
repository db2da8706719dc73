"""New files appear complete or not at all: build under a temporary name beside the target, then rename.

`os.replace` within one directory is atomic, so a reader (or a rerun after a kill) sees either the
old file, or nothing, or the finished new one — never a half-built file at the real name.
Temporary names are `.<name>.tmp-<random>` in the target's directory; one left by a killed process
is removed by `remove_stale_temporaries(path)`, which a writer calls while it holds the output's
lock (`pipeline.locks.lock_output`), so it can never remove another live writer's file.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from pathlib import Path
from typing import Iterator

TEMP_TAG = ".tmp-"


def _prefix(path: Path) -> str:
    return f".{path.name}{TEMP_TAG}"


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files of `path` (as made by `created_atomically`) present in its directory."""
    path = Path(path)
    return sorted(Path(p) for p in glob.glob(os.path.join(glob.escape(str(path.parent)), glob.escape(_prefix(path)) + "*")))


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove what a killed writer of `path` left behind; call only while holding `path`'s lock."""
    removed = []
    for p in stale_temporaries(path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_temporary(path: Path) -> Path:
    # not tempfile.mkstemp: its 0600 mode would survive the rename; this keeps the umask's default
    while True:
        tmp = path.parent / f"{_prefix(path)}{secrets.token_hex(4)}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def created_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; if the block succeeds, rename it onto `path`.

    The block writes the whole file to the yielded path (and closes it). On success the file is
    flushed to disk and renamed over `path`, replacing a file there; on any error it is removed and
    `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # durability of the rename itself; not all filesystems allow it
        _fsync_path(path.parent, directory=True)
