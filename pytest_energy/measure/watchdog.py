"""Stop a test the moment its energy crosses a limit.

A daemon thread reads the test's window every ``interval_s`` (sooner as the
predicted crossing nears); once the energy
crosses the limit it sends SIGUSR1 to the main thread, whose handler raises
``pytest.fail`` inside the test (as pytest-timeout's signal method does). Where
that is impossible (no SIGUSR1 on Windows, a test outside the main thread) the
test runs to its end and fails then; the report says it was not stopped early.
A test blocked inside one long C call is stopped when that call returns. A signal that
arrives where raising would leave state half made is not raised there: it is sent again
a moment later, until it lands in safe code (``unsafe_to_stop``). Unsafe are pytest's
own code (a subtest opening its output capture, say), an import under way (a module
half executed stays broken in ``sys.modules``: ``import torch`` stopped half-way breaks
every later test), a ``finally`` block, an ``__exit__`` or ``__del__``, and a signal
handler the test installed. A test that ended while the stop was deferred is failed at
its end, and its record says it was not stopped (``not_stopped``).

A test may replace SIGUSR1's handler (ignore it, restore the default that kills the
process, or use it itself): the watchdog then sends nothing, so the session survives,
the test runs to its end, and its record says why it was not stopped. The handler is
installed again before the next measured test.
"""

from __future__ import annotations

import ast
import functools
import linecache
import os
import signal
import sysconfig
import threading
import time
from types import FrameType
from typing import Callable, FrozenSet, List, Optional, Tuple

import _pytest
import pluggy
import pytest

from .base import Measurement
from .meter import Window

MIN_WAIT_S = 0.01
FIRST_CHECK_S = 0.1
STOP_WAIT_S = 5.0  # how long the test's end waits for the watchdog's reading under way
RESEND_S = 0.005  # how soon a stop that landed in pytest's own code is sent again


def _directory_of(module: object) -> str:
    return os.path.dirname(os.path.abspath(module.__file__)) + os.sep  # type: ignore[attr-defined]


FRAMEWORK_DIRS: Tuple[str, ...] = tuple(_directory_of(module) for module in (_pytest, pluggy)) + (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # this plugin
)
LIBRARY_DIRS: Tuple[str, ...] = tuple(sorted({
    sysconfig.get_paths()[key] + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
}))


def in_pytest_machinery(frame: Optional[FrameType]) -> bool:
    """Whether the main thread runs pytest's code (or this plugin's), not the test's.

    Walking out from ``frame`` past the standard library and installed packages, the first
    other frame decides: pytest's (its capture, reports, fixtures, even inside a ``tempfile``
    call they made) or the test's (its module, or a library it called). A test module that
    is itself an installed package (``--pyargs``) reads as pytest's: it fails at its end.
    """
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(FRAMEWORK_DIRS):
            return True
        if not path.startswith(LIBRARY_DIRS + ("<frozen ",)):  # 3.11 freezes some of the stdlib (os, codecs)
            return False
        frame = frame.f_back
    return False


CLEANUP_FUNCTIONS = ("__exit__", "__aexit__", "__del__")


