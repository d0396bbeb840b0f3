"""Signals that end a session: SIGTERM as a clean interrupt, and none cutting a report's write short.

pytest turns SIGINT (Ctrl-C) into ``KeyboardInterrupt`` and still writes its reports.
SIGTERM, which CI runners send when a job is cancelled, kills Python at once by default,
losing every test finished since the last checkpoint. ``SigtermInterrupt`` makes the
first SIGTERM end the session as Ctrl-C does (the hooks pass ``pytest.exit``: exit status 2,
reports written); it then
puts the default back, so a second SIGTERM kills at once. It is installed only where
nothing else handles SIGTERM (a handler the project installed is left alone).

``signals_deferred`` holds SIGINT and SIGTERM while the main thread writes a report: one
arriving then takes effect as soon as the file is complete, never half-way through.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional

DEFERRED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))
SIGTERM_MESSAGE = "pytest-energy: SIGTERM received, the session ends as after Ctrl-C (its reports are written)"


@contextlib.contextmanager
def signals_deferred() -> Iterator[List[int]]:
    """Run the block with SIGINT and SIGTERM held; the first that arrived is handled after it.

    The block gets the list of signals held so far, so a long wait in it can end early.
    """
    received: List[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread runs handlers
        yield received
        return
    previous: Dict[int, Any] = {}
    try:
        for signum in DEFERRED:
            handler = signal.getsignal(signum)
            if handler is None:  # installed outside Python: left alone
                continue
            previous[signum] = handler
            signal.signal(signum, lambda number, frame: received.append(number))
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            _deliver(received[0], previous[received[0]])


def _deliver(signum: int, handler: Any) -> None:
    """Handle ``signum`` as ``handler`` would have when it arrived."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)


class SigtermInterrupt:
    """Calls ``interrupt`` (it raises: ``pytest.exit``) on the session's first SIGTERM, while installed."""

    def __init__(self, interrupt: Callable[[str], None]) -> None:
        self._interrupt = interrupt
        self._installed = False

    def install(self) -> bool:
        """Handle SIGTERM from now on, where the main thread can and nothing else handles it."""
        if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, self._handle)
        self._installed = True
        return True

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        self._interrupt(SIGTERM_MESSAGE)

    def uninstall(self) -> None:
        if self._installed and signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._installed = False
