"""The one atomic writer and the one bounded reader of the plugin's files.

Every write replaces the file in one step (a temporary file beside the target, then a
rename), through symlinks, and refuses a target that is not a regular file. Every read of
a file another process or person may have put there (stored runs, baseline cache entries,
trend inputs) opens it without blocking, refuses anything but a regular file (a fifo would
hang the run, a device never ends) and reads at most a given number of bytes. A session
holds a lock beside the report it writes (``claim_report``), so two sessions never replace
each other's report.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping


class NotARegularFileError(OSError):
    """A report or cache path that exists and is a directory, device, fifo or socket."""


class TooLargeError(OSError):
    """A file read back that is larger than such a file can honestly be."""


KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in KINDS if test(mode)), "not a file")


def read_bytes_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (through symlinks), never blocking on a fifo or device.

    Raises ``OSError`` saying why it cannot be read: absent, a symlink loop, not a regular
    file, or larger than ``max_bytes``.
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFileError(f"{path} is {_kind(mode)}, not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLargeError(f"{path} is larger than {max_bytes} bytes, the most read from such a file")
    return data


class ReportInUseError(OSError):
    """Another session holds the lock of the report this one would write."""


class ReportLock:
    """The lock a session holds on its report: ``.<name>.lock`` beside it, removed on release."""

    def __init__(self, path: Path, descriptor: int):
        self.path, self._descriptor = path, descriptor

    def release(self) -> None:
        if self._descriptor < 0:
            return
        try:
            os.unlink(self.path)  # while still holding it: a session waiting on this file tries the new one
        except OSError:
            pass
        os.close(self._descriptor)
        self._descriptor = -1


def claim_report(path: str | os.PathLike) -> Any:
    """Hold the lock of the report at ``path`` for this session; None where it cannot be made (writing will say why).

    Raises ``ReportInUseError`` when another session holds it: two sessions writing one
    report would each replace the other's file, and one session's tests would silently vanish.
    The lock is ``flock`` on ``.<name>.lock`` beside the report (the kernel drops it when the
    holder dies), a ``filelock.FileLock`` where there is no ``flock``.
    """
    target = Path(os.path.realpath(path))
    lock_path = target.parent / f".{target.name}.lock"
    try:
        import fcntl
    except ImportError:  # Windows
        import filelock

        lock = filelock.FileLock(str(lock_path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise ReportInUseError(f"another pytest session is writing {path} (it holds {lock_path})") from None
        except OSError:
            return None
        return lock
    while True:
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)  # the report's directory, made now rather than later
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o666)
        except OSError:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if isinstance(error, BlockingIOError):
                raise ReportInUseError(f"another pytest session is writing {path} (it holds {lock_path})") from None
            return None
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(lock_path))
        except OSError:  # removed by its holder between open and lock: take the new one
            same = False
        if same:
            return ReportLock(lock_path, descriptor)
        os.close(descriptor)


def regular_file_target(path: str | os.PathLike) -> Path:
    """Where writing ``path`` lands: the final target of a symlink chain, which must be a regular file or absent."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except OSError:  # absent, or unreachable: writing it will say why
        return target
    if not stat.S_ISREG(mode):
        kind = _kind(mode)
        shown = f"{path} (-> {target})" if str(target) != os.path.abspath(path) else str(path)
        raise NotARegularFileError(f"{shown} is {kind}, not a regular file")
    return target


def write_text_atomically(path: str | os.PathLike, text: str, durable: bool = False) -> None:
    """Replace the file at ``path`` (through symlinks) with ``text`` in one step, with an ordinary file's mode.

    Raises NotARegularFileError if it is not a file, OSError if the directory is
    unwritable. ``durable`` also flushes the file to disk before the rename.
    """
    write_bytes_atomically(path, text.encode("utf-8"), durable)


def write_bytes_atomically(path: str | os.PathLike, data: bytes, durable: bool = False) -> None:
    """``write_text_atomically`` for bytes (a plot)."""
    target = regular_file_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp"
    # created 0666 less the umask, like any file the user writes (mkstemp would make it private)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_atomically(path: str | os.PathLike, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document`` as indented JSON in one step (see ``write_text_atomically``)."""
    write_text_atomically(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
