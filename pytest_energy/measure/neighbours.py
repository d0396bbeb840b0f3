"""``Neighbours``: the other pytest-energy sessions and processes that measure on this machine.

Counters are machine-wide, so a session holds the machine lock while it measures and lists
its windows in the machine's activity file (``overlap.py``); a baseline is trusted for the
cache only when nothing else measured while it ran. The activity file is given up for the
session at its first failure (a notice): no later test waits for it again.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .overlap import Activity, ActivityMark, claim_machine


class Neighbours:
    """This session's view of the machine it shares: its lock, its listed windows, its baselines' marks."""

    def __init__(self, notice: Callable[[str], None]):
        self._notice = notice
        self._activity = Activity()
        self._failed = False  # the activity file was unusable once: not used again
        self._lock: Any = None
        self._shared = False  # another session held the machine lock when this one claimed it
        self._marks: Dict[str, Optional[ActivityMark]] = {}

    def claim(self) -> None:
        """Take the machine lock; say so if another session holds it."""
        self._lock, overlap = claim_machine()
        if overlap:
            self._shared = True
            self._notice(overlap)

    def open_window(self) -> Optional[str]:
        """List a measuring window, so a baseline measured elsewhere knows of it; its key, or None."""
        return self._call(self._activity.open_window)

    def close_window(self, key: Optional[str]) -> None:
        if key is not None:
            self._call(self._activity.close_window, key)

    def mark(self, nodeid: str) -> None:
        """Remember where the activity file stood when the baseline ``nodeid`` started."""
        self._marks[nodeid] = self._call(self._activity.mark)

    def contention(self, nodeid: str, ask_lock: bool) -> Optional[str]:
        """What else measured on this machine while the baseline ``nodeid`` ran, if anything.

        ``ask_lock``: ask whether another session holds the machine lock now, for a process
        whose session claimed none (an xdist worker: its controller measures nothing).
        """
        if self._shared or (ask_lock and not _machine_free()):
            return "another pytest-energy session held this machine"
        mark = self._marks.pop(nodeid, None)
        if mark is not None and self._call(self._activity.overlapped_since, mark):
            return "another process (an xdist worker or another session) measured on this machine"
        return None

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _call(self, action: Any, *args: Any) -> Any:
        """``action(*args)`` on the activity file; None when the file is unusable (said once)."""
        if self._failed:
            return None
        try:
            return action(*args)
        except OSError as exc:
            self._failed = True
            self._notice(f"cannot tell whether other processes measure on this machine ({self._activity.path}: {exc}); "
                         "not tried again this session, so a baseline measured beside other work may be cached")
            return None


def _machine_free() -> bool:
    """Whether no session holds the machine lock now."""
    lock, _ = claim_machine()
    if lock is None:
        return False
    lock.release()  # type: ignore[attr-defined]
    return True
