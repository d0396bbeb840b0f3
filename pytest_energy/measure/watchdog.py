"""Stop a test the moment its energy crosses a limit.

A daemon thread reads the test's window every ``interval_s`` (sooner as the
predicted crossing nears); once the energy
crosses the limit it sends SIGUSR1 to the main thread, whose handler raises
``pytest.fail`` inside the test (as pytest-timeout's signal method does). Where
that is impossible (no SIGUSR1 on Windows, a test outside the main thread) the
test runs to its end and fails then; the report says it was not stopped early.
A test blocked inside one long C call is stopped when that call returns. A signal that
arrives while the main thread runs pytest's own code (a subtest opening its output
capture, say) is not raised there, where it would leave pytest's state half made: it
is sent again a moment later, until it lands in the test's code.
"""

from __future__ import annotations

import os
import signal
import sysconfig
import threading
import time
from types import FrameType
from typing import Callable, Optional, Tuple

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


class MainThreadStopper:
    """Raises ``pytest.fail(message)`` in the main thread on request, while armed."""

    def __init__(self) -> None:
        self._installed = False
        self._previous: object = None
        self._armed = False
        self._message = ""
        self._raised = threading.Event()

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
        self._message, self._armed = "", True
        self._raised.clear()
        return True

    def disarm(self) -> None:
        self._armed = False

    def fire(self, message: str) -> None:
        """Signal the main thread until the stop is raised in the test's code, or the test ends (disarmed)."""
        self._message = message
        while self._armed:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]
            if self._raised.wait(RESEND_S):
                return

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self._armed and self._message and not in_pytest_machinery(frame):
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
