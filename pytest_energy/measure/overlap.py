"""Notice when measurements overlap, and share a session's energy between xdist workers.

Every counter the meters read (GPU, CPU package, DRAM, CodeCarbon's machine mode) is
machine-wide, so work running beside a test is counted in its figure. A session holds
a lock file in the machine's state directory (``state_directory``: ``/dev/shm`` or
``/run/lock``, whatever ``TMPDIR`` says, so sessions of other users and other temp
directories find it) while it measures; a second session that finds it held warns that
both sessions' figures overlap. Every measuring process (xdist worker or not) also lists
its open windows in one small file there (``Activity``), so a baseline can tell whether
any other process measured while it ran. ``SharedTotal`` is the energy a whole xdist
session has spent, which its workers add to after each test and at each live check.
Both files are read and written under a lock on the file (``flock``; a ``filelock.FileLock``
where there is none), waited for at most ``LOCK_WAIT_S``: a holder that never lets go
costs a fraction of a second once, then the caller stops using the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional

LOCK_NAME = "pytest-energy-machine.lock"
ACTIVITY_NAME = "pytest-energy-activity.json"
LOCK_WAIT_S = 0.25  # a lock is held for well under a millisecond: one held longer is stuck
STATE_DIR_ENV = "PYTEST_ENERGY_STATE_DIR"
MACHINE_DIRS = ("/dev/shm", "/run/lock")  # the same for every process of the machine (or container), any TMPDIR
MAX_STATE_BYTES = 2**20  # the activity file lists open windows: a few hundred bytes each
STALE_WINDOW_S = 24 * 3600.0  # where a process cannot be asked whether it lives (Windows), its windows expire


def state_directory() -> Path:
    """Where the machine-wide files live: ``$PYTEST_ENERGY_STATE_DIR``, else the first writable of
    ``MACHINE_DIRS``, else the temp directory (Windows, or a system without them)."""
    override = os.environ.get(STATE_DIR_ENV, "").strip()
    if override:
        return Path(override)
    for candidate in MACHINE_DIRS:
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path(tempfile.gettempdir())


def _open_shared(path: Path) -> int:
    """Open (or create, readable and writable by every user) a file other users' sessions share.

    An existing file is opened without ``O_CREAT``: in a sticky world-writable directory
    (``/dev/shm``) Linux refuses ``O_CREAT`` on another user's file (``fs.protected_regular``).
    """
    flags = os.O_RDWR | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)  # a fifo or device must not block
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        pass
    try:
        descriptor = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:  # another process created it meanwhile
        return os.open(path, flags)
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, 0o666)  # whatever the umask: other users' sessions use it too
    return descriptor


@contextlib.contextmanager
def _exclusive(path: Path, descriptor: int, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on the open file ``path``: ``flock`` on it where POSIX has one, else a
    ``filelock.FileLock`` beside it. Raises ``OSError`` when it stays held for ``wait_s``.

    ``flock`` costs a system call (about 0.1 ms for a measured test's window open and close,
    where a ``FileLock`` took about 1 ms), and the kernel releases it if the holder dies.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        import filelock

        try:
            lock = filelock.FileLock(f"{path}.lock", timeout=wait_s, mode=0o666)
            lock.acquire()
        except filelock.Timeout:
            raise TimeoutError(f"{path} stayed locked for {wait_s:g} s") from None
        try:
            yield
        finally:
            lock.release()
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} stayed locked for {wait_s:g} s") from None
            time.sleep(0.001)
    try:
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked_json(path: Path, empty: Dict[str, Any], wait_s: float = LOCK_WAIT_S) -> Iterator[Dict[str, Any]]:
    """The JSON object in ``path`` (``empty`` when missing or unreadable), written back on leaving if changed.

    Every reader takes the lock too, so the file is rewritten in place: no truncating
    open and no rename, which ext4 flushes to disk (milliseconds per measured test).
    Raises ``OSError`` when the file cannot be used.
    """
    descriptor = _open_shared(path)
    with os.fdopen(descriptor, "r+b") as handle, _exclusive(path, descriptor, wait_s):
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # a fifo would block the read, a device never end
            raise OSError(f"{path} is not a regular file")
        text = handle.read(MAX_STATE_BYTES + 1)
        if len(text) > MAX_STATE_BYTES:  # not a state this file holds: start afresh
            text = b""
        try:
            state = json.loads(text)
        except ValueError:
            state = None
        if not isinstance(state, dict) or set(state) != set(empty):
            state = json.loads(json.dumps(empty))
        yield state
        new_text = json.dumps(state).encode("utf-8")
        if new_text != text:
            handle.seek(0)
            handle.write(new_text)
            handle.truncate()
            handle.flush()  # before the lock is released


def _alive(pid: object, started: object) -> bool:
    """Whether the process that opened a window still runs (so its window may still be open)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(started, (int, float)):
        return False
    if not 0 < pid < 2**31:  # 0 and -1 name groups of processes, a huge number overflows kill()
        return False
    if os.name == "nt":  # os.kill(pid, 0) would stop the process there
        return time.time() - started < STALE_WINDOW_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


