"""Energy across processes: the other processes that measure one session's tests, behind one small interface.

A session runs in one process (``Peers``), as one of pytest-xdist's workers
(``XdistWorker``: the workers count the session's energy together in one file, and send
their records to the controller in their test reports), or as one rank of a torchrun or
srun launch (``Ranks``: the ranks combine each window's figure through their own
``TCPStore``, and global rank 0 alone writes the reports). ``EnergySession`` asks its
peers the same questions whichever it has:

- ``combine(key, measurement, interrupted)``: a window's figure over every process that measured it;
- ``live(key, window)``: the window as the live watchdog reads it;
- ``publish(spent_j)``: the session's energy over its processes, this one's ``spent_j`` in it;
- ``writes_reports``, ``holds_machine``, ``lists_windows``: which process does what once.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from .config import ConfigError
from .measure.base import Measurement
from .measure.cuda_devices import CudaGpus
from .measure.meter import Meter
from .measure.overlap import SharedTotal
from .measure.rank_exchange import DEFAULT_TIMEOUT_S, ExchangeUnavailable, RankExchange, Readable, own_figure
from .measure.ranks import Launch, uncombined

Notice = Callable[[str], None]


class Peers:
    """This process alone measures the session's tests (no xdist, or the xdist controller, which measures none)."""

    writes_reports = True  # the JSON report, JUnit properties, GitHub summary, CI formats, the stored run
    holds_machine = True  # claims the machine lock, so that another session knows of this one
    lists_windows = True  # lists its windows in the machine's activity file
    worker_id: Optional[str] = None
    launch: Optional[Launch] = None

    def open(self, meter: Meter, notice: Notice) -> None:
        """Reach the peers, once ``meter`` works; ``notice`` says why they cannot be."""

    def combine(self, key: str, measurement: Measurement, interrupted: Callable[[], bool]) -> Measurement:
        """The figure of the window ``key`` (a test, or one of its repeats) over every process that measured it;
        once ``interrupted()`` (the session is ending), the others are waited for only briefly."""
        return measurement

    def live(self, key: str, window: Readable) -> Readable:
        """The window ``key`` as its live watchdog reads it: over every process that measures it."""
        return window

    def publish(self, spent_j: float) -> Optional[float]:
        """Make ``spent_j`` this process's part of the session's energy; the session's total, or None where
        only this process's energy is known."""
        return None

    def close(self) -> None:
        """Let go of what reaches the peers."""


class XdistWorker(Peers):
    """An xdist worker: it sends its records to the controller; with a session cap, the workers add their
    energy to one file (``shared_total_file``), so each sees what the others spent."""

    writes_reports = False
    holds_machine = False  # the controller does not measure; the workers' windows are listed instead

    def __init__(self, worker_id: str, total_path: Optional[str], notice: Notice):
        self.worker_id = worker_id
        self._total = SharedTotal(Path(total_path)) if total_path else None
        self._sent_j = 0.0  # how much of this worker's energy is in the shared total
        self._notice = notice

    def publish(self, spent_j: float) -> Optional[float]:
        if self._total is None:
            return None
        try:
            total_j = self._total.add(spent_j - self._sent_j)
        except OSError as exc:
            self._notice(f"cannot share the session cap between xdist workers ({self._total.path}: {exc}); "
                         "each worker counts its own energy from here on")
            self._total = None
            return None
        self._sent_j = spent_j
        return total_j


def shared_total_file(add_cleanup: Callable[[Callable[[], None]], None]) -> str:
    """On the xdist controller: a new file in which the workers count the session's energy together."""
    directory = tempfile.mkdtemp(prefix="pytest-energy-session-")
    add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    return str(Path(directory, "session-energy.json"))


class Ranks(Peers):
    """One rank of a distributed launch: each window's figure is combined over the ranks (``RankExchange``).

    Of a node's ranks only local rank 0 holds the machine and lists windows (the ranks open
    and close theirs together, so the launch does not contend with its own baseline); global
    rank 0 writes the reports. A rank that cannot reach the exchange counts alone, said once.
    """

    def __init__(self, launch: Launch, port: Optional[int], timeout_s: float):
        self.launch = launch
        self.writes_reports = launch.rank == 0
        self.holds_machine = self.lists_windows = launch.counts_node_wide()
        self._port, self._timeout_s = port, timeout_s
        self._exchange: Optional[RankExchange] = None
        self._gpus = CudaGpus()  # the meter's GPUs by UUID: which of them are this rank's
        self._unavailable = ""  # why the exchange could not open

    def open(self, meter: Meter, notice: Notice) -> None:
        """Open the exchange, telling it which of the meter's GPUs (by UUID) are this rank's."""
        self._gpus = meter.cuda_gpus()
        try:
            self._exchange = RankExchange(self.launch, self._port, self._timeout_s, self._gpus)
        except ExchangeUnavailable as exc:
            self._unavailable = f"was not combined with ({exc})"
            notice(f"{exc}: each test's figure is this rank's own devices, a lower bound naming the other ranks")

    def combine(self, key: str, measurement: Measurement, interrupted: Callable[[], bool]) -> Measurement:
        if self._exchange is None:  # never the devices of other ranks or nodes left out unsaid
            return uncombined(own_figure(measurement, self.launch, self._gpus), self.launch, self._unavailable)
        return self._exchange.combine(key, measurement, interrupted)

    def live(self, key: str, window: Readable) -> Readable:
        return window if self._exchange is None else self._exchange.live(key, window)

    def close(self) -> None:
        if self._exchange is not None:
            self._exchange.close()


def peers_for(launch: Optional[Launch], worker_id: Optional[str], total_path: Optional[str], notice: Notice, *,
              xdist_controller: bool = False, rank_port: Optional[int] = None,
              rank_timeout_s: float = DEFAULT_TIMEOUT_S) -> Peers:
    """This process's peers: the ranks of its launch, its fellow xdist workers, or none.

    xdist inside a launch is refused: each rank's workers would share out the tests
    differently, so no test would meet its other ranks.
    """
    if launch is not None and (worker_id is not None or xdist_controller):
        raise ConfigError(f"pytest-xdist cannot run inside a {launch.launcher} launch: each rank's workers would run "
                          "other tests than the other ranks'; run each rank's pytest without it (-p no:xdist)")
    if launch is not None:
        return Ranks(launch, rank_port, rank_timeout_s)
    if worker_id is not None:
        return XdistWorker(worker_id, total_path, notice)
    return Peers()
