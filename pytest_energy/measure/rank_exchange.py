"""The channel through which the ranks of a launch combine each test's figure, and watch live caps.

``RankExchange`` uses a ``torch.distributed.TCPStore`` of its own (not the test's process
group), hosted by rank 0 on ``--energy-rank-port`` or the port next to ``MASTER_PORT``
(``ranks.Launch.exchange_port``), each client's connection bounded by ``open_store``:
at the end of each test every rank publishes its share of the readings, rank 0 gathers them
until a deadline and publishes the combined figure (``ranks.combine``), which every rank
then reads, so all ranks decide on the same figure. A rank that does not report in time, or
a rank 0 that cannot be reached, is named in the figure as a lost device: a lower bound,
never a hang. ``LiveWindow`` gives the live watchdog the same sum while the test runs.
torch is imported only when an exchange opens.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol

from .base import Measurement
from .cuda_devices import CudaGpus, torch_current_uuid, torch_uuids
from .ranks import PORT_ENV, Launch, LaunchError, RankFigure, combine, measured_components, own_readings

DEFAULT_TIMEOUT_S = 60.0
LATE_GRACE_S = 1.0  # how long rank 0 waits for a rank that missed the test before
INTERRUPTED_GRACE_S = 1.0  # how long a rank still waits for the others once its session is being interrupted
WAIT_SLICE_S = 0.25  # waits are cut into slices this long, so an interruption is seen within one
INTERRUPTED_WHY = "was not waited for: the session was interrupted"
KEPT_COMBINED = 64  # combined figures kept in the store for ranks that read them late


class Readable(Protocol):
    """What the live watchdog reads: a test's window on the meter."""

    def read(self) -> Measurement: ...


class LiveWindow:
    """A test's window as the live watchdog sees it under a launch: this rank's share, fresh, plus
    what each other rank last published for the same test (each read publishes this rank's).

    Energy only grows, so once one rank's sum crosses a limit every other rank's next read
    crosses it too: the ranks stop together, within one check interval. A store that cannot
    answer leaves this rank's own figure.
    """

    def __init__(self, exchange: "RankExchange", key: str, window: Readable):
        self._exchange, self._key, self._window = exchange, f"live/{key}", window

    def read(self) -> Measurement:
        exchange, launch = self._exchange, self._exchange.launch
        own = own_figure(self._window.read(), launch, exchange.gpus)
        figures = [own]
        try:
            store = exchange.live_store()
            store.set(f"{self._key}/{launch.rank}", own.to_json())
            for rank in range(launch.world_size):
                other = f"{self._key}/{rank}"
                if rank != launch.rank and store.check([other]):
                    figures.append(RankFigure.from_json(store.get(other).decode()))
        except Exception:  # the figure of this rank alone: the final check still combines every rank's
            pass
        return combine(figures, {}, launch)


def own_figure(measurement: Measurement, launch: Launch, gpus: CudaGpus) -> RankFigure:
    """This rank's share of ``measurement``: its GPU(s) by UUID, in torch's CUDA order and with
    torch's current device when CUDA is initialised (``ranks.own_readings``)."""
    readings = own_readings(measurement, launch, gpus, torch_uuids(), torch_current_uuid())
    counted = {reading.device for reading in readings.readings if reading.component == "gpu"}
    uuids = {device: uuid for uuid, device in gpus.devices.items() if device in counted}
    return RankFigure(launch.rank, launch.node, readings, uuids)


def open_store(address: str, port: int, world_size: int, host: bool, timeout_s: float) -> Any:
    """A ``TCPStore`` on ``address:port``: hosted here (``host``), or a client of rank 0's.

    A client waits at most ``timeout_s`` (and a second): torch's own timeout does not bound the
    handshake, so a program on that port that accepts and never answers would hold it for ever.
    The connecting thread is then left behind (a daemon, blocked in a socket read, not holding the GIL).
    """
    from torch.distributed import TCPStore

    timeout = datetime.timedelta(seconds=timeout_s)
    if host:
        return TCPStore(address, port, world_size, True, timeout, wait_for_workers=False)
    opened: Dict[str, Any] = {}

    def connect() -> None:
        try:
            opened["store"] = TCPStore(address, port, world_size, False, timeout)
        except Exception as error:  # raised below, in the caller's thread
            opened["error"] = error

    thread = threading.Thread(target=connect, name="pytest-energy-rank-store", daemon=True)
    thread.start()
    thread.join(timeout_s + 1.0)
    if "error" in opened:
        raise opened["error"]
    if "store" not in opened:
        raise TimeoutError(f"nothing answered as the exchange within {timeout_s:g} s (another program on the port?)")
    return opened["store"]


