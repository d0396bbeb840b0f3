"""Stop a test the moment its energy crosses a limit.

A daemon thread reads the test's window every ``interval_s`` (sooner as the
predicted crossing nears); once the energy
crosses the limit it sends SIGUSR1 to the main thread, whose handler raises
``pytest.fail`` inside the test (as pytest-timeout's signal method does). Where
that is impossible (no SIGUSR1 on Windows, a test outside the main thread) the
test runs to its end and fails then; the report says it was not stopped early.
A test blocked inside one long C call is stopped when that call returns.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable, Optional

import pytest

from .base import Measurement
from .meter import Window

MIN_WAIT_S = 0.01
FIRST_CHECK_S = 0.1


class MainThreadStopper:
    """Raises ``pytest.fail(message)`` in the main thread on request, while armed."""

    def __init__(self) -> None:
        self._installed = False
        self._previous: object = None
        self._armed = False
        self._message = ""

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
        return True

    def disarm(self) -> None:
        self._armed = False

    def fire(self, message: str) -> None:
        self._message = message
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        if self._armed and self._message:
            self._armed = False
            pytest.fail(self._message, pytrace=False)

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGUSR1, self._previous)  # type: ignore[arg-type]
            self._installed = False


class Watchdog:
    """Reads ``window`` on a thread and calls ``on_cross`` once its energy exceeds ``limit_j``."""

    def __init__(self, window: Window, limit_j: float, interval_s: float, on_cross: Callable[[Measurement, float], None]):
        self.window = window
        self.limit_j = limit_j
        self.interval_s = interval_s
        self.on_cross = on_cross
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
            if total is not None and total > self.limit_j:
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
        self._stop.set()
        self._thread.join()
