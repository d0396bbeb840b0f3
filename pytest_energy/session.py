"""``EnergySession``: a session's measurements and what is decided and reported about them, without pytest.

Each measured test goes one way: its spec (marker and settings, a ``TestState``) ->
``start_test``/``stop_test`` (a ``Measurement`` from a window on the meter, combined over
the session's other processes by its ``peers``, watched live against its limits) ->
``finish_test`` (accounting, the limits' verdict, a ``Record``). Every record then goes
to the process that collects them (``payload``/``receive``), whose ``SessionReports``
accounts and writes them. ``session_plugin.py`` only translates pytest's hooks into these
calls, as pytest-benchmark's plugin does for its ``BenchmarkSession``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .account.baseline_cache import BaselineCacheError
from .account.normalize import Normalization
from .account.record import Record, repeated_energy_j
from .account.repeats import account_work_and_emissions, repeats_entry
from .baseline_plan import BaselinePlan
from .config import ConfigError, EnergyMarker, Settings
from .decide.figures import CapFailure, Figures, Limits, lower_bound_reasons
from .decide.limits import check, complexity_verdict, live_limit, verdict_of
from .fixture import TestState, record_complexity
from .measure.base import Measurement
from .measure.children import child_pids, still_running, terminate
from .measure.interrupts import signals_deferred
from .measure.meter import OTHER_GPU_PROCESSES, OTHER_GPU_PROCESSES_NOTICE, Meter
from .measure.neighbours import Neighbours
from .measure.ranks import LaunchError, detect
from .measure.watchdog import MainThreadStopper, Watchdog
from .comparison import Comparison
from .peers import peers_for, shared_total_file
from .reports import SessionReports
from .store.runs import StoredRun
from .units import format_energy

Location = Tuple[str, int]  # a test's file and 1-based line


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished test's record and, when a limit fails it now, what it fails with."""

    record: Record
    fail_with: Optional[str] = None


def spent_j(state: TestState) -> Optional[float]:
    """What a finished test spent in the session: every measured repeat's figure, or its one window's."""
    repeats = state.extra.get("repeats")
    if repeats:
        return sum(energy or 0.0 for energy in repeats["energy_j"])
    return state.measurement.total_j if state.measurement else None