class Interrupted(Exception):
    """This rank's session was interrupted while it waited for the other ranks; it waited no longer."""


class ExchangeUnavailable(Exception):
    """The ranks cannot combine their figures (no store could be opened); the message says why."""


class RankExchange:
    """The channel through which the ranks of one launch combine each test's figure.

    ``combine`` is called by every rank at the end of each measured test (pytest runs the
    same collection on each rank); a test is matched across ranks by its node id and how
    many times it ran. A rank that misses a test costs that test ``timeout_s``; until it
    reports in time again, later tests wait for it only ``LATE_GRACE_S`` (so a dead rank does
    not cost every test the full timeout). A rank 0 that cannot be reached is not asked again.
    """

    def __init__(self, launch: Launch, port: Optional[int] = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 gpus: CudaGpus = CudaGpus()):
        self.launch = launch
        self.timeout_s = timeout_s
        self.gpus = gpus  # the meter's GPUs by UUID: which of them are this rank's
        self._runs: Dict[str, int] = {}  # how often each test was combined
        self._measured: Iterable[str] = ()  # the components this rank's meter measured in the last window
        self._unreachable: Optional[str] = None  # why rank 0 is no longer asked
        self._late: Dict[int, str] = {}  # on rank 0: ranks that missed a test, and the first they missed
        self._published: List[str] = []  # on rank 0: the tests' keys whose combined figure is kept, oldest first
        self._readers = 0  # on rank 0: the ranks that reported the last test, so will read its figure
        self._live_store: Any = None  # the live watchdog's own connection (it reads from another thread)
        self._live_failed = ""  # why that connection could not be opened
        self._interrupted: Callable[[], bool] = lambda: False  # whether this rank's session is being interrupted
        self._cut_at: Optional[float] = None  # when the waits of this combine end, once interrupted
        self._address = launch.master_addr or "127.0.0.1"
        try:
            port = launch.exchange_port(port)
        except LaunchError as error:
            raise ExchangeUnavailable(f"cannot open the ranks' energy exchange: {error}") from None
        address, self._port = self._address, port
        try:
            self._store = open_store(address, port, launch.world_size, launch.rank == 0, timeout_s)
        except Exception as error:  # no torch, port taken, rank 0 not there in time
            raise ExchangeUnavailable(f"cannot open the ranks' energy exchange on {address}:{port} "
                                      f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                                      f"set --energy-rank-port (or {PORT_ENV}) to a free port") from None

    def live(self, nodeid: str, window: Readable) -> LiveWindow:
        """``window`` of the test ``nodeid`` about to run, as its live watchdog should read it over the ranks."""
        return LiveWindow(self, f"{nodeid}#{self._runs.get(nodeid, 0) + 1}", window)

    def live_store(self) -> Any:
        """A client connection of the watchdog's own to the store, opened on first use; not tried again
        once it failed (each try may wait ``timeout_s``, and the watchdog reads every check interval)."""
        if self._live_store is None:
            if self._live_failed:
                raise ExchangeUnavailable(self._live_failed)
            try:
                self._live_store = open_store(self._address, self._port, self.launch.world_size, False, self.timeout_s)
            except Exception as error:
                self._live_failed = f"the live watchdog's connection failed ({type(error).__name__})"
                raise
        return self._live_store

    def combine(self, nodeid: str, measurement: Measurement,
                interrupted: Callable[[], bool] = lambda: False) -> Measurement:
        """The test's figure over all ranks, from what this rank's meter saw; the same on every rank.

        Once ``interrupted()`` (Ctrl-C, or SIGTERM: torchrun ends every rank when one dies, and
        kills them 30 s later) this rank waits for the others ``INTERRUPTED_GRACE_S`` more at
        most, so its session still writes its reports; the ranks not waited for are named.
        """
        self._interrupted, self._cut_at = interrupted, None
        self._runs[nodeid] = self._runs.get(nodeid, 0) + 1  # keyed by test, so a test one rank skipped costs only itself
        key = f"{nodeid}#{self._runs[nodeid]}"
        self._measured = measured_components(measurement)
        own = own_figure(measurement, self.launch, self.gpus)
        if self._unreachable is not None:
            return self._alone(own, self._unreachable)
        try:
            self._store.set(f"{key}/{self.launch.rank}", own.to_json())
            if self.launch.rank == 0:
                return self._gather(key, own)
            self._wait([f"{key}/combined"], 2 * self.timeout_s)
            combined = RankFigure.from_json(self._store.get(f"{key}/combined").decode()).measurement
            self._store.add(f"{key}/read", 1)  # rank 0 keeps the store up until the last test's figure is read
            return combined
        except Interrupted:
            return self._alone(own, INTERRUPTED_WHY)
        except Exception as error:  # rank 0 is gone (not asked again), or late: this rank counted alone, said so
            if self._is_connection_error(error):
                self._unreachable = f"could not be reached ({type(error).__name__})"
                return self._alone(own, self._unreachable)
            return self._alone(own, f"did not publish the combined figure within {2 * self.timeout_s:g} s")

    def _gather(self, key: str, own: RankFigure) -> Measurement:
        keys = {rank: f"{key}/{rank}" for rank in range(1, self.launch.world_size)}
        deadline = time.monotonic() + self.timeout_s
        figures, missing = [own], {}
        for rank, rank_key in keys.items():
            left_s = deadline - time.monotonic()
            try:
                self._wait([rank_key], max(min(left_s, LATE_GRACE_S) if rank in self._late else left_s, 0.001))
                figures.append(RankFigure.from_json(self._store.get(rank_key).decode()))
                self._late.pop(rank, None)
            except Interrupted:
                missing[rank] = INTERRUPTED_WHY
            except Exception:
                since = self._late.setdefault(rank, key)
                missing[rank] = (f"did not report within {self.timeout_s:g} s" if since == key else
                                 f"has not reported in time since {since.rsplit('#', 1)[0]}")
        combined = combine(figures, missing, self.launch, self._measured)
        self._store.set(f"{key}/combined", RankFigure(0, self.launch.node, combined).to_json())
        self._published.append(key)
        self._readers = len(figures) - 1
        for old_key in [*keys.values(), *(f"{old}/{part}" for old in self._published[:-KEPT_COMBINED]
                                          for part in ("combined", "read"))]:
            self._store.delete_key(old_key)
        del self._published[:-KEPT_COMBINED]
        return combined

    def _alone(self, own: RankFigure, why: str) -> Measurement:
        others = {rank: f"was not combined with (rank 0 {why})" for rank in range(1, self.launch.world_size)}
        others.pop(own.rank, None)
        return combine([own], {0: why, **others}, self.launch, self._measured)

    def _wait(self, keys: List[str], timeout_s: float) -> None:
        """Until ``keys`` are in the store: at most ``timeout_s`` (the store's error), or ``INTERRUPTED_GRACE_S``
        after the session is found interrupted (``Interrupted``), for all the waits of this combine together."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._cut_at is None and self._interrupted():
                self._cut_at = time.monotonic() + INTERRUPTED_GRACE_S
            end = deadline if self._cut_at is None else min(deadline, self._cut_at)
            try:
                self._store.wait(keys, datetime.timedelta(seconds=max(min(end - time.monotonic(), WAIT_SLICE_S), 0.001)))
                return
            except Exception:
                if self._store.check(keys):
                    return
                if time.monotonic() < end:
                    continue
                if self._cut_at is not None and self._cut_at <= deadline:
                    raise Interrupted() from None
                raise

    @staticmethod
    def _is_connection_error(error: Exception) -> bool:
        """A store that is gone (rank 0 died), not one that was slow."""
        return type(error).__name__ == "DistNetworkError" or isinstance(error, ConnectionError) or any(
            word in str(error).lower() for word in ("connection", "broken pipe", "reset by peer"))

    def close(self) -> None:
        """Let go of the store; rank 0, whose process holds it, first waits (at most ``timeout_s``) until the
        ranks that reported the last test have read its figure, unless that test was interrupted (the
        others then stop waiting for it, and the launcher kills what has not ended in 30 s)."""
        if self.launch.rank == 0 and self._published and self._unreachable is None and self._cut_at is None:
            deadline = time.monotonic() + self.timeout_s
            try:
                while self._store.add(f"{self._published[-1]}/read", 0) < self._readers and time.monotonic() < deadline:
                    time.sleep(0.01)
            except Exception:  # nothing to wait for if the store cannot answer
                pass
        self._store = self._live_store = None  # type: ignore[assignment]  # rank 0's server stops with its last reference
