"""The child processes a measured test leaves behind: seen, and ended when the test was stopped early.

A child still running after its test spends on the machine-wide counters, so its work is
charged to the tests after it. The session lists this process's children when a test's
window opens and again when it closes (on Linux from ``/proc/self/task/*/children``, a
few small reads; elsewhere with ``psutil``). A test stopped early has the new children's
process trees terminated (``psutil``, imported only then); any other test that leaves
children running is said to in its record. A child that detached itself (a daemon that
forked twice) is no longer this process's child and is not seen.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import FrozenSet, List

TERMINATE_WAIT_S = 1.0  # for children to end after SIGTERM, then again after SIGKILL
PROC_TASKS = Path("/proc/self/task")


def child_pids() -> FrozenSet[int]:
    """The direct children of this process (zombies too)."""
    try:
        pids = set()
        for task in PROC_TASKS.iterdir():
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        return frozenset(pids)
    except (OSError, ValueError):  # no /proc, or no children file (a kernel without CONFIG_PROC_CHILDREN)
        pass
    try:
        import psutil
    except ImportError:
        return frozenset()
    with contextlib.suppress(psutil.Error):
        return frozenset(child.pid for child in psutil.Process().children())
    return frozenset()


def still_running(pids: FrozenSet[int]) -> List[int]:
    """Those of ``pids`` that run (not ended, not zombies), with the processes they started."""
    if not pids:
        return []
    import psutil

    running: List[int] = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            for member in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    if member.status() != psutil.STATUS_ZOMBIE:
                        running.append(member.pid)
    return running


def terminate(pids: List[int]) -> int:
    """Terminate ``pids`` (SIGTERM, then SIGKILL for those still there after ``TERMINATE_WAIT_S``); how many ended."""
    import psutil

    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            processes.append(psutil.Process(pid))
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    gone, alive = psutil.wait_procs(processes, timeout=TERMINATE_WAIT_S)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    killed, left = psutil.wait_procs(alive, timeout=TERMINATE_WAIT_S)
    return len(gone) + len(killed)
