"""Notice when measurements overlap: another pytest session, or other xdist workers.

Every counter the meters read (GPU, CPU package, DRAM, CodeCarbon's machine mode) is
machine-wide, so work running beside a test is counted in its figure. A session holds
a lock file in the temp directory while it measures; a second session that finds it
held warns that both sessions' figures overlap.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Optional

LOCK_NAME = "pytest-energy-machine.lock"


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