@dataclasses.dataclass(frozen=True)
class ActivityMark:
    """What ``Activity.mark`` saw at the start of an interval."""

    opened: int  # windows opened on the machine so far
    own_opened: int  # of which this process opened
    others_active: bool


class Activity:
    """The measurement windows open on this machine, in a file every pytest-energy process shares.

    The file counts every window ever opened and lists the open ones with their process,
    so an interval (a baseline's measurement) overlapped another process's window when
    one was open at its start or its end, or one was opened during it.
    """

    def __init__(self, directory: Optional[Path] = None):
        self.path = Path(directory or state_directory()) / ACTIVITY_NAME
        self._own_opened = 0

    def _state(self) -> "contextlib.AbstractContextManager[Dict[str, Any]]":
        return _locked_json(self.path, {"opened": 0, "active": {}})

    def open_window(self) -> str:
        """Register a window of this process; returns its key for ``close_window``."""
        with self._state() as state:
            opened = state["opened"] if isinstance(state["opened"], int) else 0
            state["opened"] = opened + 1
            self._own_opened += 1
            key = f"{os.getpid()}-{self._own_opened}"
            active = state["active"] if isinstance(state["active"], dict) else {}
            state["active"] = {**self._live(active), key: [os.getpid(), time.time()]}
        return key

    def close_window(self, key: str) -> None:
        with self._state() as state:
            active = state["active"] if isinstance(state["active"], dict) else {}
            state["active"] = {name: window for name, window in self._live(active).items() if name != key}

    def mark(self) -> ActivityMark:
        """The start of an interval that ``overlapped_since`` checks."""
        with self._state() as state:
            opened = state["opened"] if isinstance(state["opened"], int) else 0
            return ActivityMark(opened, self._own_opened, self._others_active(state))

    def overlapped_since(self, mark: ActivityMark) -> bool:
        """Whether another process's window was open at any time since ``mark``."""
        with self._state() as state:
            opened = state["opened"] if isinstance(state["opened"], int) else 0
            opened_by_others = (opened - mark.opened) - (self._own_opened - mark.own_opened)
            return mark.others_active or opened_by_others > 0 or self._others_active(state)

    def _others_active(self, state: Dict[str, Any]) -> bool:
        active = state["active"] if isinstance(state["active"], dict) else {}
        return any(window[0] != os.getpid() for window in self._live(active).values())

    @staticmethod
    def _live(active: Dict[str, Any]) -> Dict[str, Any]:
        return {key: window for key, window in active.items()
                if isinstance(window, list) and len(window) == 2 and _alive(*window)}


def _joules(value: object) -> float:
    """``value`` as a float; NaN when it is not a number or too large for one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.nan


class SharedTotal:
    """The joules a whole xdist session has spent so far: its workers add to one file in turn."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def add(self, energy_j: float) -> float:
        """Add ``energy_j`` (0 to read); returns the session's total. Raises ``OSError`` if the file is unusable."""
        with _locked_json(self.path, {"energy_j": 0.0}) as state:
            total = _joules(state["energy_j"])
            if not 0 <= total < math.inf:
                total = 0.0  # not a total this session wrote (NaN, infinite, negative): count afresh
            state["energy_j"] = total + energy_j
            return float(state["energy_j"])


class _HeldLock:
    """A ``flock`` held on an open file until ``release`` closes it (the kernel also lets go if the process dies)."""

    def __init__(self, descriptor: int):
        self._descriptor: Optional[int] = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


MACHINE_BUSY = ("another pytest-energy session is measuring on this machine: counters are machine-wide, so both "
                "sessions' figures (GPU, CPU, RAM) include each other's work")


def claim_machine(directory: Optional[Path] = None) -> "tuple[Optional[object], Optional[str]]":
    """Take the machine lock; returns ``(lock, None)``, or ``(None, warning)`` if another session holds it."""
    path = Path(directory or state_directory()) / LOCK_NAME
    try:
        try:
            import fcntl
        except ImportError:  # Windows
            import filelock

            lock = filelock.FileLock(str(path), timeout=0, mode=0o666)
            try:
                lock.acquire()
            except filelock.Timeout:
                return None, MACHINE_BUSY
            return lock, None
        descriptor = _open_shared(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException as exc:
            os.close(descriptor)
            if isinstance(exc, BlockingIOError):
                return None, MACHINE_BUSY
            raise
        return _HeldLock(descriptor), None
    except OSError as exc:
        return None, f"cannot tell whether another pytest-energy session is measuring ({path}: {exc})"


def overlap_warning(workers: Iterable[str]) -> Optional[str]:
    """A warning when tests were measured by several xdist workers at once."""
    names = sorted(set(workers))
    if len(names) < 2:
        return None
    return (
        f"{len(names)} xdist workers measured tests concurrently: counters are machine-wide, so a test's "
        "figure includes work of tests running beside it on the same GPU and CPU, and the totals over-count; "
        "run measured tests with -n 0 (or -p no:xdist) for per-test figures"
    )
