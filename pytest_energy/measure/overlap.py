"""Notice when measurements overlap, and share a session's energy between xdist workers.

Every counter the meters read (GPU, CPU package, DRAM, CodeCarbon's machine mode) is
machine-wide, so work running beside a test is counted in its figure. A session holds
a lock file in the temp directory while it measures; a second session that finds it
held warns that both sessions' figures overlap. Every measuring process (xdist worker
or not) also lists its open windows in one small file there (``Activity``), so a
baseline can tell whether any other process measured while it ran. ``SharedTotal`` is
the energy a whole xdist session has spent, which its workers add to after each test.
Both files are read and written under a lock on the file (``flock``; a ``filelock.FileLock``
where there is none).
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
LOCK_TIMEOUT_S = 30.0
MAX_STATE_BYTES = 2**20  # the activity file lists open windows: a few hundred bytes each
STALE_WINDOW_S = 24 * 3600.0  # where a process cannot be asked whether it lives (Windows), its windows expire


@contextlib.contextmanager
def _exclusive(path: Path, descriptor: int) -> Iterator[None]:
    """Hold an exclusive lock on the open file ``path``: ``flock`` on it where POSIX has one, else a
    ``filelock.FileLock`` beside it. Raises ``OSError`` when it stays held for ``LOCK_TIMEOUT_S``.

    ``flock`` costs a system call (about 0.1 ms for a measured test's window open and close,
    where a ``FileLock`` took about 1 ms), and the kernel releases it if the holder dies.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        import filelock

        with filelock.FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S, mode=0o666):
            yield
        return
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} stayed locked for {LOCK_TIMEOUT_S:.0f} s") from None
            time.sleep(0.001)
    try:
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked_json(path: Path, empty: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """The JSON object in ``path`` (``empty`` when missing or unreadable), written back on leaving if changed.

    Every reader takes the lock too, so the file is rewritten in place: no truncating
    open and no rename, which ext4 flushes to disk (milliseconds per measured test).
    Raises ``OSError`` when the file cannot be used.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0), 0o666)
    with os.fdopen(descriptor, "r+b") as handle, _exclusive(path, descriptor):
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
        self.path = Path(directory or tempfile.gettempdir()) / ACTIVITY_NAME
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


def claim_machine(directory: Optional[Path] = None) -> "tuple[Optional[object], Optional[str]]":
    """Take the machine lock; returns ``(lock, None)``, or ``(None, warning)`` if another session holds it."""
    import filelock

    path = Path(directory or tempfile.gettempdir()) / LOCK_NAME
    lock = filelock.FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None, (
            "another pytest-energy session is measuring on this machine: counters are machine-wide, so both "
            "sessions' figures (GPU, CPU, RAM) include each other's work"
        )
    except OSError as exc:
        return None, f"cannot tell whether another pytest-energy session is measuring ({path}: {exc})"
    return lock, None


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