class EnergySession:
    """One session's meter, baseline and limits, and the records it makes (written by its ``reports``).

    ``worker_id`` is set on an xdist worker, which measures and sends its records to the
    controller; ``session_total`` is then the file where workers count the session's energy.
    ``spawns_workers``: this process is the xdist controller.
    A torchrun or srun launch is read from the environment: its ranks are then the ``peers``.
    """

    def __init__(self, settings: Settings, rootpath: Path, invocation_dir: Path, worker_id: Optional[str] = None,
                 session_total: Optional[str] = None, spawns_workers: bool = False):
        self.settings = settings
        self.rootpath = rootpath
        self.environment: Dict[str, Any] = {}
        self.notices: Dict[str, None] = {}  # ordered and without repeats
        self._unsent_notices: List[str] = []  # on a worker: not yet sent to the controller
        self._meter: Optional[Meter] = None
        self._running: Optional[Tuple[str, Location, TestState]] = None  # the test in its call phase
        self._own_energy_j = 0.0  # measured in this process so far
        self._stopper = MainThreadStopper()
        self._stop_message: Optional[str] = None  # what the watchdog raised in the running test
        self._neighbours = Neighbours(self.notice)
        self._workers_total: Optional[str] = None  # on the xdist controller: the workers' shared total
        self.baseline = BaselinePlan(settings)
        self.normalization: Optional[Normalization] = None
        try:
            launch = detect()  # a torchrun or srun launch: the ranks combine each test's figure
        except LaunchError as exc:
            raise ConfigError(f"cannot tell this process's rank: {exc}") from None
        self.peers = peers_for(launch, worker_id, session_total, self.notice, xdist_controller=spawns_workers,
                               rank_port=settings.rank_port, rank_timeout_s=settings.rank_timeout_s)
        self.comparison = Comparison(settings, rootpath, self.notice)
        self.reports = SessionReports(self, invocation_dir)  # last: a usage error above leaves no report lock held

    @property
    def is_worker(self) -> bool:
        return self.peers.worker_id is not None

    def notice(self, message: str) -> None:
        """Something that makes the figures incomplete, shown once in the energy summary.

        Not a Python warning: a project's ``filterwarnings = error`` must not turn the
        plugin's own notices into test failures.
        """
        if message not in self.notices:
            self.notices[message] = None
            if self.is_worker:
                self._unsent_notices.append(message)

    def stored_run(self) -> Optional[StoredRun]:
        """The run compared with, once the fingerprint is known where it is the latest of this hardware."""
        return self.comparison.stored_run(self.environment.get("fingerprint"))

    def limits(self) -> Limits:
        settings = self.settings
        auto = settings.compare_fail == "auto"
        return Limits(settings.unit, settings.normalized, settings.session_cap_j, settings.macs_cap, settings.params_cap,
                      None if auto else settings.compare_fail, self.stored_run(), settings.cap_on,  # type: ignore[arg-type]
                      auto, self.comparison.noise_floors(), settings.macs_compare_fail)

    # -- measuring ---------------------------------------------------------------------------
    def meter(self) -> Meter:
        if self._meter is None:
            from .measure.machine import environment
            from .measure.meter import open_meter

            self._meter = open_meter(self.settings.meter, self.settings.sampling_hz)
            if self._meter.available:
                self.peers.open(self._meter, self.notice)
            if self.peers.holds_machine and self._meter.available:
                self._neighbours.claim()
            self.environment = environment(self._meter.describe())
            if not self._meter.available and self.settings.meter != "none":
                reasons = "; ".join(f"{name}: {why}" for name, why in self._meter.unavailable.items())
                self.notice(f"no energy meter works here, figures are unmeasured ({reasons})")
        return self._meter

    def test_state(self, marker: Optional[EnergyMarker], is_baseline: bool) -> TestState:
        """A measured test's spec: its phase and cap, from its marker (None: unmarked) and the settings."""
        arguments = marker or EnergyMarker()
        phase = "baseline" if is_baseline else arguments.phase
        cap = arguments.cap_j if is_baseline else self.settings.cap_for(phase, arguments.cap_j)
        state = TestState(phase, cap, arguments.system)
        if not is_baseline:  # the baseline has its own repeats (baseline-repeats)
            settings = self.settings
            state.repeats = arguments.repeats if arguments.repeats is not None else settings.repeats
            state.warmup = arguments.warmup if arguments.warmup is not None else settings.warmup
            state.cooldown_s = arguments.cooldown_s if arguments.cooldown_s is not None else settings.cooldown_s
            state.cap_per_unit = arguments.cap_per_unit
        return state

    def plan_baseline(self, items: List[Any], cache_dir: Path) -> List[Tuple[Any, str]]:
        """Reuse the cached baseline or put its test first (reorders ``items``); the items to skip, and why."""
        if not self.baseline.active:
            return []
        wanted = self.settings.reference.normalizes or self.settings.normalized
        if not wanted and not any(self.baseline.is_baseline(item) for item in items):
            return []
        self.meter()
        try:
            reused = self.baseline.prepare(items, self.environment["fingerprint"], cache_dir)
        except BaselineCacheError as exc:
            self.notice(f"baseline cache unusable, no normalisation this run: {exc}")
            return []
        for warning in self.baseline.warnings:
            self.notice(warning)
        self._normalize()
        return [(item, self.baseline.reuse_reason(target)) for item, target in reused]

    def session_cap_reached(self) -> Optional[str]:
        """Why the next test is skipped, once the session cap is spent; None while it is not."""
        cap = self.settings.session_cap_j
        if cap is None:
            return None
        spent_j = self.session_energy_j()
        if spent_j < cap:
            return None
        return (f"energy session cap {format_energy(cap, self.settings.unit)} reached "
                f"({format_energy(spent_j, self.settings.unit)} spent)")

    def measure_repeats(self, nodeid: str, state: TestState, run: Callable[[], None]) -> None:
        """Run a test's body ``warmup`` times unmeasured, then ``repeats - 1`` times each in its own window.

        The last repeat is pytest's own call, measured by ``start_test``/``stop_test``. The body
        runs again with the same fixture values; ``cooldown`` pauses after the warm-up and between
        repeats, so a repeat does not inherit the last one's heat. A baseline test runs
        ``baseline-repeats - 1`` extra times instead.
        """
        if state.phase == "baseline":
            self._measure_baseline_repeats(nodeid, state, run)
            return
        for _ in range(state.warmup):
            run()
        if state.warmup:
            self._cool_down(state)
        figures, lost = [], []
        for repeat in range(1, state.repeats):
            measurement = self._measure_window(f"{nodeid} repeat {repeat}", run)
            figures.append(measurement.total_j)
            lost += lower_bound_reasons(measurement)
            self._cool_down(state)
        if figures:
            state.extra["repeat_j"] = figures
        if lost:
            state.extra["repeat_lost"] = list(dict.fromkeys(lost))

    @staticmethod
    def _cool_down(state: TestState) -> None:
        if state.cooldown_s:
            time.sleep(state.cooldown_s)

    def _measure_baseline_repeats(self, nodeid: str, state: TestState, run: Callable[[], None]) -> None:
        """Run a baseline test's body ``baseline-repeats - 1`` extra times, each in its own window."""
        if self.baseline.target_for(nodeid) is None:
            return
        self._neighbours.mark(nodeid)
        state.extra["repeats_j"] = [self._measure_window(f"{nodeid} repeat {repeat}", run).total_j
                                    for repeat in range(1, self.settings.baseline_repeats)]

    def _measure_window(self, key: str, run: Callable[[], None]) -> Measurement:
        """``run()`` in a window of its own, named ``key`` among the session's processes."""
        activity = self._register_window()
        window = self.meter().window()
        try:
            run()
        finally:
            measurement = window.stop()
            self._neighbours.close_window(activity)
        with signals_deferred() as held:  # see stop_test
            return self.peers.combine(key, measurement, lambda: bool(held))

    def start_test(self, nodeid: str, location: Location, state: TestState) -> None:
        """Open the test's window and, when it has a limit to enforce live, its watchdog."""
        if self.settings.session_cap_j is not None:
            state.session_left_j = self.settings.session_cap_j - self.session_energy_j()
        state.activity = self._register_window()
        state.children_before = child_pids()
        try:
            state.window = self.meter().window()
        except BaseException:  # a CUDA error met synchronising the devices: the test's, raised in its call
            self._neighbours.close_window(state.activity)
            raise
        self._running = (nodeid, location, state)
        state.watchdog = self._watch(nodeid, state)
        state.in_call = True

    def stop_test(self, state: TestState, interrupted: bool = False) -> None:
        """Close the test's window: its ``Measurement`` is final. ``interrupted``: the session is ending
        (Ctrl-C, SIGTERM) inside the test, so the other processes are waited for only briefly."""
        state.in_call = False
        self._stopper.disarm()
        if state.watchdog is not None:
            state.watchdog.stop()
        try:
            state.measurement = state.window.stop()  # type: ignore[union-attr]
        finally:  # a CUDA error at the window's edge is raised after the window closed
            state.measurement = state.window.result  # type: ignore[union-attr]
            self._neighbours.close_window(state.activity)
        if state.measurement is not None and any(note.startswith(OTHER_GPU_PROCESSES) for note in state.measurement.notes):
            self.notice(OTHER_GPU_PROCESSES_NOTICE)
        nodeid = self._running[0] if self._running else "a measured test"
        if self._running is not None:  # every rank decides on the ranks' figure
            with signals_deferred() as held:  # Ctrl-C or SIGTERM meanwhile cuts the wait short, then takes effect
                state.measurement = self.peers.combine(nodeid, state.measurement, lambda: interrupted or bool(held))
        if state.watchdog is not None and not self._stopper.intact():
            self.notice(f"{nodeid} replaced the SIGUSR1 handler that stops a test over its cap: it is installed again "
                        "before each measured test; a test that replaces it cannot be stopped early")
        self._children_left(nodeid, state)

    def _children_left(self, nodeid: str, state: TestState) -> None:
        """Say in the record that the test left child processes running; end them if it was stopped early."""
        running = still_running(child_pids() - state.children_before)
        if not running:
            return
        stopped = bool(state.extra.get("stopped_early"))
        state.extra["children_left"] = {"count": len(running), "terminated": terminate(running) if stopped else 0}
        if stopped:
            self.notice(f"{nodeid} was stopped early: the {len(running)} processes it started were terminated, so "
                        "they spend nothing in later tests")
        else:
            self.notice(f"{nodeid} left {len(running)} child processes running: what they spend counts in the tests "
                        "after it")

    def _watch(self, nodeid: str, state: TestState) -> Optional[Watchdog]:
        """Start a watchdog that stops the test once an energy limit fails, with that limit's failure."""
        limits = self.limits()
        watched = live_limit(self._figures(nodeid, state, None), limits)
        if watched is None or self.settings.cap_mode != "fail" or not self.meter().available:
            return None
        limit_j, kind = watched
        if not self._stopper.arm():
            state.extra["stopped_early"] = None
            return None

        def stop(measurement: Measurement, elapsed_s: float) -> None:
            total_j = measurement.total_j
            crossed = kind if total_j is not None and total_j > limit_j else "session cap"
            state.extra["stopped_early"] = {"at_s": elapsed_s, "energy_j": total_j, "limit": crossed,
                                            "limit_j": limit_j if crossed == kind else state.session_left_j}
            failure = next((f for f in check(self._figures(nodeid, state, measurement), limits) if f.limit == crossed),
                           None)
            self._stop_message = failure.as_longrepr() if failure else (
                f"energy crossed {format_energy(limit_j, self.settings.unit)} ({kind}); stopped early at {elapsed_s:.2f} s")
            why_not = self._stopper.fire(self._stop_message)
            if why_not is not None:
                del state.extra["stopped_early"]
                state.extra["not_stopped"] = why_not

        window = self.peers.live(nodeid, state.window)  # type: ignore[arg-type]
        shared = self.settings.session_cap_j is not None
        return Watchdog(window, limit_j, self.settings.check_interval_s, stop,  # type: ignore[arg-type]
                        self._session_crossed(state) if shared else None).start()

    def _session_crossed(self, state: TestState) -> Callable[[Measurement], bool]:
        """For the watchdog: publish the test's running energy; whether the session's total over its processes
        (the xdist workers) crossed the cap.

        A crossing seen there (another worker's tests spent the rest) leaves this test what was
        left of the cap before it: its energy so far is over that, so it stops and fails.
        """
        cap_j = self.settings.session_cap_j

        def crossed(measurement: Measurement) -> bool:
            running_j = measurement.total_j or 0.0
            total_j = self._publish(running_j)
            if total_j is None or cap_j is None or total_j < cap_j:
                return False
            state.session_left_j = min(state.session_left_j if state.session_left_j is not None else cap_j,
                                       cap_j - (total_j - running_j))
            return True

        return crossed

    def was_stopped_by(self, message: str) -> bool:
        """Whether the running test failed with the watchdog's stop (and not with a failure of its own)."""
        return self._stop_message is not None and message == self._stop_message

    def _register_window(self) -> Optional[str]:
        """List a measuring window in the machine's activity file, so a baseline measured elsewhere knows of it.

        Of a distributed launch's ranks on one node, only local rank 0 lists its windows (they
        open and close together), so the launch's own ranks do not contend with its baseline.
        """
        if not self.meter().available or not self.peers.lists_windows:
            return None
        return self._neighbours.open_window()

    def session_energy_j(self) -> float:
        """Energy measured so far in the session: under xdist with a session cap, by all workers together."""
        total_j = self._publish(0.0)
        return self._own_energy_j if total_j is None else total_j

    def _publish(self, running_j: float) -> Optional[float]:
        """This process's energy, with ``running_j`` of a test still running, into the session's total over its
        processes; that total, or None where only this process's energy is known."""
        return self.peers.publish(self._own_energy_j + running_j)

    def share_energy(self) -> None:
        """On a worker: add its energy to the session's total as soon as a test ends, for the other workers."""
        if self.is_worker:
            self.session_energy_j()

    def shared_total_for_workers(self, add_cleanup: Callable[[Callable[[], None]], None]) -> Optional[str]:
        """On the xdist controller: the file in which the workers count the session's energy together."""
        if self.settings.session_cap_j is not None and self._workers_total is None:
            self._workers_total = shared_total_file(add_cleanup)
        return self._workers_total

    # -- deciding ----------------------------------------------------------------------------
    def _figures(self, nodeid: str, state: TestState, measurement: Optional[Measurement]) -> Figures:
        return Figures(
            nodeid=nodeid,
            measurement=measurement,
            phase=state.phase,
            cap_j=state.cap_j,
            normalization=self.normalization,
            baseline_on_other_worker=self.is_worker and any(target.entry is None for target in self.baseline.targets),
            normalization_refused=self.baseline.refused,
            session_left_j=state.session_left_j,
            complexity=state.extra,
            fingerprint=self.environment.get("fingerprint"),
            stopped_early=state.extra.get("stopped_early"),
            repeats=state.repeats,
            repeats_j=tuple(state.extra.get("repeats", {}).get("energy_j", ())),
            repeats_lost=tuple(state.extra.get("repeats", {}).get("lower_bound", ())),
            cap_per_unit=state.cap_per_unit,
            work=state.extra.get("work"),
        )

    def finish_test(self, nodeid: str, location: Location, state: TestState, outcome: str, passed: bool,
                    stopped: bool, macs_input: Any = None, model: Optional[Callable[[], Any]] = None) -> Finished:
        """Account for a finished test, check its limits and make its record.

        ``passed``: pytest's verdict before the limits; ``stopped``: it failed with the watchdog's
        stop; ``macs_input``: the input shape on which ``model()`` is counted (a marker's). A limit
        fails the test (``fail_with``) when it passed or was stopped, in ``fail`` mode; in ``warn``
        mode it is a notice.
        """
        self._stop_message = None
        self._gather_repeats(state)
        self._settle_session_share(state)
        energy_j = repeated_energy_j(state.extra, state.measurement)
        account_work_and_emissions(state.extra, energy_j, self.settings.carbon_intensity_g_per_kwh)
        if state.phase == "baseline":
            self._baseline_done(nodeid, state, passed)
        elif self.normalization is not None and energy_j is not None:
            state.extra["energy_normalized_j"] = self.normalization.normalize(energy_j)
        count_error = self._count_macs(state, macs_input, model) if macs_input is not None and model else None
        limits = self.limits()
        figures = self._figures(nodeid, state, state.measurement)
        failures = check(figures, limits) if outcome != "skipped" else []  # a test that skipped itself tested nothing
        if outcome != "skipped":
            comparison = self.comparison.entry(figures, limits, next((f for f in failures if f.limit == "regression"), None))
            if comparison is not None:
                state.extra["comparison"] = comparison
        if "macs" in state.extra and count_error is None:
            state.extra["complexity_verdict"] = complexity_verdict(failures, limits)
        cap_j = state.cap_j if state.cap_per_unit is None else state.cap_per_unit[0]
        verdict = verdict_of(failures, cap_j) if outcome != "skipped" else "skipped"
        failures += [count_error] if count_error else []
        fail_with = None
        if failures and self.settings.cap_mode == "warn":
            for failure in failures:
                self.notice(f"{nodeid}: {failure.as_longrepr()}")
        elif failures and (passed or stopped):  # a stopped test reads the figure of its whole window
            fail_with, outcome = "\n".join(failure.as_longrepr() for failure in failures), "failed"
        record = self._record(nodeid, location, state, outcome, verdict, failures)
        self._own_energy_j += spent_j(state) or 0.0
        state.reported = True
        self._running = None
        return Finished(record, fail_with)

    def _settle_session_share(self, state: TestState) -> None:
        """Publish the finished test's energy; under xdist, what was left for it is what the others left at its end.

        So the test whose energy took the session's total past the cap fails, whichever
        worker ran it, even when each test alone stayed under what was left when it started.
        """
        energy_j = spent_j(state)
        cap_j = self.settings.session_cap_j
        if cap_j is None or energy_j is None or state.session_left_j is None:
            return
        total_j = self._publish(energy_j)
        if total_j is not None:
            state.session_left_j = min(state.session_left_j, cap_j - (total_j - energy_j))

    @staticmethod
    def _gather_repeats(state: TestState) -> None:
        """Every measured repeat's figure, their median and spread, into the record (``repeats``)."""
        if state.repeats <= 1 and not state.warmup:
            return
        last = state.measurement.total_j if state.measurement else None
        state.extra["repeats"] = repeats_entry(list(state.extra.pop("repeat_j", [])) + [last],
                                               state.extra.pop("repeat_lost", []), state.warmup, state.cooldown_s)

    @staticmethod
    def _count_macs(state: TestState, shape: Any, model: Callable[[], Any]) -> Optional[CapFailure]:
        """Count ``model()`` on a zero input of ``shape`` (after the window closed); a failure if that fails."""
        if "macs" in state.extra:
            return None
        try:
            from .account.complexity import count_complexity, example_from_shape

            record_complexity(state, count_complexity(model(), example_from_shape(shape)))
        except Exception as exc:  # the user's model, shape or install: say which, fail the test
            state.extra["complexity_verdict"] = "error"
            return CapFailure(f"cannot count MACs for macs_input={shape!r}: {type(exc).__name__}: {exc}", "error",
                              "MACs count")
        return None

    def _record(self, nodeid: str, location: Location, state: TestState, outcome: str, verdict: str,
                failures: Sequence[CapFailure]) -> Record:
        extra = dict(state.extra)
        if self.is_worker:
            extra["worker"] = self.peers.worker_id
        return Record(
            nodeid=nodeid,
            phase=state.phase,
            outcome=outcome,
            measurement=state.measurement,
            cap_j=state.cap_j,
            verdict=verdict,
            verdict_message="; ".join(failure.as_longrepr() for failure in failures) or None,
            scores=dict(state.scores),
            system=state.system,
            location=location,
            extra=extra,
        )

    def _baseline_done(self, nodeid: str, state: TestState, passed: bool) -> None:
        """Cache a freshly measured baseline, or note that it was reused."""
        target = self.baseline.target_for(nodeid)
        if target is None:
            return
        energies = list(state.extra.pop("repeats_j", [])) + [state.measurement.total_j if state.measurement else None]
        if target.entry is None or target.source != "cached":
            if not passed or any(energy is None for energy in energies):
                self.notice(f"baseline {nodeid} did not pass or was not measured: no normalisation this run")
            else:
                contention = self._neighbours.contention(nodeid, ask_lock=self.is_worker)
                try:
                    spread = self.baseline.measured(nodeid, energies, self.environment["hardware"],
                                                    state.measurement.meter,  # type: ignore[union-attr]
                                                    cache=not contention and self._caches_baseline())
                except (BaselineCacheError, OSError, ValueError) as exc:  # ValueError: an implausible energy
                    self.notice(f"cannot cache the baseline: {exc}")
                    spread = None
                if contention:
                    self.notice(f"baseline {nodeid} was measured while {contention}: its "
                                f"{format_energy(target.entry.energy_j if target.entry else None, self.settings.unit)} "
                                "normalises this run only and is not cached; measure it alone (no -n, no other "
                                "session) to cache it")
                if spread:
                    self.notice(spread)
                self._normalize()
        state.extra["baseline"] = target.to_json()

    def _caches_baseline(self) -> bool:
        """Whether this process may cache the baseline it measured: of a launch's ranks, global rank 0 alone."""
        launch = self.peers.launch
        return launch is None or launch.rank == 0

    def _normalize(self) -> None:
        """The session's normalisation from its baseline, once known; a refused fit is said once."""
        refused_before = self.baseline.refused
        self.normalization = self.baseline.normalization()
        if self.baseline.refused and self.baseline.refused != refused_before:
            self.notice(f"{self.baseline.refused}; no normalised figures this run, caps on them do not pass, and "
                        "nothing is cached")

    # -- between worker and controller -------------------------------------------------------
    def payload(self, finished: Optional[Finished]) -> Optional[Dict[str, Any]]:
        """What a test report carries to the controller: new notices and, for a finished test, its record."""
        payload: Dict[str, Any] = {}
        if self._unsent_notices:
            payload["notices"], self._unsent_notices = self._unsent_notices, []
        if finished is not None:
            payload.update(record=finished.record.to_json(), environment=self.environment,
                           baseline=[target.to_json() for target in self.baseline.targets])
        return payload or None

    def receive(self, payload: Optional[Mapping[str, Any]]) -> None:
        """On the controller: take in a test report's payload (from this process or a worker)."""
        if payload is None or self.is_worker:
            return
        for message in payload.get("notices", ()):
            self.notice(message)
        if "record" in payload:
            self.environment = self.environment or dict(payload.get("environment") or {})
            self.reports.receive(payload)

    def worker_crashed(self, nodeid: str, location: Location, message: str) -> None:
        """On the controller: a test whose xdist worker died while running it is in the report, an error."""
        if self.is_worker or any(record.nodeid == nodeid for record in self.reports.records):
            return
        state = self.test_state(None, False)
        self.reports.add(self._record(nodeid, location, state, "error", "unmeasured",
                                      [CapFailure(f"{message}: not measured", "unmeasured", "crash")]))

    # -- the session's end -------------------------------------------------------------------
    def finish(self) -> None:
        """Record a test interrupted in its call phase; where the records are collected, write the reports.

        Ctrl-C or SIGTERM arriving meanwhile takes effect once the reports are written.
        """
        with signals_deferred():
            if self._running is not None:  # interrupted (Ctrl-C) inside a measured test
                nodeid, location, state = self._running
                if state.measurement is None and state.window is not None:
                    state.measurement = state.window.stop()
                failures = check(self._figures(nodeid, state, state.measurement), self.limits())
                self.reports.add(self._record(nodeid, location, state, "interrupted",
                                              verdict_of(failures, state.cap_j), failures))
                self._running = None
            self.reports.finish()

    def flush(self) -> None:
        """Write what is pending now (Ctrl-C, an internal error): the session may not get to its end."""
        self.reports.flush()

    def close(self) -> None:
        self.reports.close()
        self._stopper.uninstall()
        self._neighbours.release()
        if self._meter is not None:
            self._meter.close()
        self.peers.close()
