"""One writer per output file: an exclusive lock held for the whole time a file is being written.

The lock is `fcntl.flock` on a sidecar file `<output>.lock` in the output's directory. The kernel
drops a flock when its holder exits in any way (including SIGKILL), so a lock file left behind by a
killed process never blocks a rerun: the next writer simply takes it over. A second writer does not
wait: it fails at once with a PipelineError naming the file and the other writer's pid. The holder
removes the sidecar when it releases the lock.

Within one process the lock is re-entrant (counted per output path), so a command may take it early
(to fail before any slow start-up) and a writer such as `pipeline.cache.CacheWriter` may take it
again for the same file.

Usable for any output (a cache, a shard, a merged file):

    with lock_output(path, what="extraction"):
        ...  # create, resume or replace `path`
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError

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


def lock_output(path: str | os.PathLike, what: str = "extraction") -> OutputLock:
    """Take the exclusive write lock of `path` (creating its directory if needed) or raise PipelineError.

    `what` names the kind of writer in the lock file and in the message another process gets.
    Errors: the directory cannot be created or written (one line naming it), or another process
    holds the lock (one line naming the file and that process's pid).
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
            try:
                fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise PipelineError(f"{path}: cannot write in {lock_file.parent} ({e.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise PipelineError(
                        f"{path}: another {what} ({_holder(lock_file)}) is writing this file; wait for it to end, "
                        "or stop it and rerun to resume (the file is left as it is)"
                    ) from None
                if e.errno in _NO_LOCKS:  # e.g. some network filesystems: proceed unprotected
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