@functools.lru_cache(maxsize=256)
def _finally_lines(filename: str) -> FrozenSet[int]:
    """The lines of ``filename`` inside a ``finally:`` block (none when its source cannot be read)."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return frozenset()
    lines: List[int] = []
    for node in ast.walk(tree):
        for statement in getattr(node, "finalbody", ()):
            lines.extend(range(statement.lineno, (statement.end_lineno or statement.lineno) + 1))
    return frozenset(lines)


def _handler_codes(own: Callable[..., None]) -> FrozenSet[object]:
    """The code of every Python signal handler installed now, but ``own``."""
    codes = set()
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if handler is not None and handler != own:
            code = getattr(handler, "__code__", None) or getattr(getattr(handler, "__func__", None), "__code__", None)
            if code is not None:
                codes.add(code)
    return frozenset(codes)


def unsafe_to_stop(frame: Optional[FrameType], own_handler: Callable[..., None]) -> Optional[str]:
    """Why raising the stop at ``frame`` now would leave state half made; None where it is safe.

    The frames from ``frame`` out to pytest's (which called the test) are looked at.
    """
    if in_pytest_machinery(frame):
        return "pytest's code"
    handlers = _handler_codes(own_handler)
    while frame is not None and not frame.f_code.co_filename.startswith(FRAMEWORK_DIRS):  # the test's call, inward
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib"):
            return "an import"
        if code.co_name in CLEANUP_FUNCTIONS:
            return code.co_name
        if code in handlers:
            return "a signal handler"
        if frame.f_lineno in _finally_lines(code.co_filename):
            return "a finally block"
        frame = frame.f_back
    return None


class MainThreadStopper:
    """Raises ``pytest.fail(message)`` in the main thread on request, while armed."""

    def __init__(self) -> None:
        self._installed = False
        self._previous: object = None
        self._armed = False
        self._message = ""
        self._raised = threading.Event()
        self.deferred_in: Optional[str] = None  # where the last stop was held back, if it was
        self._judging = False

    @staticmethod
    def supported() -> bool:
        return (
            hasattr(signal, "SIGUSR1")
            and hasattr(signal, "pthread_kill")
            and threading.current_thread() is threading.main_thread()
        )

    def arm(self) -> bool:
        """Allow ``fire`` for the running test; False where the test cannot be stopped early."""
        if not self.supported():
            return False
        if not self._installed:
            self._previous = signal.signal(signal.SIGUSR1, self._handle)
            self._installed = True
        elif not self.intact():  # the last test replaced it
            signal.signal(signal.SIGUSR1, self._handle)
        self._message, self._armed, self.deferred_in = "", True, None
        self._raised.clear()
        return True

    def intact(self) -> bool:
        """Whether SIGUSR1 still runs this stopper's handler (a test may have replaced it)."""
        return signal.getsignal(signal.SIGUSR1) == self._handle

    def disarm(self) -> None:
        self._armed = False

    def fire(self, message: str) -> Optional[str]:
        """Signal the main thread until the stop is raised in the test's code, or the test ends (disarmed).

        Returns None once the stop was raised, else why the test was not stopped. Nothing is
        sent while SIGUSR1 runs another handler: its default would kill the whole session.
        """
        self._message = message
        while self._armed:
            if not self.intact():
                return "the test replaced the SIGUSR1 handler that stops it, so it ran to its end"
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]
            if self._raised.wait(RESEND_S):
                return None
        if self._raised.is_set():
            return None
        where = f" (the stop was held back while it ran {self.deferred_in})" if self.deferred_in else ""
        return f"the test ended before the stop could be raised safely{where}"

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if not (self._armed and self._message) or self._judging:
            return
        self._judging = True  # a signal resent while this one is judged returns at once
        try:
            unsafe = unsafe_to_stop(frame, self._handle)
        finally:
            self._judging = False
        if unsafe is not None:
            self.deferred_in = unsafe
            return
        self._armed = False
        self._raised.set()
        pytest.fail(self._message, pytrace=False)

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGUSR1, self._previous)  # type: ignore[arg-type]
            self._installed = False


class Watchdog:
    """Reads ``window`` on a thread and calls ``on_cross`` once its energy exceeds ``limit_j``,
    or ``also_crossed`` (given each reading: the session's shared total under xdist) says a limit was crossed."""

    def __init__(self, window: Window, limit_j: float, interval_s: float, on_cross: Callable[[Measurement, float], None],
                 also_crossed: Optional[Callable[[Measurement], bool]] = None):
        self.window = window
        self.limit_j = limit_j
        self.interval_s = interval_s
        self.on_cross = on_cross
        self.also_crossed = also_crossed
        self.crossed: Optional[Measurement] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pytest-energy-watchdog", daemon=True)

    def start(self) -> "Watchdog":
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def _watch(self) -> None:
        wait = min(self.interval_s, FIRST_CHECK_S)  # an early first read gives the power to predict from
        while not self._stop.wait(wait):
            measurement = self.window.read()
            total = measurement.total_j
            elapsed = time.perf_counter() - self._t0
            if total is not None and (total > self.limit_j or (self.also_crossed and self.also_crossed(measurement))):
                self.crossed = measurement
                self.on_cross(measurement, elapsed)
                return
            wait = self._next_wait(total, elapsed)

    def _next_wait(self, total: Optional[float], elapsed: float) -> float:
        """Check again at half the predicted time to the crossing, never later than ``interval_s``."""
        if not total or elapsed <= 0:
            return self.interval_s
        seconds_to_cross = (self.limit_j - total) / (total / elapsed)
        return min(self.interval_s, max(MIN_WAIT_S, seconds_to_cross / 2))

    def stop(self) -> None:
        """Stop watching; waits at most ``STOP_WAIT_S`` for a reading under way (a meter that hangs is left behind)."""
        self._stop.set()
        self._thread.join(STOP_WAIT_S)
