"""Crash-safe file output, for every writer of the house (caches, shards, runs, sweeps, reports).

Two tools, one module:
- Atomic creation: build a file under a temporary name beside the target, then rename it into place
  (`created_atomically`, or `write_atomically(path, bytes_or_text)` for small files). `os.replace`
  within one directory is atomic, so a reader (or a rerun after a kill) sees the old file, nothing,
  or the finished new one, never a half-built file at the real name. Temporary names are
  `.<name>.tmp-<random>`; one left by a killed process is removed by `remove_stale_temporaries(path)`,
  which a writer calls while it holds the output's lock, so it never removes a live writer's file.
- One writer per output (`lock_output`): `fcntl.flock` on a sidecar `<output>.lock`. The kernel drops
  a flock when its holder exits in any way (SIGKILL included), so a lock file left behind never blocks
  a rerun. A second writer fails at once with a PipelineError naming the file and the holder's pid.
  Within one process the lock is re-entrant (counted per output path), so a command may take it early
  (to fail before a slow start-up) and a writer such as `pipeline.writer.CacheWriter` take it again.

    with lock_output(path, what="extraction"):
        ...  # create, resume or replace `path`
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import secrets
import shutil
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import PipelineError

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


def remove_stale_temporaries_under(directory: str | os.PathLike) -> list[Path]:
    """Remove every temporary of `created_atomically` under `directory` (a kill left them); call only while holding
    the lock of everything written there (a study's, on its directory)."""
    removed = []
    for p in sorted(Path(directory).rglob(f".*{TEMP_TAG}*")):
        if p.is_file():
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


class DiskFull(PipelineError):
    """A write failed for want of space: one line naming the file, the bytes needed (when known) and free."""

    path: Path | None = None  # the file it could not write


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is the disk (or quota) running out, as an OSError or as HDF5's own message of one."""
    if isinstance(error, DiskFull):
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "errno = 28" in text or "Disk quota exceeded" in text


def disk_full(path: str | os.PathLike, need: int | None = None, what: str = "writing it") -> DiskFull:
    """The one line for a full disk while writing `path`: the bytes needed (when known) and free there."""
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where if where.is_dir() else where.parent).free
    needs = f"needs about {need:,} bytes, " if need else ""
    error = DiskFull(f"{path}: out of disk space while {what} ({needs}{free:,} bytes free on its filesystem); free "
                     "some space and rerun the same command")
    error.path = Path(path)
    return error


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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_disk_full(e):
            raise disk_full(path) from None
        raise
    with contextlib.suppress(OSError):  # durability of the rename itself; not all filesystems allow it
        _fsync_path(path.parent, directory=True)


def write_atomically(path: str | os.PathLike, content: bytes | str) -> Path:
    """Write `content` (text as UTF-8) to `path` under a temporary name and rename it into place."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    with created_atomically(path) as tmp:
        tmp.write_bytes(data)
    return path

LOCK_SUFFIX = ".lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}


def lock_path_for(path: str | os.PathLike) -> Path:
    """The sidecar lock file of an output: `<output>.lock` beside the (symlink-resolved) output."""
    resolved = Path(path).resolve()
    return resolved.with_name(resolved.name + LOCK_SUFFIX)


def _holder(lock_file: Path) -> str:
    """'pid 1234' (plus the host when it is not this one) from a lock file, or 'pid unknown'."""
    try:
        fields = dict(part.split("=", 1) for part in lock_file.read_text().split() if "=" in part)
    except (OSError, ValueError, UnicodeDecodeError):
        return "pid unknown"
    pid, host = fields.get("pid", "unknown"), fields.get("host", "")
    return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


@dataclass
class OutputLock:
    """A held lock on one output file. `release()` (or leaving the `with` block) gives it up."""

    path: Path  # the output, as the caller named it
    lock_file: Path
    locked: bool = True  # False where the filesystem offers no locks (then nothing is enforced)
    _key: str = field(default="", repr=False)

    def release(self) -> None:
        if self._key:
            _release(self._key)
            self._key = ""

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[str, _Held] = {}
_guard = threading.Lock()
_warned: set[str] = set()  # outputs already warned of a filesystem without locks


def lock_output(path: str | os.PathLike, what: str = "extraction", names: str | os.PathLike | None = None) -> OutputLock:
    """Take the exclusive write lock of `path` (creating its directory if needed) or raise PipelineError.

    `what` names the kind of writer in the lock file and in the message another process gets; `names`, the file
    that message names (default `path`: a study's own lock on a cache it extracts names the cache).
    Errors: the directory cannot be created or written (OutputNotWritable, one line naming it), or
    another process holds the lock (one line naming the file and that process's pid). Reading needs
    no lock: a complete file in a read-only directory is read (and found complete) without one.
    """
    path = Path(path)
    lock_file = lock_path_for(path)
    key = str(lock_file)
    with _guard:
        held = _held.get(key)
        if held is not None:  # re-entrant within this process
            held.count += 1
            return OutputLock(path, lock_file, True, key)
        try:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PipelineError(f"{path}: cannot create the directory {lock_file.parent} ({e.strerror})") from None
        while True:
            fd = _open_lock_file(path, lock_file)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise PipelineError(
                        f"{names or path}: another {what} ({_holder(lock_file)}) is writing this file; wait for it to "
                        "end, or stop it and rerun to resume (the file is left as it is)"
                    ) from None
                if e.errno in _NO_LOCKS:  # e.g. some network filesystems: proceed unprotected, and say so
                    _warn_unlocked(path, lock_file)
                    return OutputLock(path, lock_file, locked=False)
                raise PipelineError(f"{path}: cannot lock {lock_file} ({e.strerror})") from None
            # The previous holder may have removed the file between our open and our flock: then
            # we hold a lock on an unlinked inode that nobody else can see; start again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_file))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid={os.getpid()} host={socket.gethostname()} what={what} "
                     f"command={Path(sys.argv[0]).name or 'python'}\n".encode())
        _held[key] = _Held(fd, 1)
        return OutputLock(path, lock_file, True, key)


class OutputNotWritable(PipelineError):
    """The output's directory cannot be written (read-only, or no permission): no lock can be taken there."""


def _open_lock_file(path: Path, lock_file: Path) -> int:
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputNotWritable(f"{path}: cannot write in {lock_file.parent} ({e.strerror})") from None


def _warn_unlocked(path: Path, lock_file: Path) -> None:
    """One warning line per output and process: its filesystem cannot enforce one writer."""
    if str(lock_file) in _warned:
        return
    _warned.add(str(lock_file))
    print(f"warning: {path}: the filesystem of {lock_file.parent} offers no file locks (flock); nothing stops "
          "a second writer of this file, so run one at a time", file=sys.stderr, flush=True)


def _release(key: str) -> None:
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count:
            return
        del _held[key]
        try:
            os.unlink(key)  # while still holding the lock, so no one can lock the old inode after us
        except FileNotFoundError:
            pass
        os.close(held.fd)
